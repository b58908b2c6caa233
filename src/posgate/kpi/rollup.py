"""The rollup job: rebuilds `kpi_daily`, `kpi_issuer_daily` and `kpi_terminal_daily` for the business days
whose transactions changed since the last run (by `transactions.updated_at`), in the store, with one
INSERT … SELECT … GROUP BY per table and batch of days.

Why a short job and not upkeep on every request: a transaction's counts change long after it is recorded
(a void, a reversal, a completion, an in-doubt recovery), and all those writers would have to keep the
rollups right in their own units of work; re-grouping a touched day is one indexed scan of that day
(docs/kpi.md has the figures). The numbers are at most `MAX_AGE` old: every KPI read runs the job first when
the last run is older (`refresh_if_stale`), and `posgate kpi refresh` runs it on demand.

A writer whose unit of work started before a run and commits after it carries an `updated_at` a little
older than the run: each run looks back `OVERLAP` before the previous one's start, so such rows are
re-grouped by the next run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, delete, func, insert, literal, select
from sqlalchemy.orm import Session

from posgate.kpi.definitions import APPROVED, CHANNELS, PURCHASE_KINDS
from posgate.store.models import Transaction, utcnow
from posgate.store.models_kpi import KpiDaily, KpiIssuerDaily, KpiRefreshState, KpiTerminalDaily
from posgate.txnset import Kind, kinds_where

MAX_AGE = dt.timedelta(seconds=30)
OVERLAP = dt.timedelta(seconds=60)
#: every kind with card data (balance, sale, void, refund, preauth, preauth_void, completion,
#: completion_void) and reversals; not settlements nor batch uploads
ROLLED_UP_KINDS: tuple[Kind, ...] = (*kinds_where(lambda row: row.card), Kind.REVERSAL)
_DAY_BATCH = 31


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
    by_issuer = [daily.c[name] for name in daily_columns if name != "mid"]
    summed = select(*by_issuer, func.sum(daily.c.txn_count), func.sum(daily.c.amount_fen))
    if days is not None:
        summed = summed.where(daily.c.day.in_(days))
    session.execute(
        insert(issuers).from_select(
            [c.name for c in by_issuer] + ["txn_count", "amount_fen"], summed.group_by(*by_issuer)
        )
    )
    session.execute(
        insert(terminal).from_select(
            ["day", "tid", "mid", "issuer_name", "txn_count", "amount_fen"], purchases
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
            session.scalars(
                select(Transaction.business_date).where(Transaction.updated_at >= since).distinct()
            )
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
