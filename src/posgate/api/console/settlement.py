"""Console settlement pages (GET; risk, finance, admin): the day's clearing runs, fee income, outstanding
payables and payouts (`/settlement?date=`), and a merchant's daily statement as a printable page
(`/merchants/{mid}/statement?date=`) and as CSV (`…/statement.csv?date=`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from posgate.api.console.render import console_user, render
from posgate.api.context import AppContext, app_context
from posgate.api.inputs import CheckedRoute
from posgate.api.settlement_views import (
    default_day,
    parse_day,
    settlement_day,
    statement_csv,
    statement_view,
)

router = APIRouter(include_in_schema=False, route_class=CheckedRoute)
Ctx = Annotated[AppContext, Depends(app_context)]
PERMISSION = "transactions.read"


def _day(ctx: AppContext, date: str) -> dt.date:
    """The date asked for (422 naming `date` if it is not one), else the latest cleared."""
    if date:
        return parse_day(date)
    return ctx.transact(lambda s: default_day(s, ctx.settings.timezone))


@router.get("/settlement", response_class=HTMLResponse)
def settlement(request: Request, ctx: Ctx, date: str = "") -> HTMLResponse:
    console_user(request, ctx, PERMISSION)
    day = _day(ctx, date)
    view = ctx.transact(lambda s: settlement_day(s, day))
    return render(request, ctx, "settlement.html", nav="settlement", d=view)


@router.get("/merchants/{mid}/statement", response_class=HTMLResponse)
def statement(request: Request, ctx: Ctx, mid: str, date: str = "") -> HTMLResponse:
    console_user(request, ctx, PERMISSION)
    day = _day(ctx, date)
    view = ctx.transact(lambda s: statement_view(s, mid, day, ctx.settings.timezone))
    return render(request, ctx, "statement.html", nav="settlement", s=view)


@router.get("/merchants/{mid}/statement.csv")
def statement_download(request: Request, ctx: Ctx, mid: str, date: str = "") -> Response:
    console_user(request, ctx, PERMISSION)
    day = _day(ctx, date)
    view = ctx.transact(lambda s: statement_view(s, mid, day, ctx.settings.timezone))
    return Response(
        "\ufeff" + statement_csv(view),  # the BOM: spreadsheets then read the Chinese names as UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="statement-{view["mid"]}-{day}.csv"'},
    )
