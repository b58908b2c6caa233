"""The console's KPI dashboard page (`/kpi`): the filter form and the chart frames; the numbers come from
`GET /api/kpi/...` in the browser (`static/kpi.js`, ECharts served by posgate from `static/`, no CDN), so a
partner bank's scope is the API's, not the page's."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from posgate.api.console.render import console_user, render
from posgate.api.context import AppContext, app_context
from posgate.api.inputs import CheckedRoute
from posgate.store.models import IssuerRoute

router = APIRouter(include_in_schema=False, route_class=CheckedRoute)
Ctx = Annotated[AppContext, Depends(app_context)]


@router.get("/kpi", response_class=HTMLResponse)
def kpi_page(request: Request, ctx: Ctx) -> HTMLResponse:
    who = console_user(request, ctx, "kpi.read")
    today = dt.datetime.now(ZoneInfo(ctx.settings.timezone)).date()
    if who.role == "bank":
        issuers = [who.issuer] if who.issuer else []
    else:
        issuers = ctx.transact(lambda s: list(s.scalars(select(IssuerRoute.name).order_by(IssuerRoute.name))))
    return render(
        request,
        ctx,
        "kpi.html",
        nav="kpi",
        date_from=(today - dt.timedelta(days=30)).isoformat(),
        date_to=(today - dt.timedelta(days=1)).isoformat(),
        issuers=issuers,
        scoped=who.role == "bank",
    )
