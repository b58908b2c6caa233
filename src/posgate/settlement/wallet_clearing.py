"""Wallet payments in the day's clearing (issue 12: one settlement): the paid wallet orders and succeeded
wallet refunds of a clearing date, cleared once beside the card transactions — the merchant's wallet MDR (its
fee plan's `mdr_wallet_ppm`), the provider's fee (`rates.wallets.provider_fee_ppm`), a journal entry each —
so that the same merchant payable, statements and T+1 payouts carry cards and wallets together.

What clears on date D (D's window, `clearing_day`, the same as the cards'):
- a wallet order in state `paid` whose `paid_at` (when the provider took the money) falls in the window:
  + amount, its wallet MDR and the provider's fee;
- a wallet refund in state `succeeded` whose `created_at` falls in the window: − amount, and back the fees of
  the refunded part — the provider gives its fee back (WeChat Pay, Alipay and UnionPay QR all do, pro rata),
  and so do we: the MDR given back is computed on the running total refunded (`refund_mdr`), so partial
  refunds never give back more than the sale's MDR and a full refund gives back exactly all of it.
An order still `unknown` or `paying`, or a refund `pending` or `unknown`, is counted as pending: a re-run of
the date clears what has since ended (as with the cards' pending rows).

Exactly once: `wallet_clearing_entries.ref` (the order id, or the refund number) is unique and so is each
journal entry's key (`wallet:<order id>`, `wallet_refund:<refund no>`); a chunk selects only rows without a
clearing entry, inside the unit of work that writes them. Concurrent runs take turns chunk by chunk: on
PostgreSQL each chunk's unit of work holds a transaction-level advisory lock (`WALLET_CLEARING_LOCK`) from
before its select to its commit, so the next one sees what the previous one wrote (two runs racing on the
unique constraints instead lost the same chunks to each other again and again — measured: a run failed
after five conflicts in a row); SQLite's write lock does the same.

Journal entries (`ledger.wallet_lines`): Dr provider_receivable:<provider> A − p · Dr wallet_fee_expense p ·
Cr merchant_payable:<MID> A − m · Cr fee_income:mdr m; a refund the same with every value negated. A payment
whose MID is not a merchant of ours clears with `[default_fee_plan] wallet_ppm` and its net goes to
`suspense`, as a card's does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, func, select, text
from sqlalchemy.orm import Session

from posgate.settlement.fees import ppm_of
from posgate.settlement.ledger import (
    SUSPENSE,
    Entry,
    merchant_payable,
    provider_receivable,
    wallet_lines,
)
from posgate.settlement.ledger_store import Accounts, bind_value, bulk_insert, post
from posgate.settlement.rates import Rates
from posgate.store.models import Merchant
from posgate.store.models_ledger import WalletClearingEntry
from posgate.store.models_wallet import WalletOrder, WalletRefund

_WCE: Table = WalletClearingEntry.__table__  # type: ignore[assignment]
_ORDERS: Table = WalletOrder.__table__  # type: ignore[assignment]
_REFUNDS: Table = WalletRefund.__table__  # type: ignore[assignment]

SALE, REFUND = "sale", "refund"
WALLET_CLEARING_LOCK = 0x706F73676174_01  # pg_advisory_xact_lock key: "posgat" + 1
PENDING_ORDER_STATES = ("unknown", "paying")
PENDING_REFUND_STATES = ("pending", "unknown")


# ------------------------------------------------------------------------------------------ the pure core


@dataclass(frozen=True, slots=True)
class WalletCleared:
    """One wallet clearing entry (merchant's view: `amount_fen` > 0 is owed to the merchant)."""

    ref: str  # the order id (a sale) or the refund number (a refund)
    kind: str  # sale | refund
    order_id: str
    provider: str
    mid: str
    tid: str
    at: dt.datetime
    amount_fen: int
    mdr_fen: int
    provider_fee_fen: int
    known_merchant: bool = True

    @property
    def key(self) -> str:
        return f"wallet:{self.ref}" if self.kind == SALE else f"wallet_refund:{self.ref}"

    def entry(self, clearing_date: dt.date) -> Entry:
        merchant_account = merchant_payable(self.mid) if self.known_merchant else SUSPENSE
        return Entry(
            self.key,
            "wallet" if self.kind == SALE else "wallet_refund",
            clearing_date,
            wallet_lines(
                self.amount_fen,
                self.mdr_fen,
                self.provider_fee_fen,
                merchant_account,
                provider_receivable(self.provider),
            ),
            memo=self.order_id,
        )


def refund_mdr(mdr_ppm: int, refunded_before_fen: int, refund_fen: int) -> int:
    """The MDR a refund gives back: the MDR of everything refunded so far, less what earlier refunds gave
    back — so the refunds' MDR sums to the MDR of the total refunded, never above the sale's.

    >>> refund_mdr(3800, 0, 100), refund_mdr(3800, 100, 100), refund_mdr(3800, 200, 9800)   # of 100.00
    (0, 1, 37)
    >>> parts = refund_mdr(3800, 0, 100) + refund_mdr(3800, 100, 100) + refund_mdr(3800, 200, 9800)
    >>> parts == ppm_of(10000, 3800)
    True
    """
    return ppm_of(refunded_before_fen + refund_fen, mdr_ppm) - ppm_of(refunded_before_fen, mdr_ppm)


def clear_sale(
    order_id: str,
    provider: str,
    mid: str,
    tid: str,
    at: dt.datetime,
    amount_fen: int,
    mdr_ppm: int | None,
    rates: Rates,
) -> WalletCleared:
    """A paid wallet order (`mdr_ppm` None: not a merchant of ours — the default plan, net to suspense).

    >>> from posgate.settlement.rates import Rates
    >>> c = clear_sale("Q1", "wechat", "M1", "T1", dt.datetime(2026, 3, 10), 2372, 3800, Rates())
    >>> c.amount_fen, c.mdr_fen, c.provider_fee_fen, c.key
    (2372, 9, 14, 'wallet:Q1')
    """
    known = mdr_ppm is not None
    ppm = mdr_ppm if mdr_ppm is not None else rates.default_fee_plan.wallet_ppm
    return WalletCleared(
        order_id,
        SALE,
        order_id,
        provider,
        mid,
        tid,
        at,
        amount_fen,
        ppm_of(amount_fen, ppm),
        provider_fee(provider, amount_fen, rates),
        known,
    )


def clear_refund(
    refund_no: str,
    order_id: str,
    provider: str,
    mid: str,
    tid: str,
    at: dt.datetime,
    refund_fen: int,
    refunded_before_fen: int,
    mdr_ppm: int | None,
    rates: Rates,
) -> WalletCleared:
    """A succeeded wallet refund, `refunded_before_fen` already cleared as refunds of its order.

    >>> from posgate.settlement.rates import Rates
    >>> c = clear_refund("R1", "Q1", "wechat", "M1", "T1", dt.datetime(2026, 3, 10), 1000, 0, 3800, Rates())
    >>> c.amount_fen, c.mdr_fen, c.provider_fee_fen, c.key
    (-1000, -4, -6, 'wallet_refund:R1')
    """
    known = mdr_ppm is not None
    ppm = mdr_ppm if mdr_ppm is not None else rates.default_fee_plan.wallet_ppm
    return WalletCleared(
        refund_no,
        REFUND,
        order_id,
        provider,
        mid,
        tid,
        at,
        -refund_fen,
        -refund_mdr(ppm, refunded_before_fen, refund_fen),
        -provider_fee(provider, refund_fen, rates),
        known,
    )


def provider_fee(provider: str, amount_fen: int, rates: Rates) -> int:
    """The provider's fee on a payment (or on the refunded part, given back), as its bill shows it: per
    line, rounded half-up to the fen."""
    return ppm_of(amount_fen, rates.wallets.provider_fee_ppm.get(provider, 0))


# ------------------------------------------------------------------------------------------ the store shell


@dataclass
class WalletTotals:
    """What one chunk (or run) of wallet clearing added."""

    cleared: int = 0
    postings: int = 0
    sales_fen: int = 0
    refunds_fen: int = 0
    mdr_fen: int = 0
    provider_fee_fen: int = 0

    def add(self, cleared: WalletCleared) -> None:
        self.cleared += 1
        if cleared.kind == SALE:
            self.sales_fen += cleared.amount_fen
        else:
            self.refunds_fen -= cleared.amount_fen
        self.mdr_fen += cleared.mdr_fen
        self.provider_fee_fen += cleared.provider_fee_fen


def take_turn(session: Session) -> None:
    """Wait for any other clearing run's chunk to commit (PostgreSQL: a transaction-level advisory lock;
    SQLite's BEGIN IMMEDIATE already serializes writers)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WALLET_CLEARING_LOCK})


def _not_cleared(ref: Any) -> Any:
    return ~select(_WCE.c.id).where(_WCE.c.ref == ref).exists()


def _wallet_plans(session: Session, mids: Iterable[str]) -> dict[str, int | None]:
    """MID → its wallet MDR in ppm (None: not a merchant of ours)."""
    mids = set(mids)
    m = Merchant.__table__.c
    plans: dict[str, int | None] = dict(
        session.execute(select(m.mid, m.mdr_wallet_ppm).where(m.mid.in_(mids))).all()  # type: ignore[arg-type]
    )
    return {mid: plans.get(mid) for mid in mids}


_WCE_COLUMNS = (
    "ref",
    "kind",
    "order_id",
    "provider",
    "run_id",
    "clearing_date",
    "mid",
    "tid",
    "at",
    "amount_fen",
    "mdr_fen",
    "provider_fee_fen",
)


def _write(
    session: Session,
    cleared: list[WalletCleared],
    run_id: int,
    clearing_date: dt.date,
    accounts: Accounts,
    totals: WalletTotals,
) -> None:
    if not cleared:
        return
    day = bind_value(session, _WCE, "clearing_date", clearing_date)
    bulk_insert(
        session,
        _WCE,
        _WCE_COLUMNS,
        [
            (
                c.ref,
                c.kind,
                c.order_id,
                c.provider,
                run_id,
                day,
                c.mid,
                c.tid,
                bind_value(session, _WCE, "at", c.at),
                c.amount_fen,
                c.mdr_fen,
                c.provider_fee_fen,
            )
            for c in cleared
        ],
    )
    _, lines = post(session, [c.entry(clearing_date) for c in cleared], accounts, known_new=True)
    totals.postings += lines
    for c in cleared:
        totals.add(c)


def clear_sales_chunk(
    session: Session,
    run_id: int,
    clearing_date: dt.date,
    window: tuple[dt.datetime, dt.datetime],
    rates: Rates,
    accounts: Accounts,
    totals: WalletTotals,
) -> bool:
    """Clear up to `chunk_size` paid wallet orders of the window not cleared yet; True when none are left."""
    take_turn(session)
    o = _ORDERS.c
    rows = session.execute(
        select(o.order_id, o.provider, o.mid, o.tid, o.paid_at, o.amount_fen)
        .where(
            o.state == "paid",
            o.paid_at >= window[0],
            o.paid_at < window[1],
            o.amount_fen > 0,
            _not_cleared(o.order_id),
        )
        .order_by(o.paid_at, o.order_id)
        .limit(rates.clearing.chunk_size)
    ).all()
    plans = _wallet_plans(session, {row.mid for row in rows})
    cleared = [
        clear_sale(r.order_id, r.provider, r.mid, r.tid, r.paid_at, r.amount_fen, plans[r.mid], rates)
        for r in rows
    ]
    _write(session, cleared, run_id, clearing_date, accounts, totals)
    return len(rows) < rates.clearing.chunk_size


def clear_refunds_chunk(
    session: Session,
    run_id: int,
    clearing_date: dt.date,
    window: tuple[dt.datetime, dt.datetime],
    rates: Rates,
    accounts: Accounts,
    totals: WalletTotals,
) -> bool:
    """Clear up to `chunk_size` succeeded wallet refunds of the window not cleared yet; True when none are
    left."""
    take_turn(session)
    r, o = _REFUNDS.c, _ORDERS.c
    rows = session.execute(
        select(r.refund_no, r.order_id, o.provider, o.mid, o.tid, r.created_at, r.amount_fen)
        .join(_ORDERS, o.order_id == r.order_id)
        .where(
            r.state == "succeeded",
            r.created_at >= window[0],
            r.created_at < window[1],
            r.amount_fen > 0,
            _not_cleared(r.refund_no),
        )
        .order_by(r.created_at, r.refund_no)
        .limit(rates.clearing.chunk_size)
    ).all()
    if not rows:
        return True
    plans = _wallet_plans(session, {row.mid for row in rows})
    before: dict[str, int] = {
        order_id: -int(total)
        for order_id, total in session.execute(
            select(_WCE.c.order_id, func.sum(_WCE.c.amount_fen))
            .where(_WCE.c.kind == REFUND, _WCE.c.order_id.in_({row.order_id for row in rows}))
            .group_by(_WCE.c.order_id)
        )
    }
    cleared = []
    for row in rows:
        refunded = before.get(row.order_id, 0)
        cleared.append(
            clear_refund(
                row.refund_no,
                row.order_id,
                row.provider,
                row.mid,
                row.tid,
                row.created_at,
                row.amount_fen,
                refunded,
                plans[row.mid],
                rates,
            )
        )
        before[row.order_id] = refunded + row.amount_fen
    _write(session, cleared, run_id, clearing_date, accounts, totals)
    return len(rows) < rates.clearing.chunk_size


def pending_wallets(session: Session, window: tuple[dt.datetime, dt.datetime]) -> int:
    """Wallet orders and refunds of the window whose outcome is not known yet (a re-run clears them)."""
    o, r = _ORDERS.c, _REFUNDS.c
    orders = session.scalar(
        select(func.count())
        .select_from(_ORDERS)
        .where(o.state.in_(PENDING_ORDER_STATES), o.created_at >= window[0], o.created_at < window[1])
    )
    refunds = session.scalar(
        select(func.count())
        .select_from(_REFUNDS)
        .where(r.state.in_(PENDING_REFUND_STATES), r.created_at >= window[0], r.created_at < window[1])
    )
    return int(orders or 0) + int(refunds or 0)
