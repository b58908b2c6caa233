"""The clearing run of one date: every transaction that moves money for a merchant, cleared once and only
once, its fees computed and its journal entry posted.

What clears on date D (the transactions whose `created_at` falls in D's window, see `clearing_day`):
- `sale` and `completion` in state `approved`: + amount, with MDR, interchange and network fee;
- `refund` in state `approved`: − amount, no fees (the MDR is not refunded);
- a `void`, `completion_void` or `reversal` of D that changed, after it had cleared, the sale, completion
  or refund it cancels (directly, or — a reversal of a void — by giving it back): the original's net
  clearing is brought in line with its state now, dated D: an *unwind* (its clearing negated, fees
  included) when it is no longer approved, a *reclear* when a reversed void made it approved again, or
  its plain clearing if it had never cleared (voided before its run, the void reversed after).
Nothing else moves money: a void or reversal that comes before its original's run simply leaves the
original out (its state is no longer `approved`); pre-authorizations, balance inquiries, declined,
timed-out, pending and reversed rows add nothing. Amounts ≤ 0 and currencies other than the rates' (156)
are not selected. Rows still `pending` when the run passes are counted (`pending_count`): a re-run of the
date clears those that end approved, which is why a run waits `clearing.grace_s` after the cut-off.

Exactly once: `clearing_entries.transaction_id` is unique, and so is each journal entry's key
(`clear:<txn id>`; `adjust:<original id>:<n>` for the n-th unwind or reclear of an original). A chunk
selects only rows without a clearing entry, inside the unit of work that writes them. Concurrent runs take
turns chunk by chunk (`wallet_clearing.take_turn`: a PostgreSQL advisory lock held from a chunk's select to
its commit; SQLite's write lock): racing on the unique constraints alone, the losing run lost the same
chunks again and again and failed after `CONFLICT_RETRIES` conflicts (measured: two runs in chunks of 7).
A constraint failure still makes the chunk be selected again. A re-run adds nothing.

Wallet payments (paid wallet orders, succeeded wallet refunds) of the window clear in the same run, after
the cards, into the same payables: `wallet_clearing`.

Streaming: the window is walked in keyset order (created_at, id) in chunks of `clearing.chunk_size`, one
database transaction per chunk; memory holds one chunk, whatever the size of the day.
"""

from __future__ import annotations

import datetime as dt
import gc
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from posgate.settlement.clearing_day import clearing_window
from posgate.settlement.errors import SettlementError
from posgate.settlement.fees import FeePlan, FeeTable, default_plan
from posgate.settlement.ledger import (
    MERCHANT_PAYABLE,
    SUSPENSE,
    Entry,
    clearing_lines,
    issuer_receivable,
    merchant_payable,
)
from posgate.settlement.ledger_store import Accounts, bind_value, bulk_insert, post
from posgate.settlement.rates import Rates
from posgate.settlement.wallet_clearing import (
    WalletTotals,
    clear_refunds_chunk,
    clear_sales_chunk,
    pending_wallets,
    take_turn,
)
from posgate.store.base import utcnow
from posgate.store.models import IssuerRoute, Merchant, Transaction
from posgate.store.models_ledger import ClearingEntry, ClearingRun, LedgerAccount, LedgerEntry, LedgerPosting
from posgate.store.runtime import Store
from posgate.txnset import Clearing, Kind, TxnState, kinds_where, row_of

# from the transaction set: what clears on its own, what changes an earlier transaction's clearing, and
# which of those are voids (their original is the transaction they change)
CLEARING_KINDS = kinds_where(lambda row: row.clearing is Clearing.CLEARED)
CANCELLATION_KINDS = kinds_where(lambda row: row.clearing is Clearing.CANCELS)
VOID_KINDS = kinds_where(lambda row: row.clearing is Clearing.CANCELS and row.original is not None)
REVERSIBLE_MTIS = ("0200", "0100")
CONFLICT_RETRIES = 5
_CARD_KINDS = ("debit", "credit")

_TXN: Table = Transaction.__table__  # type: ignore[assignment]
_CE: Table = ClearingEntry.__table__  # type: ignore[assignment]
_RUNS: Table = ClearingRun.__table__  # type: ignore[assignment]


class DayNotClosed(SettlementError):
    """Clearing asked for a date whose cut-off (plus the grace period) has not passed yet."""


# ------------------------------------------------------------------------------------------ the pure core


@dataclass(slots=True)
class Cleared:
    """One clearing entry (merchant's view: `amount_fen` > 0 is owed to the merchant). A value: not frozen
    only because frozen dataclasses are three times slower to build, and a run builds one per
    transaction."""

    transaction_id: int
    kind: str  # sale | completion | refund | unwind | reclear
    mid: str
    issuer_name: str | None
    card_kind: str
    amount_fen: int
    mdr_fen: int = 0
    interchange_fen: int = 0
    network_fen: int = 0
    network_issuer_fen: int = 0
    adjusts_id: int | None = None
    known_merchant: bool = True
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            self.key = f"clear:{self.transaction_id}"

    def entry(self, clearing_date: dt.date, merchant_account: str | None = None) -> Entry:
        """The journal entry (`merchant_account`: the merchant's payable account code, when the caller has
        it at hand)."""
        if not self.known_merchant:
            merchant_account = SUSPENSE
        elif merchant_account is None:
            merchant_account = merchant_payable(self.mid)
        return Entry(
            self.key,
            "clear" if self.adjusts_id is None else self.kind,
            clearing_date,
            clearing_lines(
                self.amount_fen,
                self.mdr_fen,
                self.interchange_fen,
                self.network_fen,
                merchant_account,
                issuer_receivable(self.issuer_name) if self.issuer_name else SUSPENSE,
            ),
            self.transaction_id,
        )


def clear_one(
    transaction_id: int,
    kind: str,
    mid: str,
    issuer_name: str | None,
    amount_fen: int,
    card_kind: str,
    plan: FeePlan | None,
    fee_table: FeeTable,
) -> Cleared:
    """Clear a sale, completion (fees per `plan`; None: unknown merchant, the default plan, net to
    suspense) or refund (no fees).

    >>> from posgate.settlement.rates import Rates
    >>> table = FeeTable(Rates())
    >>> plan = FeePlan(5000, 2000, 6000)
    >>> clear_one(1, "sale", "M1", "Bank A", 10000, "debit", plan, table).mdr_fen
    50
    >>> clear_one(2, "refund", "M1", "Bank A", 500, "debit", plan, table).amount_fen
    -500
    """
    known = plan is not None
    if row_of(Kind(kind)).clearing_sign < 0:
        return Cleared(transaction_id, kind, mid, issuer_name, card_kind, -amount_fen, known_merchant=known)
    mdr, interchange, network, network_issuer = fee_table.fees(
        amount_fen, card_kind, plan if plan is not None else default_plan(fee_table.rates)
    )
    return Cleared(
        transaction_id,
        kind,
        mid,
        issuer_name,
        card_kind,
        amount_fen,
        mdr,
        interchange,
        network,
        network_issuer,
        known_merchant=known,
    )


def adjustment(cause_id: int, original: Cleared, sign: int, sequence: int) -> Cleared:
    """The `sequence`-th adjustment of an original that cleared as `original`, caused by the void or
    reversal `cause_id`: sign −1 unwinds it, +1 clears it again.

    >>> sale = Cleared(7, "sale", "M1", "Bank A", "debit", 10000, 50, 35, 3, 3)
    >>> undo = adjustment(9, sale, -1, 1)
    >>> undo.key, undo.kind, undo.amount_fen, undo.mdr_fen, undo.adjusts_id
    ('adjust:7:1', 'unwind', -10000, -50, 7)
    """
    return Cleared(
        transaction_id=cause_id,
        kind="unwind" if sign < 0 else "reclear",
        mid=original.mid,
        issuer_name=original.issuer_name,
        card_kind=original.card_kind,
        amount_fen=sign * original.amount_fen,
        mdr_fen=sign * original.mdr_fen,
        interchange_fen=sign * original.interchange_fen,
        network_fen=sign * original.network_fen,
        network_issuer_fen=sign * original.network_issuer_fen,
        adjusts_id=original.transaction_id,
        known_merchant=original.known_merchant,
        key=f"adjust:{original.transaction_id}:{sequence}",
    )


class CardKinds:
    """debit | credit of a transaction: its own `card_kind`, else its issuer route's kind, else the route
    whose BIN prefix (longest) matches the masked PAN's first digits, else the rates' default."""

    def __init__(self, routes: Iterable[tuple[str, str, str]], default: str) -> None:
        self.by_issuer: dict[str, str] = {}
        self.by_bin: list[tuple[str, str]] = []
        for name, bins, kind in routes:
            if kind in _CARD_KINDS:
                self.by_issuer[name] = kind
                self.by_bin += [(prefix.strip(), kind) for prefix in bins.split(",") if prefix.strip()]
        self.by_bin.sort(key=lambda pair: -len(pair[0]))
        self.default = default

    def of(self, card_kind: str | None, issuer_name: str | None, pan_masked: str | None) -> str:
        """
        >>> routes = [("A", "622999", "debit"), ("B", "622888", "credit"), ("C", "6", "mixed")]
        >>> kinds = CardKinds(routes, "debit")
        >>> kinds.of("credit", "A", None), kinds.of(None, "B", None), kinds.of(None, "C", "622888******1234")
        ('credit', 'credit', 'credit')
        >>> kinds.of(None, None, None)
        'debit'
        """
        if card_kind in _CARD_KINDS:
            return card_kind  # type: ignore[return-value]
        if issuer_name is not None and issuer_name in self.by_issuer:
            return self.by_issuer[issuer_name]
        if pan_masked:
            for prefix, kind in self.by_bin:
                if pan_masked.startswith(prefix):
                    return kind
        return self.default


# ------------------------------------------------------------------------------------------ the store shell


@dataclass
class ClearingResult:
    """What one run added (all zero on a re-run)."""

    run_id: int
    clearing_date: dt.date
    cleared: int = 0
    adjusted: int = 0
    postings: int = 0
    sales_fen: int = 0
    refunds_fen: int = 0
    adjusted_fen: int = 0
    mdr_fen: int = 0
    interchange_fen: int = 0
    network_fen: int = 0
    wallet_count: int = 0  # of `cleared`: wallet payments and refunds (`wallet_clearing`)
    provider_fee_fen: int = 0  # the wallet providers' fees
    pending: int = 0
    chunks: int = 0
    seconds: float = 0.0

    def add(self, cleared: Cleared) -> None:
        if cleared.adjusts_id is not None:
            self.adjusted += 1
            self.adjusted_fen += cleared.amount_fen
        else:
            self.cleared += 1
            if cleared.amount_fen > 0:
                self.sales_fen += cleared.amount_fen
            else:
                self.refunds_fen -= cleared.amount_fen
        self.mdr_fen += cleared.mdr_fen
        self.interchange_fen += cleared.interchange_fen
        self.network_fen += cleared.network_fen

    def merge(self, part: ClearingResult) -> None:
        for name in _SUMMED:
            setattr(self, name, getattr(self, name) + getattr(part, name))


_SUMMED = (
    "cleared",
    "adjusted",
    "postings",
    "sales_fen",
    "refunds_fen",
    "adjusted_fen",
    "mdr_fen",
    "interchange_fen",
    "network_fen",
    "wallet_count",
    "provider_fee_fen",
)


@dataclass
class _Context:
    clearing_date: dt.date
    run_id: int
    start: dt.datetime
    end: dt.datetime
    rates: Rates
    kinds: CardKinds
    fee_table: FeeTable
    accounts: Accounts = field(default_factory=Accounts)
    plans: dict[str, FeePlan | None] = field(default_factory=dict)
    payables: dict[str, str] = field(default_factory=dict)  # MID → its payable account code

    def payable(self, mid: str) -> str:
        code = self.payables.get(mid)
        if code is None:
            code = self.payables[mid] = merchant_payable(mid)
        return code

    def plans_for(self, session: Session, mids: Iterable[str]) -> dict[str, FeePlan | None]:
        """The fee plans of these MIDs (None: not a merchant), read once per run."""
        missing = set(mids) - self.plans.keys()
        if missing:
            m = Merchant.__table__.c
            rows = session.execute(
                select(m.mid, m.mdr_debit_ppm, m.mdr_debit_cap_fen, m.mdr_credit_ppm).where(
                    m.mid.in_(missing)
                )
            )
            for mid, debit_ppm, debit_cap, credit_ppm in rows:
                self.plans[mid] = FeePlan(debit_ppm, debit_cap, credit_ppm)
            for mid in missing - self.plans.keys():
                self.plans[mid] = None
        return self.plans

    def clear(self, session: Session, rows: list[Any]) -> list[Cleared]:
        """Clear transaction rows (id, kind, mid, issuer_name, amount_fen, card_kind, pan_masked, …)."""
        plans = self.plans_for(session, {row[2] for row in rows})
        kind_of, fee_table = self.kinds.of, self.fee_table
        return [
            clear_one(
                txn_id,
                kind,
                mid,
                issuer_name,
                amount_fen,
                card_kind if card_kind in _CARD_KINDS else kind_of(card_kind, issuer_name, pan_masked),
                plans[mid],
                fee_table,
            )
            for txn_id, kind, mid, issuer_name, amount_fen, card_kind, pan_masked, *_ in rows
        ]


def _window(ctx: _Context, after: tuple[dt.datetime, int] | None, *columns: Any) -> Any:
    """Transactions of the window after the keyset position `after`, in (created_at, id) order on the
    created_at index."""
    t = _TXN.c
    stmt = (
        select(*columns)
        .select_from(_TXN)
        .where(t.created_at >= (after[0] if after else ctx.start), t.created_at < ctx.end)
    )
    if after is not None:
        stmt = stmt.where(or_(t.created_at > after[0], t.id > after[1]))
    return stmt.order_by(t.created_at, t.id).limit(ctx.rates.clearing.chunk_size)


def _not_cleared() -> Any:
    return ~select(_CE.c.id).where(_CE.c.transaction_id == _TXN.c.id).exists()


def _clearable(ctx: _Context) -> tuple[Any, ...]:
    t = _TXN.c
    return (
        t.kind.in_(CLEARING_KINDS),
        # an expression, not the bare column: keeps SQLite (no statistics) off the state index, which
        # matches every approved row of every day, and on the created_at range
        func.coalesce(t.state, "") == TxnState.APPROVED.value,
        t.amount_fen > 0,
        t.currency == ctx.rates.currency,
    )


_CLEAR_COLUMNS = (
    _TXN.c.id,
    _TXN.c.kind,
    _TXN.c.mid,
    _TXN.c.issuer_name,
    _TXN.c.amount_fen,
    _TXN.c.card_kind,
    _TXN.c.pan_masked,
)


def _eligible_query(ctx: _Context, after: tuple[dt.datetime, int] | None) -> Any:
    return _window(ctx, after, *_CLEAR_COLUMNS, _TXN.c.created_at).where(*_clearable(ctx), _not_cleared())


def _cancellation_query(ctx: _Context, after: tuple[dt.datetime, int] | None) -> Any:
    t = _TXN.c
    return _window(
        ctx,
        after,
        t.id,
        t.kind,
        t.original_id,
        t.tid,
        t.stan,
        t.business_date,
        t.processing_code,
        t.created_at,
    ).where(t.kind.in_(CANCELLATION_KINDS), _not_cleared())


#: The original of a reversal the host did not link (`original_id`), found as the host finds it: the
#: terminal's latest transaction with the reversal's STAN and processing code, of its business date or the
#: day before (a reversal just after midnight).
_ORIGINAL_BY_KEY = (
    select(_TXN.c.id)
    .where(
        _TXN.c.tid == bindparam("tid"),
        _TXN.c.stan == bindparam("stan"),
        _TXN.c.processing_code == bindparam("processing_code"),
        _TXN.c.business_date.in_([bindparam("business_date"), bindparam("day_before")]),
        _TXN.c.mti.in_(REVERSIBLE_MTIS),
        _TXN.c.id < bindparam("reversal_id"),
    )
    .order_by(_TXN.c.id.desc())
    .limit(1)
)

_CE_COLUMNS = (
    "transaction_id",
    "adjusts_id",
    "run_id",
    "clearing_date",
    "mid",
    "issuer_name",
    "card_kind",
    "kind",
    "amount_fen",
    "mdr_fen",
    "interchange_fen",
    "network_fen",
    "network_issuer_fen",
)


def _write(session: Session, ctx: _Context, cleared: list[Cleared], result: ClearingResult) -> None:
    """Insert the clearing entries and post their journal entries (the rows were selected as not cleared
    in this unit of work: a duplicate can only be a concurrent run's, and fails the unit of work)."""
    if not cleared:
        return
    day = bind_value(session, _CE, "clearing_date", ctx.clearing_date)
    run_id = ctx.run_id
    bulk_insert(
        session,
        _CE,
        _CE_COLUMNS,
        [
            (
                c.transaction_id,
                c.adjusts_id,
                run_id,
                day,
                c.mid,
                c.issuer_name,
                c.card_kind,
                c.kind,
                c.amount_fen,
                c.mdr_fen,
                c.interchange_fen,
                c.network_fen,
                c.network_issuer_fen,
            )
            for c in cleared
        ],
    )
    clearing_date = ctx.clearing_date
    entries = [c.entry(clearing_date, ctx.payable(c.mid)) for c in cleared]
    _, lines = post(session, entries, ctx.accounts, known_new=True)
    result.postings += lines
    for c in cleared:
        result.add(c)


Keyset = tuple[dt.datetime, int] | None


def _clear_chunk(
    session: Session, ctx: _Context, after: Keyset, result: ClearingResult
) -> tuple[Keyset, bool]:
    """Pass 1: the window's approved sales, completions and refunds not cleared yet."""
    rows = session.execute(_eligible_query(ctx, after)).all()
    if not rows:
        return after, True
    _write(session, ctx, ctx.clear(session, rows), result)
    last = rows[-1]
    return (last[-1], last[0]), len(rows) < ctx.rates.clearing.chunk_size


def _affected(session: Session, rows: list[Any]) -> dict[int, int]:
    """Cancellation row id → the sale, completion or refund whose money it may change: its original, or
    the original's original when it cancels (reverses) a void."""
    target_of: dict[int, int] = {}
    for row in rows:
        target = row.original_id
        if target is None and row.kind == Kind.REVERSAL:
            target = session.scalar(
                _ORIGINAL_BY_KEY,
                {
                    "tid": row.tid,
                    "stan": row.stan,
                    "processing_code": row.processing_code,
                    "business_date": row.business_date,
                    "day_before": row.business_date - dt.timedelta(days=1),
                    "reversal_id": row.id,
                },
            )
        if target is not None:
            target_of[row.id] = target
    t = _TXN.c
    targets = {
        tid: (kind, original)
        for tid, kind, original in session.execute(
            select(t.id, t.kind, t.original_id).where(t.id.in_(set(target_of.values())))
        )
    }
    affected: dict[int, int] = {}
    for cancel_id, target in target_of.items():
        kind, original = targets.get(target, (None, None))
        if kind in CLEARING_KINDS:
            affected[cancel_id] = target
        elif kind in VOID_KINDS and original is not None:
            affected[cancel_id] = original
    return affected


def _adjust_chunk(
    session: Session, ctx: _Context, after: Keyset, result: ClearingResult
) -> tuple[Keyset, bool]:
    """Pass 2: for each void / completion void / reversal of the window, bring the net clearing of the
    transaction it changed in line with that transaction's state now."""
    rows = session.execute(_cancellation_query(ctx, after)).all()
    if not rows:
        return after, True
    affected = _affected(session, rows)
    ids = set(affected.values())
    t, ce = _TXN.c, _CE.c
    live = {
        row[0]: row for row in session.execute(select(*_CLEAR_COLUMNS).where(t.id.in_(ids), *_clearable(ctx)))
    }
    first: dict[int, Any] = {}  # original id → its own clearing entry
    net: dict[int, int] = {}  # original id → times cleared − times unwound
    adjustments: dict[int, int] = {}  # original id → adjustments so far
    for entry in session.execute(select(_CE).where(or_(ce.transaction_id.in_(ids), ce.adjusts_id.in_(ids)))):
        if entry.adjusts_id is None:
            first[entry.transaction_id] = entry
            net[entry.transaction_id] = net.get(entry.transaction_id, 0) + 1
        else:
            net[entry.adjusts_id] = net.get(entry.adjusts_id, 0) + (1 if entry.kind == "reclear" else -1)
            adjustments[entry.adjusts_id] = adjustments.get(entry.adjusts_id, 0) + 1
    made: list[Cleared] = []
    changes: list[tuple[int, int, int]] = []  # (cause, original, +1 reclear | −1 unwind)
    for row in rows:
        original_id = affected.get(row.id)
        if original_id is None:
            continue
        wanted, cleared = original_id in live, net.get(original_id, 0) > 0
        if wanted == cleared:
            continue
        net[original_id] = net.get(original_id, 0) + (1 if wanted else -1)
        if wanted and original_id not in first:  # voided before its run, the void reversed after
            made += ctx.clear(session, [live[original_id]])
            first[original_id] = made[-1]
        else:
            changes.append((row.id, original_id, 1 if wanted else -1))
    # an adjustment goes where the original went: the merchant's payable, or suspense
    to_payable = _posted_to_payable(session, [o for _, o, _ in changes if not isinstance(first[o], Cleared)])
    for cause, original_id, sign in changes:
        own = first[original_id]
        if not isinstance(own, Cleared):
            own = first[original_id] = Cleared(
                own.transaction_id,
                own.kind,
                own.mid,
                own.issuer_name,
                own.card_kind,
                own.amount_fen,
                own.mdr_fen,
                own.interchange_fen,
                own.network_fen,
                own.network_issuer_fen,
                known_merchant=original_id in to_payable,
            )
        adjustments[original_id] = adjustments.get(original_id, 0) + 1
        made.append(adjustment(cause, own, sign, adjustments[original_id]))
    _write(session, ctx, made, result)
    last = rows[-1]
    return (last.created_at, last.id), len(rows) < ctx.rates.clearing.chunk_size


def _wallet_step(clear_chunk: Any) -> Any:
    """Pass 3 and 4: the window's paid wallet orders, then its succeeded wallet refunds
    (`wallet_clearing`), as chunk steps."""

    def step(session: Session, ctx: _Context, after: Keyset, result: ClearingResult) -> tuple[Keyset, bool]:
        totals = WalletTotals()
        done = clear_chunk(
            session, ctx.run_id, ctx.clearing_date, (ctx.start, ctx.end), ctx.rates, ctx.accounts, totals
        )
        result.cleared += totals.cleared
        result.wallet_count += totals.cleared
        result.postings += totals.postings
        result.sales_fen += totals.sales_fen
        result.refunds_fen += totals.refunds_fen
        result.mdr_fen += totals.mdr_fen
        result.provider_fee_fen += totals.provider_fee_fen
        return after, done

    return step


def _posted_to_payable(session: Session, original_ids: list[int]) -> set[int]:
    """Those of these originals whose own clearing credited a merchant's payable (not suspense)."""
    if not original_ids:
        return set()
    keys = {f"clear:{i}": i for i in original_ids}
    e, p, a = LedgerEntry.__table__.c, LedgerPosting.__table__.c, LedgerAccount.__table__.c
    rows = session.execute(
        select(e.key)
        .join(LedgerPosting.__table__, p.entry_id == e.id)
        .join(LedgerAccount.__table__, a.id == p.account_id)
        .where(e.key.in_(keys), a.code.startswith(f"{MERCHANT_PAYABLE}:"))
    )
    return {keys[key] for (key,) in rows}


def card_kinds(session: Session, rates: Rates) -> CardKinds:
    """The card-kind resolver of the issuer routes in the store."""
    r = IssuerRoute.__table__.c
    routes = session.execute(select(r.name, r.bins, r.kind)).all()
    return CardKinds([(name, bins, kind) for name, bins, kind in routes], rates.clearing.default_card_kind)


def _pending(session: Session, ctx: _Context) -> int:
    t = _TXN.c
    return int(
        session.scalar(
            select(func.count())
            .select_from(_TXN)
            .where(t.state == TxnState.PENDING.value, t.created_at >= ctx.start, t.created_at < ctx.end)
        )
        or 0
    )


def run_clearing(
    store: Store,
    clearing_date: dt.date,
    rates: Rates,
    timezone: str,
    now: dt.datetime | None = None,
    allow_open_day: bool = False,
) -> ClearingResult:
    """Clear `clearing_date`: record a run, clear its window chunk by chunk, then the late cancellations.
    Refuses (`DayNotClosed`) while `now` (UTC) is before the cut-off plus `clearing.grace_s`, unless
    `allow_open_day`."""
    tz = ZoneInfo(timezone)
    cut_off = rates.clearing.cut_off_local
    start, end = clearing_window(clearing_date, tz, cut_off)
    now = now or utcnow()
    if now < end + dt.timedelta(seconds=rates.clearing.grace_s) and not allow_open_day:
        raise DayNotClosed(
            f"clearing date {clearing_date} closes at {cut_off:%H:%M} {timezone} "
            f"(+{rates.clearing.grace_s} s for answers in flight); run it after that"
        )
    began = time.perf_counter()
    run_id = store.transact(
        lambda s: s.execute(
            _RUNS.insert()
            .values(
                clearing_date=clearing_date,
                cut_off_local=f"{cut_off:%H:%M}",
                timezone=timezone,
                status="running",
                started_at=now,
            )
            .returning(_RUNS.c.id)
        ).scalar_one()
    )
    kinds = store.transact(lambda s: card_kinds(s, rates))
    ctx = _Context(clearing_date, run_id, start, end, rates, kinds, FeeTable(rates))
    result = ClearingResult(run_id, clearing_date)
    try:
        for step in (
            _clear_chunk,
            _adjust_chunk,
            _wallet_step(clear_sales_chunk),
            _wallet_step(clear_refunds_chunk),
        ):
            after: Keyset = None
            done = False
            while not done:
                after, done = _chunk(store, ctx, step, after, result)
        result.pending = store.transact(lambda s: _pending(s, ctx) + pending_wallets(s, (ctx.start, ctx.end)))
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        store.transact(lambda s: _finish(s, run_id, result, "failed", message))
        raise
    result.seconds = time.perf_counter() - began
    store.transact(lambda s: _finish(s, run_id, result, "finished", None))
    return result


def _chunk(
    store: Store, ctx: _Context, step: Any, after: Keyset, result: ClearingResult
) -> tuple[Keyset, bool]:
    """One chunk in its own unit of work, selected again if a concurrent run took part of it first."""
    for attempt in range(CONFLICT_RETRIES):
        part = ClearingResult(result.run_id, result.clearing_date)
        try:
            with _gc_paused():
                position = store.transact(lambda s, part=part: take_turn(s) or step(s, ctx, after, part))
        except IntegrityError:
            ctx.accounts.forget()
            if attempt == CONFLICT_RETRIES - 1:
                raise
            continue
        except Exception:
            ctx.accounts.forget()
            raise
        result.merge(part)
        result.chunks += 1
        return position  # type: ignore[no-any-return]
    raise AssertionError("unreachable")  # pragma: no cover


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside a chunk: it builds tens of thousands of short-lived acyclic
    objects, and the collector's passes over them cost as much as the work itself. It runs between
    chunks, so memory stays flat."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _finish(session: Session, run_id: int, result: ClearingResult, status: str, error: str | None) -> None:
    session.execute(
        update(_RUNS)
        .where(_RUNS.c.id == run_id)
        .values(
            status=status,
            error=(error or "")[:200] or None,
            cleared_count=result.cleared,
            adjusted_count=result.adjusted,
            pending_count=result.pending,
            postings_count=result.postings,
            sales_fen=result.sales_fen,
            refunds_fen=result.refunds_fen,
            adjusted_fen=result.adjusted_fen,
            mdr_fen=result.mdr_fen,
            interchange_fen=result.interchange_fen,
            network_fen=result.network_fen,
            wallet_count=result.wallet_count,
            provider_fee_fen=result.provider_fee_fen,
            finished_at=utcnow(),
        )
    )


def last_finished_run(session: Session, clearing_date: dt.date) -> int | None:
    """The id of the latest finished run of `clearing_date` (None: never cleared)."""
    return session.scalar(
        select(func.max(_RUNS.c.id)).where(
            _RUNS.c.clearing_date == clearing_date, _RUNS.c.status == literal("finished")
        )
    )
