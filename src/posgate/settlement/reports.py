"""Settlement reports as rows (dataclasses), for the CLI (`posgate settlement report`) and the console's
HTML pages alike: a merchant's daily statement, the fee income of a day, the outstanding payables.
Plain functions of a `Session`; they read clearing entries, payouts and the ledger's per-day totals.

Terms (fen): *gross sales* = Σ cleared sales and completions; *refunds* = Σ cleared refunds; *adjusted* =
Σ unwinds (negative: originals a void or reversal undid after they had cleared) and reclears (positive: a
reversed void gave one back); *MDR* = the merchant's fee, adjustments included; *net* = gross − refunds +
adjusted − MDR, what the day added to the merchant's payable.

Wallet payments (`wallet_clearing`) count with the cards: a paid wallet order is a sale, a wallet refund a
refund (giving back the MDR of the refunded part, so the day's MDR is net of it); `provider_fee_fen` is the
wallet providers' fee (our cost, like interchange), `wallet_count` / `wallet_fen` the wallet part of the day.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from posgate.risk.disposal import held_merchants
from posgate.settlement.ledger import (
    FEE_INCOME_D0,
    FEE_INCOME_MDR,
    INTERCHANGE_EXPENSE,
    NETWORK_FEE_EXPENSE,
    WALLET_FEE_EXPENSE,
)
from posgate.settlement.ledger_store import balances
from posgate.settlement.payouts import IN_FLIGHT, payable_balances
from posgate.store.models import Merchant, Transaction
from posgate.store.models_ledger import ClearingEntry, Payout, WalletClearingEntry

_CE = ClearingEntry.__table__.c
_WCE = WalletClearingEntry.__table__.c
_SALE_KINDS = ("sale", "completion")


@dataclass(frozen=True)
class DayTotals:
    """One merchant's (or everyone's) cleared money of a day."""

    sales_count: int = 0
    gross_sales_fen: int = 0
    refunds_count: int = 0
    refunds_fen: int = 0
    adjusted_count: int = 0
    adjusted_fen: int = 0
    mdr_fen: int = 0
    interchange_fen: int = 0
    network_fen: int = 0
    network_issuer_fen: int = 0
    provider_fee_fen: int = 0  # the wallet providers' fee (our cost)
    wallet_count: int = 0  # wallet payments and refunds among the counts above
    wallet_fen: int = 0  # their net amount (payments − refunds)

    @property
    def net_fen(self) -> int:
        return self.gross_sales_fen - self.refunds_fen + self.adjusted_fen - self.mdr_fen

    @property
    def fee_income_fen(self) -> int:
        """Our net fee income: MDR − interchange − network fee (acquirer side) − wallet providers' fee."""
        return self.mdr_fen - self.interchange_fen - self.network_fen - self.provider_fee_fen

    def plus_wallets(self, row: WalletDay) -> DayTotals:
        return DayTotals(
            self.sales_count + row.sales_count,
            self.gross_sales_fen + row.sales_fen,
            self.refunds_count + row.refunds_count,
            self.refunds_fen + row.refunds_fen,
            self.adjusted_count,
            self.adjusted_fen,
            self.mdr_fen + row.mdr_fen,
            self.interchange_fen,
            self.network_fen,
            self.network_issuer_fen,
            self.provider_fee_fen + row.provider_fee_fen,
            self.wallet_count + row.sales_count + row.refunds_count,
            self.wallet_fen + row.sales_fen - row.refunds_fen,
        )


@dataclass(frozen=True)
class WalletDay:
    """One merchant's cleared wallet payments and refunds of a day."""

    sales_count: int
    sales_fen: int
    refunds_count: int
    refunds_fen: int
    mdr_fen: int
    provider_fee_fen: int


def _wallet_totals(session: Session, clearing_date: dt.date, mid: str | None) -> dict[str, WalletDay]:
    def when(condition, value):  # type: ignore[no-untyped-def]
        return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

    sale = _WCE.kind == "sale"
    stmt = (
        select(
            _WCE.mid,
            when(sale, 1),
            when(sale, _WCE.amount_fen),
            when(~sale, 1),
            when(~sale, -_WCE.amount_fen),
            func.coalesce(func.sum(_WCE.mdr_fen), 0),
            func.coalesce(func.sum(_WCE.provider_fee_fen), 0),
        )
        .where(_WCE.clearing_date == clearing_date)
        .group_by(_WCE.mid)
    )
    if mid is not None:
        stmt = stmt.where(_WCE.mid == mid)
    return {row[0]: WalletDay(*(int(v) for v in row[1:])) for row in session.execute(stmt)}


def _totals_query(clearing_date: dt.date):  # type: ignore[no-untyped-def]
    amount, kind = _CE.amount_fen, _CE.kind

    def when(condition, value):  # type: ignore[no-untyped-def]
        return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

    return select(
        _CE.mid,
        when(kind.in_(_SALE_KINDS), 1),
        when(kind.in_(_SALE_KINDS), amount),
        when(kind == "refund", 1),
        when(kind == "refund", -amount),
        when(_CE.adjusts_id.is_not(None), 1),
        when(_CE.adjusts_id.is_not(None), amount),
        func.coalesce(func.sum(_CE.mdr_fen), 0),
        func.coalesce(func.sum(_CE.interchange_fen), 0),
        func.coalesce(func.sum(_CE.network_fen), 0),
        func.coalesce(func.sum(_CE.network_issuer_fen), 0),
    ).where(_CE.clearing_date == clearing_date)


def day_totals(session: Session, clearing_date: dt.date, mid: str | None = None) -> dict[str, DayTotals]:
    """MID → its totals of the clearing date."""
    stmt = _totals_query(clearing_date).group_by(_CE.mid)
    if mid is not None:
        stmt = stmt.where(_CE.mid == mid)
    totals = {row[0]: DayTotals(*(int(v) for v in row[1:])) for row in session.execute(stmt)}
    for wallet_mid, wallets in _wallet_totals(session, clearing_date, mid).items():
        totals[wallet_mid] = totals.get(wallet_mid, DayTotals()).plus_wallets(wallets)
    return totals


@dataclass(frozen=True)
class StatementLine:
    transaction_id: int | None  # None: a wallet payment or refund (`order_id`)
    created_at: dt.datetime  # UTC (a wallet payment: when it was paid)
    tid: str
    kind: str  # sale | completion | refund | unwind | reclear (a void / reversal after clearing)
    rrn: str | None
    pan_masked: str | None
    card_kind: str  # debit | credit | wallet
    amount_fen: int  # signed, merchant's view
    mdr_fen: int
    provider: str | None = None  # wechat | alipay | unionpay (a wallet line)
    order_id: str | None = None  # the wallet order (a wallet line)

    @property
    def net_fen(self) -> int:
        return self.amount_fen - self.mdr_fen


@dataclass(frozen=True)
class PayoutRow:
    payout_id: int
    kind: str
    value_date: dt.date
    amount_fen: int
    surcharge_fen: int
    net_fen: int
    status: str
    file_name: str | None


@dataclass
class MerchantStatement:
    mid: str
    name: str
    clearing_date: dt.date
    totals: DayTotals
    opening_balance_fen: int  # owed to the merchant at the end of the day before (paid payouts deducted)
    closing_balance_fen: int
    payouts: list[PayoutRow] = field(default_factory=list)
    lines: list[StatementLine] = field(default_factory=list)
    hold_id: int | None = None  # risk holds the merchant's settlement: no payout until released


def statement_lines(session: Session, mid: str, clearing_date: dt.date) -> Iterator[StatementLine]:
    """The merchant's cleared transactions of the day, in time order (streamed)."""
    t = Transaction.__table__.c
    stmt = (
        select(
            _CE.transaction_id,
            t.created_at,
            t.tid,
            _CE.kind,
            t.rrn,
            t.pan_masked,
            _CE.card_kind,
            _CE.amount_fen,
            _CE.mdr_fen,
        )
        .join(Transaction.__table__, t.id == _CE.transaction_id)
        .where(_CE.clearing_date == clearing_date, _CE.mid == mid)
        .order_by(t.created_at, t.id)
        .execution_options(yield_per=2000)
    )
    cards = (StatementLine(*row) for row in session.execute(stmt))
    wallets = (
        StatementLine(None, at, tid, kind, None, None, "wallet", amount, mdr, provider, order_id)
        for at, tid, kind, amount, mdr, provider, order_id in session.execute(
            select(_WCE.at, _WCE.tid, _WCE.kind, _WCE.amount_fen, _WCE.mdr_fen, _WCE.provider, _WCE.order_id)
            .where(_WCE.clearing_date == clearing_date, _WCE.mid == mid)
            .order_by(_WCE.at, _WCE.id)
        ).all()
    )
    yield from heapq.merge(cards, wallets, key=lambda line: line.created_at)


def _payouts(session: Session, clearing_date: dt.date, mid: str | None = None) -> list[tuple[str, PayoutRow]]:
    p = Payout.__table__.c
    stmt = select(
        p.mid, p.id, p.kind, p.value_date, p.amount_fen, p.surcharge_fen, p.net_fen, p.status, p.file_name
    ).where(p.value_date == clearing_date)
    if mid is not None:
        stmt = stmt.where(p.mid == mid)
    return [(row[0], PayoutRow(*row[1:])) for row in session.execute(stmt.order_by(p.id))]


def merchant_statement(
    session: Session, mid: str, clearing_date: dt.date, with_lines: bool = True
) -> MerchantStatement:
    """A merchant's statement of one clearing date: totals, balances, payouts and (`with_lines`) every
    cleared transaction."""
    name = session.scalar(select(Merchant.name).where(Merchant.mid == mid)) or ""
    before = clearing_date - dt.timedelta(days=1)
    statement = MerchantStatement(
        mid=mid,
        name=name,
        clearing_date=clearing_date,
        totals=day_totals(session, clearing_date, mid).get(mid, DayTotals()),
        opening_balance_fen=payable_balances(session, through=before).get(mid, 0),
        closing_balance_fen=payable_balances(session, through=clearing_date).get(mid, 0),
        payouts=[row for _, row in _payouts(session, clearing_date, mid)],
        hold_id=_hold_id(session, mid),
    )
    if with_lines:
        statement.lines = list(statement_lines(session, mid, clearing_date))
    return statement


@dataclass(frozen=True)
class FeeIncomeRow:
    mid: str
    name: str
    transactions: int
    volume_fen: int  # gross sales
    mdr_fen: int
    interchange_fen: int
    network_fen: int
    network_issuer_fen: int
    provider_fee_fen: int = 0  # the wallet providers' fee

    @property
    def net_income_fen(self) -> int:
        return self.mdr_fen - self.interchange_fen - self.network_fen - self.provider_fee_fen


@dataclass
class FeeIncome:
    clearing_date: dt.date
    rows: list[FeeIncomeRow]
    total: FeeIncomeRow
    d0_surcharge_fen: int  # from D0 payouts paid, value-dated this day
    ledger_mdr_fen: int  # the same day as the ledger moved it (equals total.mdr_fen)
    ledger_interchange_fen: int
    ledger_network_fen: int
    ledger_provider_fee_fen: int = 0

    @property
    def net_income_fen(self) -> int:
        return self.total.net_income_fen + self.d0_surcharge_fen


def _day_movement(session: Session, code: str, clearing_date: dt.date) -> int:
    through = balances(session, prefix=code, through=clearing_date).get(code, 0)
    before = balances(session, prefix=code, through=clearing_date - dt.timedelta(days=1)).get(code, 0)
    return through - before


def fee_income(session: Session, clearing_date: dt.date) -> FeeIncome:
    """MDR, interchange, network fees and our net income of a clearing date, per merchant and in total."""
    names = dict(session.execute(select(Merchant.mid, Merchant.name)).all())
    rows = [
        FeeIncomeRow(
            mid,
            names.get(mid, ""),
            t.sales_count + t.refunds_count + t.adjusted_count,
            t.gross_sales_fen,
            t.mdr_fen,
            t.interchange_fen,
            t.network_fen,
            t.network_issuer_fen,
            t.provider_fee_fen,
        )
        for mid, t in sorted(day_totals(session, clearing_date).items())
    ]
    total = FeeIncomeRow(
        "TOTAL",
        "",
        sum(r.transactions for r in rows),
        sum(r.volume_fen for r in rows),
        sum(r.mdr_fen for r in rows),
        sum(r.interchange_fen for r in rows),
        sum(r.network_fen for r in rows),
        sum(r.network_issuer_fen for r in rows),
        sum(r.provider_fee_fen for r in rows),
    )
    return FeeIncome(
        clearing_date,
        rows,
        total,
        d0_surcharge_fen=-_day_movement(session, FEE_INCOME_D0, clearing_date),
        ledger_mdr_fen=-_day_movement(session, FEE_INCOME_MDR, clearing_date),
        ledger_interchange_fen=_day_movement(session, INTERCHANGE_EXPENSE, clearing_date),
        ledger_network_fen=_day_movement(session, NETWORK_FEE_EXPENSE, clearing_date),
        ledger_provider_fee_fen=_day_movement(session, WALLET_FEE_EXPENSE, clearing_date),
    )


@dataclass(frozen=True)
class PayableRow:
    mid: str
    name: str
    balance_fen: int  # owed to the merchant by the ledger (negative: the merchant owes us, carried)
    in_flight_fen: int  # instructed payouts not yet confirmed
    last_payout: dt.date | None
    hold_id: int | None = None  # risk holds the merchant's settlement: the payable is withheld

    @property
    def withheld_fen(self) -> int:
        """What a T+1 batch keeps from the merchant while its settlement is held."""
        return max(self.payable_fen, 0) if self.hold_id is not None else 0

    @property
    def payable_fen(self) -> int:
        """What the next T+1 batch would pay (≤ 0: nothing)."""
        return self.balance_fen - self.in_flight_fen


def outstanding_payables(session: Session, through: dt.date | None = None) -> list[PayableRow]:
    """Every merchant with a payable balance or a payout in flight."""
    owed = payable_balances(session, through=through)
    p = Payout.__table__.c
    flying = dict(
        session.execute(
            select(p.mid, func.sum(p.amount_fen)).where(p.status == IN_FLIGHT).group_by(p.mid)
        ).all()
    )
    last = dict(
        session.execute(select(p.mid, func.max(p.value_date)).where(p.status == "paid").group_by(p.mid)).all()
    )
    names = dict(session.execute(select(Merchant.mid, Merchant.name)).all())
    held = held_merchants(session)
    mids = sorted(mid for mid in owed.keys() | flying.keys() if owed.get(mid, 0) or flying.get(mid, 0))
    return [
        PayableRow(
            mid,
            names.get(mid, ""),
            owed.get(mid, 0),
            int(flying.get(mid, 0) or 0),
            last.get(mid),
            held[mid].id if mid in held else None,
        )
        for mid in mids
    ]


def _hold_id(session: Session, mid: str) -> int | None:
    hold = held_merchants(session, [mid]).get(mid)
    return hold.id if hold is not None else None
