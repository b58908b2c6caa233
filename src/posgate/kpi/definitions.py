"""What each KPI is, exactly, so two people compute the same number (issue 13, docs/kpi.md).

Every KPI is a pure function of rollup rows (`DailyRow`, `TerminalDay`) or of plain numbers: the store
(`kpi.queries`) only fetches the rows of the asked period and filters. Kinds and states come from the
transaction-set document (`posgate.txnset`), never from bare strings.

Terms used below:

- **day**: a transaction's `business_date` (the acquirer's local business day, Asia/Shanghai by default).
- **authorization kinds** (`AUTHORIZATION_KINDS`): the kinds that ask the issuer to take or hold the
  cardholder's money — `sale`, `preauth`, `completion` (rows whose issuer effect is debit, hold or complete).
  Voids, refunds, reversals, balance inquiries, settlements and batch uploads are follow-ups or not
  purchases, and are never counted in an approval rate.
- **purchase kinds** (`PURCHASE_KINDS`): the kinds whose approval moves money to the merchant's debit side
  of the settlement totals — `sale`, `completion` (a pre-authorization's hold is not money yet).
- **approved**: answered with response code `00`, whatever happened to the transaction afterwards (a later
  void, reversal or refund does not undo the approval decision; see `refund_amount_fen` for money given back).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from posgate.txnset import IssuerEffect, Kind, Side, kinds_where

APPROVED = "00"

#: sale, preauth, completion — the kinds whose answer is an authorization decision
AUTHORIZATION_KINDS: tuple[Kind, ...] = kinds_where(
    lambda row: row.issuer_effect in (IssuerEffect.DEBIT, IssuerEffect.HOLD, IssuerEffect.COMPLETE)
)
#: sale, completion — the approved kinds that are the merchants' purchase volume
PURCHASE_KINDS: tuple[Kind, ...] = kinds_where(lambda row: row.totals is Side.DEBIT)

#: The issuer's (or its stand-in's) decisions on the card and the cardholder: 01 refer to issuer, 04 pick up,
#: 05 do not honour, 14 invalid card number, 15 no such issuer, 34 suspected fraud (issuer), 41 lost card,
#: 43 stolen card, 51 insufficient funds, 54 expired card, 55 wrong PIN, 57 not permitted to cardholder,
#: 61 over amount limit, 65 over frequency limit, 75 PIN tries exceeded.
ISSUER_DECLINE_CODES: frozenset[str] = frozenset(
    ("01", "04", "05", "14", "15", "34", "41", "43", "51", "54", "55", "57", "61", "65", "75")
)
#: The acquirer's risk control's decisions (docs/risk.md): 58 not permitted to terminal (blocked terminal or
#: merchant), 59 suspected fraud (a rule or a block list).
RISK_DECLINE_CODES: frozenset[str] = frozenset(("58", "59"))
#: Counted in the approval rate's denominator: the issuer's and risk's declines, nothing else.
COUNTED_DECLINE_CODES: frozenset[str] = ISSUER_DECLINE_CODES | RISK_DECLINE_CODES
#: Never in the approval rate: the request's own faults and the acquirer's technical outcomes — 30 format
#: error, A0 MAC error, 03 invalid merchant, 12 invalid transaction, 13 invalid amount, 25 original not
#: found, 40 function not supported, 64 amount differs from original, 94 duplicate, 97 terminal not signed
#: in, 91 issuer unavailable, 96 system error, 98 issuer timeout — and transactions with no answer yet
#: (no response code). They still appear in `by_response_code`.
EXCLUDED_CODES: frozenset[str] = frozenset(
    ("30", "A0", "03", "12", "13", "25", "40", "64", "94", "97", "91", "96", "98")
)

#: field 22's first two digits → channel (pos-8583.md field 22)
CHANNELS: dict[str, str] = {
    "01": "manual",
    "02": "magstripe",
    "05": "chip",
    "07": "contactless",
    "80": "fallback",
}
#: a terminal is active with an approved purchase within this many days up to the period's end
ACTIVE_WINDOW_DAYS = 30
#: a new terminal is activated by an approved purchase within this many days of its provisioning
ACTIVATION_DAYS = 7


def channel_of(entry_mode: str | None) -> str:
    """The channel of a transaction from its field 22 (POS entry mode); `other` for an unlisted mode and
    `""` when the request carried none.

    >>> channel_of("051"), channel_of("072"), channel_of("021"), channel_of("801"), channel_of(None)
    ('chip', 'contactless', 'magstripe', 'fallback', '')
    """
    if not entry_mode:
        return ""
    return CHANNELS.get(entry_mode[:2], "other")


@dataclass(frozen=True)
class DailyRow:
    """One `kpi_daily` row: a day's transactions of one (merchant, issuer, kind, code, card kind, channel)."""

    day: dt.date
    mid: str
    issuer_name: str
    kind: str
    response_code: str
    card_kind: str
    channel: str
    count: int
    amount_fen: int


@dataclass(frozen=True)
class TerminalDay:
    """One `kpi_terminal_daily` row: a terminal's approved purchases of one day with one issuer's cards."""

    day: dt.date
    tid: str
    mid: str
    issuer_name: str
    count: int
    amount_fen: int


def _authorizations(rows: Iterable[DailyRow]) -> list[DailyRow]:
    return [r for r in rows if r.kind in AUTHORIZATION_KINDS]


def approved_count(rows: Iterable[DailyRow]) -> int:
    """Authorization-kind transactions (sale, preauth, completion) answered 00."""
    return sum(r.count for r in _authorizations(rows) if r.response_code == APPROVED)


def declined_count(rows: Iterable[DailyRow]) -> int:
    """Authorization-kind transactions answered with a counted decline (`COUNTED_DECLINE_CODES`: the
    issuer's and risk's). Format, MAC and technical errors (`EXCLUDED_CODES`) are not declines here."""
    return sum(r.count for r in _authorizations(rows) if r.response_code in COUNTED_DECLINE_CODES)


def approval_rate(rows: Iterable[DailyRow]) -> float | None:
    """approved / (approved + issuer and risk declines), over authorization kinds (sale, preauth,
    completion); 0–1, None when there is neither. Codes in `EXCLUDED_CODES` (30 format, A0 MAC, the
    acquirer's own refusals and technical failures) and unanswered transactions are in neither term."""
    rows = list(rows)
    approved, declined = approved_count(rows), declined_count(rows)
    return approved / (approved + declined) if approved + declined else None


def purchase_count(rows: Iterable[DailyRow]) -> int:
    """Purchase-kind transactions (sale, completion) answered 00."""
    return sum(r.count for r in rows if r.kind in PURCHASE_KINDS and r.response_code == APPROVED)


def approved_amount_fen(rows: Iterable[DailyRow]) -> int:
    """The amounts (fen) of purchase-kind transactions (sale, completion) answered 00: gross purchase
    volume. Pre-authorization holds are not in it (their completion is)."""
    return sum(r.amount_fen for r in rows if r.kind in PURCHASE_KINDS and r.response_code == APPROVED)


def average_ticket_fen(rows: Iterable[DailyRow]) -> int | None:
    """approved_amount_fen // purchase_count (floor, whole fen); None without purchases."""
    rows = list(rows)
    count = purchase_count(rows)
    return approved_amount_fen(rows) // count if count else None


def refund_amount_fen(rows: Iterable[DailyRow]) -> int:
    """The amounts (fen) of refunds answered 00 — money given back, on the refund's own day."""
    return sum(r.amount_fen for r in rows if r.kind == Kind.REFUND and r.response_code == APPROVED)


def by_response_code(rows: Iterable[DailyRow]) -> dict[str, int]:
    """Authorization-kind transactions counted by response code (every code, 00 and the excluded ones
    too; `""` for no answer yet), codes in order."""
    counts: Counter[str] = Counter()
    for r in _authorizations(rows):
        counts[r.response_code] += r.count
    return dict(sorted(counts.items()))


def declines_by(rows: Iterable[DailyRow], key: str) -> dict[str, dict[str, int]]:
    """Counted declines (issuer and risk codes) of authorization kinds by `key` (`issuer_name`, `mid`,
    `channel`, `card_kind`), then by response code."""
    out: dict[str, Counter[str]] = {}
    for r in _authorizations(rows):
        if r.response_code in COUNTED_DECLINE_CODES:
            out.setdefault(getattr(r, key), Counter())[r.response_code] += r.count
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def mix(rows: Iterable[DailyRow], key: str) -> dict[str, dict[str, int]]:
    """Approved purchases (sale, completion) by `key` (`card_kind`: debit/credit; `channel`: magstripe,
    chip, contactless, …): their count and amount. Shares are count / purchase_count."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        if r.kind in PURCHASE_KINDS and r.response_code == APPROVED:
            slot = out.setdefault(getattr(r, key) or "unknown", {"count": 0, "amount_fen": 0})
            slot["count"] += r.count
            slot["amount_fen"] += r.amount_fen
    return dict(sorted(out.items()))


def series(rows: Iterable[DailyRow], grain: str) -> list[dict[str, object]]:
    """Approved purchases and the approval rate per period: `grain` day, week (ISO week, starting on
    Monday) or month; each entry's `period` is the period's first day."""

    def start(day: dt.date) -> dt.date:
        if grain == "week":
            return day - dt.timedelta(days=day.weekday())
        if grain == "month":
            return day.replace(day=1)
        if grain == "day":
            return day
        raise ValueError(f"grain must be day, week or month, got {grain!r}")

    buckets: dict[dt.date, list[DailyRow]] = {}
    for r in rows:
        buckets.setdefault(start(r.day), []).append(r)
    return [
        {
            "period": period.isoformat(),
            "approved_count": purchase_count(group),
            "approved_amount_fen": approved_amount_fen(group),
            "approval_rate": approval_rate(group),
        }
        for period, group in sorted(buckets.items())
    ]


def active_terminals(days: Iterable[TerminalDay], as_of: dt.date) -> set[str]:
    """Terminals with ≥ 1 approved purchase (sale or completion answered 00) in the `ACTIVE_WINDOW_DAYS`
    days ending on `as_of` (as_of − 29 … as_of)."""
    first = as_of - dt.timedelta(days=ACTIVE_WINDOW_DAYS - 1)
    return {d.tid for d in days if first <= d.day <= as_of and d.count > 0}


def dormant_terminals(
    provisioned: dict[str, dt.date], days: Iterable[TerminalDay], as_of: dt.date
) -> set[str]:
    """Terminals provisioned (`provisioned`: tid → day created) at least `ACTIVE_WINDOW_DAYS` days before
    `as_of` that are not active on `as_of`."""
    active = active_terminals(days, as_of)
    cutoff = as_of - dt.timedelta(days=ACTIVE_WINDOW_DAYS)
    return {tid for tid, created in provisioned.items() if created <= cutoff and tid not in active}


def activation(provisioned: dict[str, dt.date], days: Iterable[TerminalDay]) -> dict[str, int]:
    """Of the terminals in `provisioned` (tid → day created; the caller passes those provisioned in the
    period): how many had their first approved purchase within `ACTIVATION_DAYS` days of provisioning
    (created … created + 7), how many later, and how many not yet — the activation funnel."""
    first: dict[str, dt.date] = {}
    for d in days:
        if d.tid in provisioned and d.count > 0 and (d.tid not in first or d.day < first[d.tid]):
            first[d.tid] = d.day
    within = sum(1 for tid, day in first.items() if (day - provisioned[tid]).days <= ACTIVATION_DAYS)
    return {
        "provisioned": len(provisioned),
        "activated_within_days": within,
        "activated_later": len(first) - within,
        "not_activated": len(provisioned) - len(first),
    }


def churned_merchants(days: Iterable[TerminalDay], as_of: dt.date) -> set[str]:
    """Merchants with an approved purchase in the `ACTIVE_WINDOW_DAYS` days before the current window and
    none in the current window (as_of − 29 … as_of)."""
    first = as_of - dt.timedelta(days=ACTIVE_WINDOW_DAYS - 1)
    before = first - dt.timedelta(days=ACTIVE_WINDOW_DAYS)
    now, then = set(), set()
    for d in days:
        if d.count <= 0:
            continue
        if first <= d.day <= as_of:
            now.add(d.mid)
        elif before <= d.day < first:
            then.add(d.mid)
    return then - now


def volume_per_terminal_fen(rows: Iterable[DailyRow], active: int) -> int | None:
    """approved_amount_fen // active terminals (floor); None without active terminals."""
    return approved_amount_fen(rows) // active if active else None


def change(current: float | int | None, previous: float | int | None) -> float | None:
    """The relative change against the previous period: (current − previous) / previous; None when
    either is missing or the previous is 0."""
    if current is None or previous is None or previous == 0:
        return None
    return (current - previous) / previous
