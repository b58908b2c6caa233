"""What the risk API and the alerts desk pages do, once: decide or act on an alert, assign it, change the
lists, hold and release settlement — each in one unit of work, audited with the officer's name. Risk's own
refusals become the API's errors (404 no such alert, 409 a state that does not allow it, 422 a bad value)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from posgate.api.context import AppContext
from posgate.api.users import Principal
from posgate.cards.pan import mask_pan, validate_pan
from posgate.errors import PosgateError
from posgate.merchants.errors import FieldError, NotFound, StateConflict
from posgate.risk.alerts import AlertError, decide_alert
from posgate.risk.desk import alert_case, assign_alert
from posgate.risk.disposal import DisposalError, act_on_alert, place_hold, release_hold
from posgate.risk.lists import LIST_KINDS, ListError, add_entry, mcc_value, remove_entry, remove_entry_by_id
from posgate.store.base import utcnow

T = TypeVar("T")
VERDICTS = ("dismiss", "confirm")
ACTIONS = ("hold", "release", "suspend_terminal", "suspend_merchant")


def _now() -> dt.datetime:
    return utcnow()


def checked(work: Callable[[], T]) -> T:
    """Run `work`, turning risk's refusals into the API's errors."""
    try:
        return work()
    except (AlertError, DisposalError) as error:
        message = str(error)
        if message.startswith("no alert") or message.startswith("no merchant"):
            raise NotFound(message) from None
        raise StateConflict(message) from None
    except ListError as error:
        raise FieldError("value", str(error)) from None


def case(ctx: AppContext, alert_id: int) -> dict[str, Any]:
    return checked(lambda: ctx.transact(lambda s: alert_case(s, alert_id, _now())))


def decide(ctx: AppContext, who: Principal, alert_id: int, step: str, note: str = "") -> dict[str, Any]:
    """A verdict (dismiss, confirm) or an action (hold, release, suspend_*) on an alert."""
    if step in VERDICTS:
        return checked(
            lambda: ctx.transact(lambda s: decide_alert(s, alert_id, step, who.username, _now(), note))
        )
    if step in ACTIONS:
        return checked(
            lambda: ctx.transact(lambda s: act_on_alert(s, alert_id, step, who.username, _now(), note))
        )
    if step == "assign":
        return assign(ctx, who, alert_id, who.username)
    if step == "unassign":
        return assign(ctx, who, alert_id, None)
    raise FieldError("action", f"must be one of {', '.join((*VERDICTS, *ACTIONS, 'assign', 'unassign'))}")


def assign(ctx: AppContext, who: Principal, alert_id: int, username: str | None) -> dict[str, Any]:
    checked(lambda: ctx.transact(lambda s: assign_alert(s, alert_id, username, who.username, _now())))
    return {"id": alert_id, "assigned_to": username}


def list_subject(
    ctx: AppContext, kind: str, value: str, card_kind: str | None = None
) -> tuple[str, str | None]:
    """(the value stored, the masked PAN for a card) of what the caller typed; the PAN is never kept."""
    if kind not in LIST_KINDS:
        raise FieldError("kind", f"must be one of {', '.join(LIST_KINDS)}, got {kind!r}")
    value = value.strip()
    if card_kind and kind != "mcc":
        raise FieldError("card_kind", "restricts an MCC only")
    if kind == "card":
        try:
            validate_pan(value)
        except PosgateError:
            raise FieldError("value", "not a valid card number") from None
        return ctx.handle.vault.pan_hash(value), mask_pan(value)
    if kind == "mcc":
        return mcc_value(value, card_kind or None), None
    return value, None


def add_to_list(
    ctx: AppContext,
    who: Principal,
    kind: str,
    action: str,
    value: str,
    reason: str,
    expires_at: dt.datetime | None = None,
    card_kind: str | None = None,
) -> dict[str, Any]:
    stored, masked = list_subject(ctx, kind, value, card_kind)

    def work(session: Session) -> int:
        return add_entry(session, kind, action, stored, reason, who.username, _now(), masked, expires_at)

    entry = checked(lambda: ctx.transact(work))
    return {"id": entry, "list": kind, "action": action, "value": masked or stored}


def remove_from_list(
    ctx: AppContext, who: Principal, kind: str, action: str, value: str, card_kind: str | None = None
) -> dict[str, Any]:
    stored, masked = list_subject(ctx, kind, value, card_kind)
    removed = checked(
        lambda: ctx.transact(lambda s: remove_entry(s, kind, action, stored, who.username, _now()))
    )
    if not removed:
        raise NotFound(f"{kind} {masked or stored} is not on the {action} list")
    return {"removed": removed, "list": kind, "action": action, "value": masked or stored}


def remove_list_entry(ctx: AppContext, who: Principal, entry_id: int) -> dict[str, Any]:
    try:
        return ctx.transact(lambda s: remove_entry_by_id(s, entry_id, who.username, _now()))
    except ListError as error:
        raise NotFound(str(error)) from None


def hold(ctx: AppContext, who: Principal, mid: str, reason: str) -> dict[str, Any]:
    hold_id, new = checked(lambda: ctx.transact(lambda s: place_hold(s, mid, reason, who.username, _now())))
    return {"mid": mid, "hold": hold_id, "new": new}


def release(ctx: AppContext, who: Principal, mid: str, note: str = "") -> dict[str, Any]:
    hold_id = checked(lambda: ctx.transact(lambda s: release_hold(s, mid, who.username, _now(), note)))
    return {"mid": mid, "hold": hold_id, "released": True}
