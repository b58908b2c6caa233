"""The KPI pages of numbers: fetch the rollup rows of a period and filter in the store, then compute with
`kpi.definitions`. Plain functions of a Session; the same objects back `GET /api/kpi/...` and
`posgate kpi` (docs/kpi.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from posgate.kpi import definitions as d
from posgate.kpi.rollup import is_stale, refresh
from posgate.merchants.errors import FieldError
from posgate.store.models import Merchant, Terminal
from posgate.store.models_kpi import KpiDaily, KpiIssuerDaily, KpiTerminalDaily
from posgate.store.runtime import Store

T = TypeVar("T")

GRAINS = ("day", "week", "month")


@dataclass(frozen=True)
class Filters:
    """What the numbers are restricted to; None is no restriction. `issuer` is an issuer route's name (a
    partner bank); `channel` one of `definitions.CHANNELS`' names."""

    mid: str | None = None
    mcc: str | None = None
    issuer: str | None = None
    channel: str | None = None


_DIMENSIONS = ("day", "mid", "issuer_name", "kind", "response_code", "card_kind", "channel")


def _where(query: Select[Any], table: Any, start: dt.date, end: dt.date, f: Filters) -> Select[Any]:
    query = query.where(table.day >= start, table.day <= end)
    if f.mid is not None:
        query = query.where(table.mid == f.mid)
    if f.mcc is not None:
        query = query.where(table.mid.in_(select(Merchant.mid).where(Merchant.mcc == f.mcc)))
    if f.issuer is not None:
        query = query.where(table.issuer_name == f.issuer)
    if f.channel is not None and hasattr(table, "channel"):
        query = query.where(table.channel == f.channel)
    return query


def _daily(
    session: Session, start: dt.date, end: dt.date, f: Filters, by: tuple[str, ...] = ()
) -> list[d.DailyRow]:
    """`kpi_daily` (`kpi_issuer_daily` without a merchant or MCC filter) of the period summed in the store
    over every dimension but `kind`, `response_code` and `by` (the KPIs need no more): a few hundred rows
    whatever the volume. A dimension summed over reads as `""` (`day`: the period's first day)."""
    k: Any = KpiDaily if f.mid is not None or f.mcc is not None else KpiIssuerDaily
    keep = ("kind", "response_code", *by)
    columns = [getattr(k, name) for name in keep]
    query = _where(select(*columns, func.sum(k.txn_count), func.sum(k.amount_fen)), k, start, end, f)
    rows = []
    for *values, total, amount in session.execute(query.group_by(*columns)):
        fields: dict[str, Any] = {name: "" for name in _DIMENSIONS}
        fields["day"] = start
        fields.update(zip(keep, values, strict=True))
        rows.append(d.DailyRow(**fields, count=int(total), amount_fen=int(amount)))
    return rows


def _active_count(session: Session, start: dt.date, end: dt.date, f: Filters) -> int:
    """How many terminals have a `kpi_terminal_daily` row in [start, end] — `definitions.active_terminals`
    counted in the store."""
    k = KpiTerminalDaily
    return int(session.scalar(_where(select(func.count(func.distinct(k.tid))), k, start, end, f)) or 0)


def _headline(rows: list[d.DailyRow]) -> dict[str, Any]:
    return {
        "approved_count": d.approved_count(rows),
        "approved_amount_fen": d.approved_amount_fen(rows),
        "declined_count": d.declined_count(rows),
        "approval_rate": d.approval_rate(rows),
        "purchase_count": d.purchase_count(rows),
        "average_ticket_fen": d.average_ticket_fen(rows),
        "refund_amount_fen": d.refund_amount_fen(rows),
    }


def summary(session: Session, start: dt.date, end: dt.date, f: Filters) -> dict[str, Any]:
    """The headline numbers of [start, end] (business days, both included), with the previous period of
    the same length (`previous`) and the relative change of each headline number (`change`)."""
    rows = _daily(session, start, end, f)
    length = (end - start).days + 1
    prev_start, prev_end = start - dt.timedelta(days=length), start - dt.timedelta(days=1)
    previous = _headline(_daily(session, prev_start, prev_end, f))
    window = dt.timedelta(days=d.ACTIVE_WINDOW_DAYS - 1)
    active = _active_count(session, end - window, end, f)
    if f.channel is not None:  # the terminal rollup has no channel: a channel's active terminals are unknown
        active_value: int | None = None
    else:
        active_value = active
    head = _headline(rows)
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "filters": {k: v for k, v in vars(f).items() if v is not None},
        **head,
        "active_terminals": active_value,
        "volume_per_terminal_fen": d.volume_per_terminal_fen(rows, active) if active_value else None,
        "by_response_code": d.by_response_code(rows),
        "previous": {"from": prev_start.isoformat(), "to": prev_end.isoformat(), **previous},
        "change": {key: d.change(head[key], previous[key]) for key in head},
    }


def series(session: Session, start: dt.date, end: dt.date, f: Filters, grain: str) -> dict[str, Any]:
    """Approved purchases and approval rate per day, week or month of [start, end]."""
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "grain": grain,
        "series": d.series(_daily(session, start, end, f, by=("day",)), grain),
    }


def breakdowns(session: Session, start: dt.date, end: dt.date, f: Filters) -> dict[str, Any]:
    """The mixes (card kind, channel) and the counted declines by issuer and by channel."""
    rows = _daily(session, start, end, f, by=("card_kind", "channel", "issuer_name"))
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "card_kind_mix": d.mix(rows, "card_kind"),
        "channel_mix": d.mix(rows, "channel"),
        "issuer_mix": d.mix(rows, "issuer_name"),
        "declines_by_issuer": d.declines_by(rows, "issuer_name"),
        "declines_by_channel": d.declines_by(rows, "channel"),
    }


def terminals(session: Session, start: dt.date, end: dt.date, f: Filters) -> dict[str, Any]:
    """Active and dormant terminals on `end`, the activation of the terminals provisioned in [start, end],
    and the merchants churned on `end`."""
    window = dt.timedelta(days=d.ACTIVE_WINDOW_DAYS)
    cut = end - window + dt.timedelta(days=1)  # the current window's first day
    current, before = [], []
    # one scan of both windows: per (terminal, merchant) its first and last day with approved purchases
    k = KpiTerminalDaily
    spans = _where(select(k.tid, k.mid, func.min(k.day), func.max(k.day)), k, cut - window, end, f).group_by(
        k.tid, k.mid
    )
    for tid, mid, first, last in session.execute(spans):
        if last >= cut:
            current.append(d.TerminalDay(day=last, tid=tid, mid=mid, issuer_name="", count=1, amount_fen=0))
        if first < cut:
            before.append(d.TerminalDay(day=first, tid=tid, mid=mid, issuer_name="", count=1, amount_fen=0))
    query = select(Terminal.tid, Terminal.created_at, Merchant.mid).join(
        Merchant, Merchant.id == Terminal.merchant_id
    )
    if f.mid is not None:
        query = query.where(Merchant.mid == f.mid)
    if f.mcc is not None:
        query = query.where(Merchant.mcc == f.mcc)
    provisioned = {tid: created.date() for tid, created, _mid in session.execute(query)}
    if f.issuer is not None:  # a bank sees the terminals its cards were used at, not the acquirer's estate
        seen = {t.tid for t in (*current, *before)}
        provisioned = {tid: day for tid, day in provisioned.items() if tid in seen}
    new = {tid: day for tid, day in provisioned.items() if start <= day <= end}
    firsts = _firsts(session, sorted(new), start, end, f)
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "active_terminals": len(d.active_terminals(current, end)),
        "dormant_terminals": len(d.dormant_terminals(provisioned, current, end)),
        "activation": d.activation(new, firsts),
        "churned_merchants": len(d.churned_merchants([*current, *before], end)),
    }


def _firsts(
    session: Session, tids: list[str], start: dt.date, end: dt.date, f: Filters
) -> list[d.TerminalDay]:
    """The first day with approved purchases in [start, end] of each of `tids` (by the tid index)."""
    k = KpiTerminalDaily
    out: list[d.TerminalDay] = []
    for i in range(0, len(tids), 500):
        query = _where(select(k.tid, k.mid, func.min(k.day)), k, start, end, f)
        query = query.where(k.tid.in_(tids[i : i + 500])).group_by(k.tid, k.mid)
        out.extend(
            d.TerminalDay(day=day, tid=tid, mid=mid, issuer_name="", count=1, amount_fen=0)
            for tid, mid, day in session.execute(query)
        )
    return out


MAX_DAYS = 3660


def check_period(start: dt.date, end: dt.date) -> None:
    """Refuse a period that ends before it starts or spans more than `MAX_DAYS` days."""
    if end < start:
        raise FieldError("to", f"must not be before from ({start.isoformat()}), got {end.isoformat()}")
    if (end - start).days >= MAX_DAYS:
        raise FieldError("from", f"the period may span at most {MAX_DAYS} days")


def run_fresh(store: Store, work: Callable[[Session], T]) -> T:
    """Run the rollup job first when its last run is over `rollup.MAX_AGE` old, then `work`."""
    if store.transact(is_stale):
        store.transact(lambda s: refresh(s) if is_stale(s) else None)
    return store.transact(work)


def summary_fresh(store: Store, start: dt.date, end: dt.date, f: Filters) -> dict[str, Any]:
    """`summary` over rollups at most `rollup.MAX_AGE` old."""
    return run_fresh(store, lambda s: summary(s, start, end, f))
