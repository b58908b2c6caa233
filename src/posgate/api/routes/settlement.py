"""`/api/settlement`: a merchant's daily statement, the fee income of a clearing date and the outstanding
payables, read from the clearing entries, payouts and the ledger (money in integer fen; masked PANs only).
Role: `transactions.read` (risk, finance, admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from posgate.api.auth import require
from posgate.api.context import AppContext, app_context
from posgate.api.inputs import CheckedRoute
from posgate.api.settlement_views import fee_income_view, parse_day, payables_view, statement_view
from posgate.api.users import Principal
from posgate.merchants.errors import FieldError

router = APIRouter(prefix="/api/settlement", tags=["settlement"], route_class=CheckedRoute)
Ctx = Annotated[AppContext, Depends(app_context)]
Reader = Annotated[Principal, Depends(require("transactions.read"))]
DateQuery = Annotated[str | None, Query(description="clearing date, YYYY-MM-DD")]


@router.get("/statement", summary="A merchant's statement of a clearing date: totals, balances, lines")
def get_statement(ctx: Ctx, who: Reader, mid: str | None = None, date: DateQuery = None) -> dict[str, Any]:
    if not mid:
        raise FieldError("mid", "is required (15 digits)")
    day = parse_day(date)
    return ctx.transact(lambda s: statement_view(s, mid, day, ctx.settings.timezone))


@router.get("/fee-income", summary="MDR, interchange, network fees and net income of a clearing date")
def get_fee_income(ctx: Ctx, who: Reader, date: DateQuery = None) -> dict[str, Any]:
    day = parse_day(date)
    return ctx.transact(lambda s: fee_income_view(s, day))


@router.get("/payables", summary="What we owe each merchant now, and the payouts in flight")
def get_payables(ctx: Ctx, who: Reader) -> list[dict[str, Any]]:
    return ctx.transact(payables_view)
