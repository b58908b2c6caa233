"""Payouts to merchants: the T+1 batch, same-day (D0) payouts on request, the bank instruction files and
the import of the bank's confirmations. A payout moves money only in the bank's hands: it is recorded
`instructed` with its file, and posted to the ledger (Dr merchant payable / Cr settlement cash) only when
a confirmation file says `paid`; `rejected` leaves the money in the payable, for the next batch.

A merchant whose settlement risk holds (`risk.disposal`) gets no payout, T+1 or D0, until the hold is
released: what the batch would have paid it stays in the payable and is listed in the withheld file beside
the instruction file (`payouts-<D>-withheld.csv`, `WITHHELD_HEADER`); the first batch after the release
pays it.

T+1 of date D (run once D is cleared): for each merchant, the payable balance of value dates up to D
(clearing of D and before, D0 and T+1 payouts already paid) less the payouts still in flight (instructed,
value date ≤ D). Positive: one payout (key `t1:<D>:<MID>`, so a re-run adds none). Zero or negative: no
payout — a negative balance (refunds beyond sales) is carried forward and netted by the next days' sales.

D0 (merchants with `d0_allowed`, inside the rates' local time window, min ≤ amount ≤ max, within the
daily quota): an advance on the day's credit-card volume not yet cleared — the merchant's approved credit
sales and completions of today's clearing window so far, net of their MDR, less today's approved refunds,
less the D0 already drawn today (instructed or paid), less any negative balance carried from before. The
surcharge (ppm) is deducted from the transfer and booked as fee income at confirmation. The payout is
value-dated today, so tomorrow's T+1 of today nets it out.

Files: `<data_dir>/payouts/payouts-<D>.csv` (a re-run that adds payouts writes `payouts-<D>-2.csv` …) and
`<data_dir>/payouts/d0-<D>-<payout id>.csv`, columns `PAYOUT_HEADER`, amount = what the bank transfers;
confirmations: `CONFIRMATION_HEADER` (`status` paid | rejected, amount echoed); both end with the
checksum line of `bankfile`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from posgate.risk.disposal import held_merchants
from posgate.settlement import bankfile
from posgate.settlement.clearing import CLEARING_KINDS, CardKinds, card_kinds, last_finished_run
from posgate.settlement.clearing_day import clearing_date, clearing_window, to_local
from posgate.settlement.errors import ClearingNotRun, D0Refused, FileFormatError, SettlementError
from posgate.settlement.fees import FeePlan, FeeTable, ppm_of
from posgate.settlement.ledger import MERCHANT_PAYABLE, payout_entry
from posgate.settlement.ledger_store import balances, post
from posgate.settlement.rates import Rates
from posgate.store.base import utcnow
from posgate.store.models import Merchant, Transaction
from posgate.store.models_ledger import Payout
from posgate.store.runtime import Store
from posgate.txnset import TxnState

PAYOUT_HEADER = ("payout_id", "mid", "merchant_name", "account", "amount_fen", "currency")
# merchants whose settlement risk holds (risk.disposal): what the batch would have paid them, kept
WITHHELD_HEADER = ("hold_id", "mid", "merchant_name", "withheld_fen", "currency", "held_since", "reason")
CONFIRMATION_HEADER = ("payout_id", "status", "amount_fen")
IN_FLIGHT = "instructed"


def parse_cny(text: str) -> int:
    """A CNY amount as typed ("500", "500.5", "1234.56") to fen, exactly (never through a float).

    >>> parse_cny("1234.56"), parse_cny("500"), parse_cny("0.5")
    (123456, 50000, 50)
    >>> parse_cny("1.234")
    Traceback (most recent call last):
    posgate.settlement.errors.SettlementError: amount '1.234': at most two decimals (fen)
    """
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise SettlementError(f"amount {text!r}: not a number") from None
    if not value.is_finite() or value <= 0:
        raise SettlementError(f"amount {text!r}: must be a positive amount in CNY")
    fen = value * 100
    if fen != fen.to_integral_value():
        raise SettlementError(f"amount {text!r}: at most two decimals (fen)")
    return int(fen)


def account_placeholder(mid: str) -> str:
    """The settlement account column until onboarding records one: the MID it pays."""
    return f"MID:{mid}"


def _payouts_dir(data_dir: Path) -> Path:
    return data_dir / "payouts"


def _free_name(folder: Path, stem: str) -> Path:
    path = folder / f"{stem}.csv"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}.csv"
        n += 1
    return path


Staged = list[tuple[Path, Path]]  # (written under a pending name, its final name)


def _stage(
    staged: Staged,
    final: Path,
    lines: list[tuple[Any, ...]],
    header: tuple[str, ...] = PAYOUT_HEADER,
    amount_column: str = "amount_fen",
) -> None:
    """Write an instruction file under a pending name: it is published only if the payouts commit."""
    pending = final.with_name(final.name + ".pending")
    bankfile.write(pending, header, lines, amount_column)
    staged.append((pending, final))


def _withheld_rows(
    session: Session, withheld: dict[str, tuple[int, int]], held: dict[str, Any], currency: str
) -> list[tuple[Any, ...]]:
    names = dict(session.execute(select(Merchant.mid, Merchant.name).where(Merchant.mid.in_(withheld))).all())
    return [
        (
            hold_id,
            mid,
            names.get(mid, ""),
            amount,
            currency,
            held[mid].created_at.isoformat(),
            held[mid].reason,
        )
        for mid, (amount, hold_id) in sorted(withheld.items())
    ]


def _settle_files(staged: Staged, committed: bool) -> None:
    for pending, final in staged:
        if committed:
            pending.replace(final)
        else:
            pending.unlink(missing_ok=True)


def _in_flight(session: Session, through: dt.date | None = None) -> dict[str, int]:
    """MID → Σ amount of its payouts instructed but not confirmed (value date ≤ `through`)."""
    p = Payout.__table__.c
    stmt = select(p.mid, func.sum(p.amount_fen)).where(p.status == IN_FLIGHT).group_by(p.mid)
    if through is not None:
        stmt = stmt.where(p.value_date <= through)
    return {mid: int(total) for mid, total in session.execute(stmt)}


def payable_balances(session: Session, through: dt.date | None = None) -> dict[str, int]:
    """MID → what we owe the merchant (fen; negative: the merchant owes us), value dates ≤ `through`."""
    owed = balances(session, prefix=f"{MERCHANT_PAYABLE}:", through=through)
    return {code.split(":", 1)[1]: -balance for code, balance in owed.items()}


@dataclass
class PayoutRun:
    value_date: dt.date
    created: list[int] = field(default_factory=list)
    total_fen: int = 0
    carried: dict[str, int] = field(default_factory=dict)  # MID → negative balance carried forward
    withheld: dict[str, tuple[int, int]] = field(default_factory=dict)  # held MID → (fen kept, hold id)
    file: Path | None = None
    withheld_file: Path | None = None


def _payout_rows(session: Session, ids: list[int]) -> list[tuple[int, str, str, str, int, str]]:
    p, m = Payout.__table__.c, Merchant.__table__.c
    rows = session.execute(
        select(p.id, p.mid, func.coalesce(m.name, ""), p.net_fen, p.currency)
        .outerjoin(Merchant.__table__, m.mid == p.mid)
        .where(p.id.in_(ids))
        .order_by(p.id)
    )
    return [(pid, mid, name, account_placeholder(mid), net, cur) for pid, mid, name, net, cur in rows]


def build_t1_payouts(
    store: Store, value_date: dt.date, data_dir: Path, currency: str = "156", now: dt.datetime | None = None
) -> PayoutRun:
    """Create the T+1 payouts of `value_date` and write their instruction file (one unit of work: the
    file is renamed into place only if the payouts commit)."""
    run = PayoutRun(value_date)
    folder = _payouts_dir(data_dir)
    now = now or utcnow()
    staged: Staged = []

    def work(session: Session) -> Path | None:
        if last_finished_run(session, value_date) is None:
            raise ClearingNotRun(
                f"clearing date {value_date} has not been cleared: run `posgate clearing run`"
            )
        owed = payable_balances(session, through=value_date)
        flying = _in_flight(session, through=value_date)
        p = Payout.__table__.c
        done = set(session.scalars(select(p.mid).where(p.kind == "t1", p.value_date == value_date)))
        held = held_merchants(session)
        rows = []
        for mid in sorted(owed):
            available = owed[mid] - flying.get(mid, 0)
            if available <= 0:
                if available < 0:
                    run.carried[mid] = available
                continue
            if mid in done:
                continue
            if mid in held:
                run.withheld[mid] = (available, held[mid].id)
                continue
            rows.append(
                {
                    "key": f"t1:{value_date}:{mid}",
                    "kind": "t1",
                    "mid": mid,
                    "value_date": value_date,
                    "amount_fen": available,
                    "surcharge_fen": 0,
                    "net_fen": available,
                    "currency": currency,
                    "status": IN_FLIGHT,
                    "created_at": now,
                }
            )
        if run.withheld:
            _stage(
                staged,
                _free_name(folder, f"payouts-{value_date}-withheld"),
                _withheld_rows(session, run.withheld, held, currency),
                WITHHELD_HEADER,
                "withheld_fen",
            )
            run.withheld_file = staged[-1][1]
        if not rows:
            return None
        ids = [
            session.execute(Payout.__table__.insert().values(**row).returning(p.id)).scalar_one()
            for row in rows
        ]
        path = _free_name(folder, f"payouts-{value_date}")
        session.execute(update(Payout).where(p.id.in_(ids)).values(file_name=path.name))
        lines = _payout_rows(session, ids)
        run.created, run.total_fen = ids, sum(line[4] for line in lines)
        _stage(staged, path, lines)
        return path

    try:
        run.file = store.transact(work)
    except BaseException:
        _settle_files(staged, committed=False)
        raise
    _settle_files(staged, committed=True)
    return run


# ------------------------------------------------------------------------------------------------- D0


@dataclass(frozen=True)
class D0Payout:
    payout_id: int
    mid: str
    value_date: dt.date
    amount_fen: int
    surcharge_fen: int
    net_fen: int
    available_before_fen: int
    file: Path


def d0_available(
    session: Session,
    mid: str,
    plan: FeePlan,
    today: dt.date,
    start: dt.datetime,
    now: dt.datetime,
    rates: Rates,
    kinds: CardKinds,
) -> int:
    """What the merchant may still draw today (fen), as described in the module docstring."""
    t = Transaction.__table__.c
    rows = session.execute(
        select(t.kind, t.amount_fen, t.card_kind, t.issuer_name, t.pan_masked).where(
            t.mid == mid,
            t.created_at >= start,
            t.created_at <= now,
            t.kind.in_(CLEARING_KINDS),
            t.state == TxnState.APPROVED,
            t.amount_fen > 0,
        )
    )
    table = FeeTable(rates)
    credit_net = refunds = 0
    for kind, amount, card_kind, issuer_name, pan_masked in rows:
        if kind == "refund":
            refunds += amount
        elif kinds.of(card_kind, issuer_name, pan_masked) == "credit":
            credit_net += amount - table.fees(amount, "credit", plan)[0]
    p = Payout.__table__.c
    drawn = session.scalar(
        select(func.coalesce(func.sum(p.amount_fen), 0)).where(
            p.mid == mid, p.kind == "d0", p.value_date == today, p.status.in_((IN_FLIGHT, "paid"))
        )
    )
    before = payable_balances(session, through=today - dt.timedelta(days=1)).get(mid, 0)
    before -= _in_flight(session, through=today - dt.timedelta(days=1)).get(mid, 0)
    return credit_net - refunds - int(drawn or 0) + min(before, 0)


def request_d0(
    store: Store,
    mid: str,
    amount_fen: int,
    rates: Rates,
    timezone: str,
    data_dir: Path,
    now: dt.datetime | None = None,
    request_id: str | None = None,
) -> D0Payout:
    """Instruct a same-day payout of `amount_fen` drawn from the merchant's payable (`D0Refused` when it
    is not allowed). `request_id` makes a retried request idempotent."""
    tz = ZoneInfo(timezone)
    now = now or utcnow()
    d0 = rates.d0
    local = to_local(now, tz)
    if not d0.min_fen <= amount_fen <= d0.max_fen:
        raise D0Refused(f"D0 amount {amount_fen} fen: must be between {d0.min_fen} and {d0.max_fen} fen")
    today = clearing_date(now, tz, rates.clearing.cut_off_local)
    start, _ = clearing_window(today, tz, rates.clearing.cut_off_local)
    key = f"d0:{mid}:{request_id or uuid.uuid4().hex}"
    folder = _payouts_dir(data_dir)
    staged: Staged = []

    def work(session: Session) -> D0Payout:
        m = Merchant.__table__.c
        merchant = session.execute(
            select(m.mid, m.status, m.d0_allowed, m.mdr_debit_ppm, m.mdr_debit_cap_fen, m.mdr_credit_ppm)
            .where(m.mid == mid)
            .with_for_update()  # one D0 decision at a time per merchant (PostgreSQL; SQLite: BEGIN IMMEDIATE)
        ).first()
        if merchant is None:
            raise D0Refused(f"merchant {mid} is not known")
        if merchant.status != "live" or not merchant.d0_allowed:
            raise D0Refused(f"merchant {mid} is not allowed D0 payouts")
        if held_merchants(session, [mid]):
            raise D0Refused(f"merchant {mid}: settlement held by risk until an officer releases it")
        p = Payout.__table__.c
        existing = session.execute(select(Payout).where(p.key == key)).scalar_one_or_none()
        if existing is not None:  # the same request again: its answer
            return D0Payout(
                existing.id,
                mid,
                existing.value_date,
                existing.amount_fen,
                existing.surcharge_fen,
                existing.net_fen,
                0,
                folder / (existing.file_name or ""),
            )
        # after the merchant's rights and a replay: a merchant without D0 is told so at any hour, and a
        # request retried just after the window closes gets the answer it already had
        if not d0.window_start_local <= local.time() < d0.window_end_local:
            raise D0Refused(
                f"D0 is open {d0.window_start_local:%H:%M}-{d0.window_end_local:%H:%M} {timezone}; "
                f"it is {local:%H:%M}: ask again from {d0.window_start_local:%H:%M}, or the balance is "
                "paid with the next T+1 payouts"
            )
        drawn = session.scalar(
            select(func.coalesce(func.sum(p.amount_fen), 0)).where(
                p.mid == mid, p.kind == "d0", p.value_date == today, p.status.in_((IN_FLIGHT, "paid"))
            )
        )
        quota = d0.quota_fen(mid)
        if int(drawn or 0) + amount_fen > quota:
            raise D0Refused(f"D0 quota of {mid}: {quota} fen a day, {drawn} fen drawn today")
        plan = FeePlan(merchant.mdr_debit_ppm, merchant.mdr_debit_cap_fen, merchant.mdr_credit_ppm)
        available = d0_available(session, mid, plan, today, start, now, rates, card_kinds(session, rates))
        if amount_fen > available:
            raise D0Refused(f"D0 for {mid}: {available} fen available from today's credit-card volume")
        surcharge = ppm_of(amount_fen, d0.surcharge_ppm)
        payout_id = session.execute(
            Payout.__table__.insert()
            .values(
                key=key,
                kind="d0",
                mid=mid,
                value_date=today,
                amount_fen=amount_fen,
                surcharge_fen=surcharge,
                net_fen=amount_fen - surcharge,
                currency=rates.currency,
                status=IN_FLIGHT,
                created_at=now,
            )
            .returning(p.id)
        ).scalar_one()
        path = folder / f"d0-{today}-{payout_id}.csv"
        session.execute(update(Payout).where(p.id == payout_id).values(file_name=path.name))
        _stage(staged, path, _payout_rows(session, [payout_id]))
        return D0Payout(payout_id, mid, today, amount_fen, surcharge, amount_fen - surcharge, available, path)

    try:
        payout = store.transact(work)
    except BaseException:
        _settle_files(staged, committed=False)
        raise
    _settle_files(staged, committed=True)
    return payout


# --------------------------------------------------------------------------------------- confirmations


@dataclass
class Confirmation:
    paid: list[int] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)  # the same answer imported before: nothing done
    conflicts: list[str] = field(default_factory=list)  # an answer contradicting an earlier one: ignored


def import_confirmation(store: Store, path: Path, now: dt.datetime | None = None) -> Confirmation:
    """Apply a bank confirmation file (checksum verified first; any unknown payout or amount that is not
    the instructed transfer refuses the whole file). `paid` posts the payout to the ledger."""
    rows = bankfile.read(path, CONFIRMATION_HEADER, "amount_fen")
    now = now or utcnow()
    result = Confirmation()

    def work(session: Session) -> None:
        p = Payout.__table__.c
        for number, row in enumerate(rows, start=2):
            status = row["status"].strip().lower()
            if status not in ("paid", "rejected"):
                raise FileFormatError(f"{path.name} line {number}: status must be paid or rejected")
            try:
                payout_id, amount = int(row["payout_id"]), int(row["amount_fen"])
            except ValueError:
                raise FileFormatError(
                    f"{path.name} line {number}: payout_id and amount_fen are integers"
                ) from None
            payout = session.get(Payout, payout_id)
            if payout is None:
                raise FileFormatError(f"{path.name} line {number}: no payout {payout_id}")
            if amount != payout.net_fen:
                raise FileFormatError(
                    f"{path.name} line {number}: payout {payout_id} instructed {payout.net_fen} fen, "
                    f"confirmed {amount}"
                )
            if payout.status == status:
                result.already.append(payout_id)
                continue
            moved = session.execute(
                update(Payout)
                .where(p.id == payout_id, p.status == IN_FLIGHT)
                .values(status=status, confirmed_at=now, confirmation_file=path.name)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not moved:
                result.conflicts.append(f"payout {payout_id} is {payout.status}, the file says {status}")
                continue
            if status == "paid":
                post(
                    session,
                    [
                        payout_entry(
                            payout_id,
                            payout.mid,
                            payout.value_date,
                            payout.amount_fen,
                            payout.surcharge_fen,
                            f"{payout.kind} payout {payout.value_date}",
                        )
                    ],
                )
                result.paid.append(payout_id)
            else:
                result.rejected.append(payout_id)

    store.transact(work)
    return result


def simulate_bank(payout_file: Path, out: Path, rejected: Iterable[int] = ()) -> Path:
    """The bank's side, for tests and demos: a confirmation of every payout of an instruction file, paid
    unless listed in `rejected`."""
    rows = bankfile.read(payout_file, PAYOUT_HEADER, "amount_fen")
    rejected = set(rejected)
    answers = [
        (row["payout_id"], "rejected" if int(row["payout_id"]) in rejected else "paid", row["amount_fen"])
        for row in rows
    ]
    return bankfile.write(out, CONFIRMATION_HEADER, answers, "amount_fen")
