"""`/api/transactions`: search by terminal, merchant, state and business date; PANs masked only."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from posgate.api.auth import require
from posgate.api.context import AppContext, app_context
from posgate.api.inputs import CheckedRoute
from posgate.api.users import Principal
from posgate.merchants.errors import FieldError
from posgate.merchants.queries import search_transactions
from posgate.txnset import TxnState

router = APIRouter(prefix="/api/transactions", tags=["transactions"], route_class=CheckedRoute)
STATES = tuple(TxnState)


def parse_date(text: str | None, field: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise FieldError(field, f"must be a date like 2026-11-26, got {text!r}") from None


def check_filters(state: str | None, limit: int) -> None:
    if state and state not in STATES:
        raise FieldError("state", f"must be one of {', '.join(STATES)}, got {state!r}")
    if not 1 <= limit <= 500:
        raise FieldError("limit", f"must be 1 to 500, got {limit}")


@router.get("", summary="Transactions, newest first; PAN masked")
def get_transactions(
    ctx: Annotated[AppContext, Depends(app_context)],
    who: Annotated[Principal, Depends(require("transactions.read"))],
    tid: str | None = None,
    mid: str | None = None,
    state: Annotated[str | None, Query(description=" | ".join(STATES))] = None,
    date_from: Annotated[str | None, Query(description="business date, YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, Query(description="business date, YYYY-MM-DD")] = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    check_filters(state, limit)
    start, end = parse_date(date_from, "date_from"), parse_date(date_to, "date_to")
    return ctx.transact(lambda s: search_transactions(s, tid, mid, state, start, end, limit))
