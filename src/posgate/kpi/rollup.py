"""The rollup job: rebuilds `kpi_daily`, `kpi_issuer_daily` and `kpi_terminal_daily` for the business days
whose transactions changed since the last run (by `transactions.updated_at`), in the store, with one
INSERT … SELECT … GROUP BY per table and batch of days.

Why a short job and not upkeep on every request: a transaction's counts change long after it is recorded
(a void, a reversal, a completion, an in-doubt recovery), and all those writers would have to keep the
rollups right in their own units of work; re-grouping a touched day is one indexed scan of that day
(docs/kpi.md has the figures). The numbers are at most `MAX_AGE` old: every KPI read runs the job first when
the last run is older (`refresh_if_stale`), and `posgate kpi refresh` runs it on demand.

Wallet orders (issue 12) are rolled up with the cards, on the Beijing date of their creation (wallets are
CNY payments in China; Asia/Shanghai has no daylight saving, so the date is that of `created_at` + 8 h): a
paid order is an approved `sale` (response `00`), a failed one (the provider refused: balance, invalid code
…) a declined `sale` (`05`), a succeeded refund an approved `refund`; issuer = the provider (`wechat`,
`alipay`, `unionpay`), card kind `wallet`, channel `qr`. Orders closed unpaid (expired, reversed) and
those still open count nowhere, as a card transaction without an answer does not. A day is re-grouped
when a wallet order or refund of it changed since the last run, too.

A writer whose unit of work started before a run and commits after it carries an `updated_at` a little
older than the run: each run looks back `OVERLAP` before the previous one's start, so such rows are
re-grouped by the next run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, delete, func, insert, literal, select, union_all
from sqlalchemy.orm import Session

from posgate.kpi.definitions import APPROVED, CHANNELS, PURCHASE_KINDS
from posgate.store.base import utcnow
from posgate.store.models import Transaction
from posgate.store.models_kpi import KpiDaily, KpiIssuerDaily, KpiRefreshState, KpiTerminalDaily
from posgate.store.models_wallet import WalletOrder, WalletRefund
from posgate.txnset import Kind, kinds_where

MAX_AGE = dt.timedelta(seconds=30)
OVERLAP = dt.timedelta(seconds=60)
#: every kind with card data (balance, sale, void, refund, preauth, preauth_void, completion,
#: completion_void) and reversals; not settlements nor batch uploads
ROLLED_UP_KINDS: tuple[Kind, ...] = (*kinds_where(lambda row: row.card), Kind.REVERSAL)
_DAY_BATCH = 31
WALLET_CHANNEL, WALLET_CARD_KIND = "qr", "wallet"
BEIJING_OFFSET = dt.timedelta(hours=8)  # Asia/Shanghai, no daylight saving


@dataclass(frozen=True)
class RefreshResult:
    days: int  # business days re-grouped
    full: bool  # every day (first run or asked)
    built_to: dt.datetime


def _channel():  # type: ignore[no-untyped-def]
    prefix = func.substr(Transaction.entry_mode, 1, 2)
    return case(
        (Transaction.entry_mode.is_(None), literal("")),
        *((prefix == code, literal(name)) for code, name in CHANNELS.items()),
        else_=literal("other"),
    )


def _beijing_day(session: Session, column: Any) -> Any:
    """The Beijing date of a naive-UTC timestamp column, in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(column + BEIJING_OFFSET)
    return func.date(column, "+8 hours")


def beijing_day(utc_naive: dt.datetime) -> dt.date:
    return (utc_naive + BEIJING_OFFSET).date()


def _wallet_selects(session: Session, days: Sequence[dt.date] | None) -> tuple[Any, Any]:
    """The wallet rows of `kpi_daily` and `kpi_terminal_daily` for `days` (None: every day)."""
    o, r = WalletOrder.__table__.c, WalletRefund.__table__.c
    order_day, refund_day = _beijing_day(session, o.created_at), _beijing_day(session, r.created_at)
    code = case((o.state == "paid", literal(APPROVED)), else_=literal("05"))
    orders = select(
        order_day.label("day"),
        o.mid,
        o.provider,
        literal("sale").label("kind"),
        code.label("code"),
        literal(WALLET_CARD_KIND),
        literal(WALLET_CHANNEL),
        func.count(),
        func.coalesce(func.sum(o.amount_fen), 0),
    ).where(o.state.in_(("paid", "failed")))
    refunds = (
        select(
            refund_day.label("day"),
            o.mid,
            o.provider,
            literal("refund").label("kind"),
            literal(APPROVED).label("code"),
            literal(WALLET_CARD_KIND),
            literal(WALLET_CHANNEL),
            func.count(),
            func.coalesce(func.sum(r.amount_fen), 0),
        )
        .join(WalletOrder.__table__, o.order_id == r.order_id)
        .where(r.state == "succeeded")
    )
    purchases = select(
        order_day.label("day"),
        o.tid,
        o.mid,
        o.provider,
        func.count(),
        func.coalesce(func.sum(o.amount_fen), 0),
    ).where(o.state == "paid")
    if days is not None:
        # on the created_at index first (a day either side covers the 8 hours), then the exact days
        low = dt.datetime.combine(min(days), dt.time()) - dt.timedelta(days=1)
        high = dt.datetime.combine(max(days), dt.time()) + dt.timedelta(days=1)
        wanted = [day.isoformat() for day in days] if session.get_bind().dialect.name == "sqlite" else days
        orders = orders.where(o.created_at >= low, o.created_at < high, order_day.in_(wanted))
        refunds = refunds.where(r.created_at >= low, r.created_at < high, refund_day.in_(wanted))
        purchases = purchases.where(o.created_at >= low, o.created_at < high, order_day.in_(wanted))
    orders = orders.group_by(order_day, o.mid, o.provider, code)
    refunds = refunds.group_by(refund_day, o.mid, o.provider)
    return union_all(orders, refunds), purchases.group_by(order_day, o.tid, o.mid, o.provider)


def _wallet_days(session: Session, since: dt.datetime) -> set[dt.date]:
    """The Beijing days of the wallet orders and refunds changed since `since`."""
    o, r = WalletOrder.__table__.c, WalletRefund.__table__.c
    changed = session.scalars(select(o.created_at).where(o.updated_at >= since)).all()
    changed += session.scalars(select(r.created_at).where(r.updated_at >= since)).all()
    return {beijing_day(at) for at in changed}


def _state(session: Session) -> KpiRefreshState:
    query = select(KpiRefreshState).where(KpiRefreshState.id == 1)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()  # one run at a time; SQLite's BEGIN IMMEDIATE already serializes
    state = session.scalar(query)
    if state is None:
        state = KpiRefreshState(id=1)
        session.add(state)
        session.flush()
        if session.get_bind().dialect.name == "postgresql":
            state = session.scalar(query)
    assert state is not None
    return state


def _regroup(session: Session, days: Sequence[dt.date] | None) -> None:
    """Delete and rebuild both rollups for `days` (None: every day)."""
    daily, terminal = KpiDaily.__table__, KpiTerminalDaily.__table__
    issuers = KpiIssuerDaily.__table__
    for table in (daily, issuers, terminal):
        session.execute(delete(table) if days is None else delete(table).where(table.c.day.in_(days)))
    t = Transaction
    issuer = func.coalesce(t.issuer_name, "")
    channel = _channel()
    grouped = select(
        t.business_date,
        t.mid,
        issuer,
        t.kind,
        func.coalesce(t.response_code, ""),
        func.coalesce(t.card_kind, ""),
        channel,
        func.count(),
        func.coalesce(func.sum(t.amount_fen), 0),
    ).where(t.kind.in_([k.value for k in ROLLED_UP_KINDS]))
    purchases = select(
        t.business_date, t.tid, t.mid, issuer, func.count(), func.coalesce(func.sum(t.amount_fen), 0)
    ).where(t.kind.in_([k.value for k in PURCHASE_KINDS]), t.response_code == APPROVED)
    if days is not None:
        grouped = grouped.where(t.business_date.in_(days))
        purchases = purchases.where(t.business_date.in_(days))
    grouped = grouped.group_by(t.business_date, t.mid, issuer, t.kind, t.response_code, t.card_kind, channel)
    purchases = purchases.group_by(t.business_date, t.tid, t.mid, issuer)
    daily_columns = ["day", "mid", "issuer_name", "kind", "response_code", "card_kind", "channel"]
    session.execute(insert(daily).from_select([*daily_columns, "txn_count", "amount_fen"], grouped))
    wallet_rows, wallet_purchases = _wallet_selects(session, days)
    session.execute(insert(daily).from_select([*daily_columns, "txn_count", "amount_fen"], wallet_rows))
    by_issuer = [daily.c[name] for name in daily_columns if name != "mid"]
    summed = select(*by_issuer, func.sum(daily.c.txn_count), func.sum(daily.c.amount_fen))
    if days is not None:
        summed = summed.where(daily.c.day.in_(days))
    session.execute(
        insert(issuers).from_select(
            [c.name for c in by_issuer] + ["txn_count", "amount_fen"], summed.group_by(*by_issuer)
        )
    )
    for rows in (purchases, wallet_purchases):
        session.execute(
            insert(terminal).from_select(
                ["day", "tid", "mid", "issuer_name", "txn_count", "amount_fen"], rows
            )
        )


def refresh(session: Session, now: dt.datetime | None = None, full: bool = False) -> RefreshResult:
    """Bring the rollups up to `now` (UTC, naive): re-group every business day with a transaction changed
    since the previous run (less `OVERLAP`), or every day on the first run or when `full`. The caller's
    unit of work commits."""
    now = now or utcnow()
    state = _state(session)
    if full or state.built_to is None:
        _regroup(session, None)
        count = session.scalar(select(func.count(func.distinct(KpiDaily.day)))) or 0
        result = RefreshResult(days=count, full=True, built_to=now)
    else:
        since = state.built_to - OVERLAP
        days = sorted(
            set(
                session.scalars(
                    select(Transaction.business_date).where(Transaction.updated_at >= since).distinct()
                )
            )
            | _wallet_days(session, since)
        )
        for i in range(0, len(days), _DAY_BATCH):
            _regroup(session, days[i : i + _DAY_BATCH])
        result = RefreshResult(days=len(days), full=False, built_to=now)
    state.built_to = now
    state.refreshed_at = now
    return result


def is_stale(session: Session, now: dt.datetime | None = None, max_age: dt.timedelta = MAX_AGE) -> bool:
    """Whether the rollups were last built more than `max_age` ago (or never)."""
    now = now or utcnow()
    built = session.scalar(select(KpiRefreshState.refreshed_at).where(KpiRefreshState.id == 1))
    return built is None or now - built > max_age
