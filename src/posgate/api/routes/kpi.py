"""`/api/kpi/...`: the KPI pages of numbers (docs/kpi.md) — summary, series, breakdowns, terminals — over
rollups at most a minute old. A partner bank's user or key (role bank) sees only its own issuer's numbers:
its scope is applied here, whatever the query asks, and naming another issuer is refused (403)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from posgate.api.auth import require
from posgate.api.context import AppContext, app_context
from posgate.api.errors import Forbidden
from posgate.api.inputs import CheckedRoute
from posgate.api.users import Principal
from posgate.kpi import queries
from posgate.kpi.definitions import CHANNELS
from posgate.kpi.queries import GRAINS, Filters, check_period, run_fresh
from posgate.merchants.errors import FieldError

router = APIRouter(prefix="/api/kpi", tags=["kpi"], route_class=CheckedRoute)
Ctx = Annotated[AppContext, Depends(app_context)]
Reader = Annotated[Principal, Depends(require("kpi.read"))]
Day = Annotated[str, Query(description="business day YYYY-MM-DD")]


def _day(text: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise FieldError(field, f"must be a date like 2026-11-26, got {text!r}") from None


def scoped(
    who: Principal,
    mid: str | None,
    mcc: str | None,
    issuer: str | None,
    channel: str | None,
) -> Filters:
    """The filters asked, within the caller's scope: a bank caller is held to its own issuer."""
    if channel is not None and channel not in (*CHANNELS.values(), "other", "qr"):
        raise FieldError(
            "channel", f"must be one of {', '.join(CHANNELS.values())}, other, qr; got {channel!r}"
        )
    if who.role == "bank":
        if not who.issuer:
            raise Forbidden("this bank user or key is not scoped to an issuer")
        if issuer is not None and issuer != who.issuer:
            raise Forbidden("a partner bank sees only its own issuer's numbers", "issuer")
        issuer = who.issuer
    return Filters(mid=mid or None, mcc=mcc or None, issuer=issuer or None, channel=channel or None)


def _period(date_from: str, date_to: str) -> tuple[dt.date, dt.date]:
    start, end = _day(date_from, "from"), _day(date_to, "to")
    check_period(start, end)
    return start, end


@router.get("/summary", summary="Headline KPIs of a period, with the previous period and the change")
def get_summary(
    ctx: Ctx,
    who: Reader,
    date_from: Annotated[str, Query(alias="from", description="first business day YYYY-MM-DD")],
    date_to: Annotated[str, Query(alias="to", description="last business day YYYY-MM-DD")],
    mid: str | None = None,
    mcc: str | None = None,
    issuer: str | None = None,
    channel: str | None = None,
) -> dict[str, Any]:
    f = scoped(who, mid, mcc, issuer, channel)
    start, end = _period(date_from, date_to)
    return run_fresh(ctx.handle.store, lambda s: queries.summary(s, start, end, f))


@router.get("/series", summary="Approved purchases and approval rate per day, week or month")
def get_series(
    ctx: Ctx,
    who: Reader,
    date_from: Annotated[str, Query(alias="from", description="first business day YYYY-MM-DD")],
    date_to: Annotated[str, Query(alias="to", description="last business day YYYY-MM-DD")],
    grain: Annotated[str, Query(description=" | ".join(GRAINS))] = "day",
    mid: str | None = None,
    mcc: str | None = None,
    issuer: str | None = None,
    channel: str | None = None,
) -> dict[str, Any]:
    f = scoped(who, mid, mcc, issuer, channel)
    start, end = _period(date_from, date_to)
    if grain not in GRAINS:
        raise FieldError("grain", f"must be one of {', '.join(GRAINS)}, got {grain!r}")
    return run_fresh(ctx.handle.store, lambda s: queries.series(s, start, end, f, grain))


@router.get("/breakdowns", summary="Card-kind, channel and issuer mix; declines by issuer and channel")
def get_breakdowns(
    ctx: Ctx,
    who: Reader,
    date_from: Annotated[str, Query(alias="from", description="first business day YYYY-MM-DD")],
    date_to: Annotated[str, Query(alias="to", description="last business day YYYY-MM-DD")],
    mid: str | None = None,
    mcc: str | None = None,
    issuer: str | None = None,
    channel: str | None = None,
) -> dict[str, Any]:
    f = scoped(who, mid, mcc, issuer, channel)
    start, end = _period(date_from, date_to)
    return run_fresh(ctx.handle.store, lambda s: queries.breakdowns(s, start, end, f))


@router.get("/terminals", summary="Active and dormant terminals, activation funnel, churned merchants")
def get_terminals(
    ctx: Ctx,
    who: Reader,
    date_from: Annotated[str, Query(alias="from", description="first business day YYYY-MM-DD")],
    date_to: Annotated[str, Query(alias="to", description="last business day YYYY-MM-DD")],
    mid: str | None = None,
    mcc: str | None = None,
    issuer: str | None = None,
) -> dict[str, Any]:
    f = scoped(who, mid, mcc, issuer, None)
    start, end = _period(date_from, date_to)
    return run_fresh(ctx.handle.store, lambda s: queries.terminals(s, start, end, f))
