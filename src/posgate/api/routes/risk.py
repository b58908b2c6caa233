"""`/api/risk`: the alerts desk over HTTP (the queue with filters, one case, verdicts and actions), the risk
lists and settlement holds — for the `risk` role (and admin). Same operations, audit and refusals as the
console's pages and `posgate risk …` (docs/risk.md, "Alerts desk")."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from posgate.api import risk_operations as ops
from posgate.api.auth import require
from posgate.api.context import AppContext, app_context
from posgate.api.inputs import CheckedRoute, Id
from posgate.api.users import Principal
from posgate.merchants.errors import FieldError
from posgate.risk.alerts import ALERT_STATES
from posgate.risk.desk import alert_queue
from posgate.risk.disposal import list_holds
from posgate.risk.lists import active_entries
from posgate.store.base import utcnow

router = APIRouter(prefix="/api/risk", tags=["risk"], route_class=CheckedRoute)
Ctx = Annotated[AppContext, Depends(app_context)]
Reader = Annotated[Principal, Depends(require("risk.read"))]
Officer = Annotated[Principal, Depends(require("risk.decide"))]
STEPS = ("dismiss", "confirm", "hold", "release", "suspend-terminal", "suspend-merchant")


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=200)


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str | None = Field(default=None, max_length=64, description="null: back to the queue")


class ListBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(description="card | terminal | merchant | bin | mcc")
    list: str = Field(default="block", description="block | allow (cards) | watch (terminals, merchants)")
    value: str = Field(max_length=32, description="PAN (kept only as its keyed hash), TID, MID, BIN or MCC")
    card_kind: str | None = Field(default=None, description="an MCC restricted for credit | debit only")
    reason: str = Field(default="", max_length=200)
    expires_at: dt.datetime | None = Field(default=None, description="ISO date-time; naive: UTC")


class HoldBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mid: str = Field(max_length=15)
    reason: str = Field(max_length=200)


@router.get("/alerts", summary="Alerts (default: the open queue, oldest first); PAN masked")
def get_alerts(
    ctx: Ctx,
    who: Reader,
    state: Annotated[str, Query(description="open | dismissed | confirmed | all")] = "open",
    rule: str | None = None,
    mid: str | None = None,
    tid: str | None = None,
    assigned_to: Annotated[str | None, Query(description="a username; '-' for unassigned")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    if state != "all" and state not in ALERT_STATES:
        raise FieldError("state", f"must be one of {', '.join(ALERT_STATES)} or all, got {state!r}")
    chosen = None if state == "all" else state
    return ops.checked(
        lambda: ctx.transact(
            lambda s: alert_queue(
                s, utcnow(), state=chosen, rule=rule, mid=mid, tid=tid, assigned_to=assigned_to, limit=limit
            )
        )
    )


@router.get(
    "/alerts/{alert_id}",
    summary="One case: the alert, its transaction and rule hits, the card's "
    "recent history (masked), the merchant's profile and 30 days, the terminal's locations",
)
def get_alert(alert_id: Id, ctx: Ctx, who: Reader) -> dict[str, Any]:
    return ops.case(ctx, alert_id)


@router.post("/alerts/{alert_id}/assign", summary="Give the alert to an officer (null: back to the queue)")
def assign_alert(alert_id: Id, body: AssignBody, ctx: Ctx, who: Officer) -> dict[str, Any]:
    return ops.assign(ctx, who, alert_id, body.username)


@router.post(
    "/alerts/{alert_id}/{step}",
    summary="dismiss | confirm (fraud: the card is blocked) | hold | release (the merchant's settlement) | "
    "suspend-terminal | suspend-merchant",
)
def decide_alert(alert_id: Id, step: str, body: NoteBody, ctx: Ctx, who: Officer) -> dict[str, Any]:
    if step not in STEPS:
        raise FieldError("step", f"must be one of {', '.join(STEPS)}, got {step!r}")
    return ops.decide(ctx, who, alert_id, step.replace("-", "_"), body.note)


@router.get("/lists", summary="List entries in force (cards masked)")
def get_lists(ctx: Ctx, who: Reader, kind: str | None = None) -> list[dict[str, Any]]:
    return ctx.transact(lambda s: active_entries(s, utcnow(), kind))


@router.post("/lists", summary="Put a card, terminal, merchant, BIN on a list, or restrict an MCC")
def add_list_entry(body: ListBody, ctx: Ctx, who: Officer) -> dict[str, Any]:
    expires = body.expires_at
    if expires is not None and expires.tzinfo is not None:
        expires = expires.astimezone(dt.UTC).replace(tzinfo=None)
    return ops.add_to_list(ctx, who, body.kind, body.list, body.value, body.reason, expires, body.card_kind)


@router.post("/lists/remove", summary="Take a card, terminal, merchant, BIN or MCC off a list")
def remove_list_entry(body: ListBody, ctx: Ctx, who: Officer) -> dict[str, Any]:
    return ops.remove_from_list(ctx, who, body.kind, body.list, body.value, body.card_kind)


@router.post("/lists/{entry_id}/remove", summary="Take one entry in force off its list, by its id")
def remove_list_entry_by_id(entry_id: Id, ctx: Ctx, who: Officer) -> dict[str, Any]:
    return ops.remove_list_entry(ctx, who, entry_id)


@router.get("/holds", summary="Settlement holds (active; all with all=true)")
def get_holds(ctx: Ctx, who: Reader, all: bool = False) -> list[dict[str, Any]]:
    return ctx.transact(lambda s: list_holds(s, include_released=all))


@router.post("/holds", summary="Hold a merchant's settlement: cleared, paid nothing until released")
def hold(body: HoldBody, ctx: Ctx, who: Officer) -> dict[str, Any]:
    return ops.hold(ctx, who, body.mid, body.reason)


@router.post("/holds/{mid}/release", summary="Release a merchant's settlement hold")
def release(mid: str, body: NoteBody, ctx: Ctx, who: Officer) -> dict[str, Any]:
    return ops.release(ctx, who, mid, body.note)
