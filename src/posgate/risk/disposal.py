"""Disposal: what risk does to a merchant or terminal beyond declining one request — hold the merchant's
settlement (it is left out of T+1 and D0 payouts, its funds kept in the payable, until an officer releases
it) and suspend a terminal or merchant (the host then answers `03`, as for any suspension:
`merchants.lifecycle`). Placed by a rule after the commit (`apply_after_actions`: holds always, suspensions
only where the rule says `automatic = true`, else the alert is a proposal) or by an officer — from the
alerts desk (`act_on_alert`) or directly. Every change is audited in the same unit of work, with the alert
and the rule-set version that caused it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.errors import PosgateError
from posgate.merchants import lifecycle
from posgate.merchants.errors import OnboardingError
from posgate.store.audit import audit
from posgate.store.models import Merchant, Terminal
from posgate.store.models_risk import RiskAlert, SettlementHold

ALERT_ACTIONS = ("hold", "release", "suspend_terminal", "suspend_merchant")


class DisposalError(PosgateError):
    """A disposal that cannot be made: an unknown merchant or alert, nothing to release, a suspension the
    lifecycle refuses (already suspended or closed)."""


def _reason(text: str) -> str:
    cleaned = " ".join(text.split())
    if not cleaned:
        raise DisposalError("a reason is required")
    return cleaned[:200]


def active_hold(session: Session, mid: str) -> SettlementHold | None:
    return session.scalars(
        select(SettlementHold)
        .where(SettlementHold.mid == mid, SettlementHold.released_at.is_(None))
        .order_by(SettlementHold.id)
    ).first()


def place_hold(
    session: Session,
    mid: str,
    reason: str,
    actor: str,
    now: dt.datetime,
    *,
    alert_id: int | None = None,
    rule: str | None = None,
    rule_version: str | None = None,
) -> tuple[int, bool]:
    """Hold the merchant's settlement; (the hold's id, whether it is new). A merchant already held keeps
    its hold (the new cause is audited against it)."""
    text = _reason(reason)
    if session.scalar(select(Merchant.id).where(Merchant.mid == mid)) is None:
        raise DisposalError(f"no merchant {mid}")
    hold = active_hold(session, mid)
    created = hold is None
    if hold is None:
        hold = SettlementHold(
            mid=mid,
            reason=text,
            created_at=now,
            created_by=actor,
            alert_id=alert_id,
            rule=rule,
            rule_version=rule_version,
        )
        session.add(hold)
        session.flush()
    detail = {"hold": hold.id, "reason": text, "alert": alert_id, "rule": rule, "rule_version": rule_version}
    audit(
        session, actor, "risk_hold_placed" if created else "risk_hold_again", "merchant", mid, now, **detail
    )
    return hold.id, created


def release_hold(session: Session, mid: str, actor: str, now: dt.datetime, note: str = "") -> int:
    """Release the merchant's active hold; its id (`DisposalError` when it is not held). The funds kept go
    out with the next payouts."""
    hold = active_hold(session, mid)
    if hold is None:
        raise DisposalError(f"merchant {mid} has no settlement hold")
    hold.released_at, hold.released_by, hold.release_note = now, actor, (note.strip()[:200] or None)
    audit(session, actor, "risk_hold_released", "merchant", mid, now, hold=hold.id, note=note)
    return hold.id


def held_merchants(session: Session, mids: list[str] | None = None) -> dict[str, SettlementHold]:
    """MID → its active hold (all held merchants, or those among `mids`)."""
    query = select(SettlementHold).where(SettlementHold.released_at.is_(None)).order_by(SettlementHold.id)
    if mids is not None:
        query = query.where(SettlementHold.mid.in_(mids))
    held: dict[str, SettlementHold] = {}
    for hold in session.scalars(query):
        held.setdefault(hold.mid, hold)
    return held


def hold_view(hold: SettlementHold) -> dict[str, Any]:
    return {
        "id": hold.id,
        "mid": hold.mid,
        "reason": hold.reason,
        "created_at": hold.created_at.isoformat(),
        "created_by": hold.created_by,
        "alert_id": hold.alert_id,
        "rule": hold.rule,
        "rule_version": hold.rule_version,
        "released_at": hold.released_at.isoformat() if hold.released_at else None,
        "released_by": hold.released_by,
        "release_note": hold.release_note,
    }


def list_holds(session: Session, include_released: bool = False, limit: int = 500) -> list[dict[str, Any]]:
    """Holds, newest first (active ones only unless `include_released`)."""
    query = select(SettlementHold).order_by(SettlementHold.id.desc()).limit(limit)
    if not include_released:
        query = query.where(SettlementHold.released_at.is_(None))
    return [hold_view(hold) for hold in session.scalars(query)]


def suspend(
    session: Session,
    what: str,
    key: str,
    reason: str,
    actor: str,
    now: dt.datetime,
    *,
    alert_id: int | None = None,
    rule: str | None = None,
    rule_version: str | None = None,
) -> None:
    """Suspend a terminal (`what` = terminal, `key` its TID) or a merchant (its MID) for risk: the host
    answers 03 from its next request until someone resumes it (`posgate merchant …` / the console)."""
    text = _reason(reason)
    try:
        if what == "terminal":
            lifecycle.suspend_terminal(session, key, text, actor, now)
        elif what == "merchant":
            lifecycle.suspend_merchant(session, key, text, actor, now)
        else:
            raise DisposalError(f"suspend a terminal or a merchant, not {what!r}")
    except OnboardingError as error:
        raise DisposalError(str(error)) from None
    detail = {"reason": text, "alert": alert_id, "rule": rule, "rule_version": rule_version}
    audit(session, actor, "risk_suspended", what, key, now, **detail)


def _alert(session: Session, alert_id: int) -> RiskAlert:
    alert = session.get(RiskAlert, alert_id, with_for_update=True)
    if alert is None:
        raise DisposalError(f"no alert {alert_id}")
    return alert


def act_on_alert(
    session: Session, alert_id: int, action: str, actor: str, now: dt.datetime, note: str = ""
) -> dict[str, Any]:
    """An officer's disposal from an alert (open or decided): hold or release the alert's merchant's
    settlement, or suspend its terminal or merchant. The alert's state does not change (dismiss and confirm
    are the verdicts); the action is audited with the alert, its rule and the rule-set version."""
    if action not in ALERT_ACTIONS:
        raise DisposalError(f"an action is one of {', '.join(ALERT_ACTIONS)}, not {action!r}")
    alert = _alert(session, alert_id)
    cause = {"alert_id": alert.id, "rule": alert.rule, "rule_version": alert.rule_version}
    reason = f"alert {alert.id} ({alert.rule})" + (f": {note}" if note.strip() else "")
    result: dict[str, Any] = {"id": alert.id, "action": action, "mid": alert.mid, "tid": alert.tid}
    if action == "hold":
        result["hold"], result["new"] = place_hold(session, alert.mid, reason, actor, now, **cause)
    elif action == "release":
        result["hold"] = release_hold(session, alert.mid, actor, now, note or f"alert {alert.id}")
    elif action == "suspend_terminal":
        suspend(session, "terminal", alert.tid, reason, actor, now, **cause)
    else:
        suspend(session, "merchant", alert.mid, reason, actor, now, **cause)
    return result


def apply_after_actions(
    session: Session,
    alerts: list[tuple[int, str, bool]],
    tid: str,
    mid: str,
    rule_version: str,
    now: dt.datetime,
) -> list[str]:
    """What the rules do by themselves after the commit, for the alerts just opened ((alert id, action,
    automatic) each): a `hold_settlement` alert holds the merchant's settlement; a `suspend_terminal` or
    `suspend_merchant` alert suspends only when automatic (otherwise it is a proposal an officer confirms).
    What was done, as `hold:<id>` / `suspended:<terminal|merchant>`; a suspension that cannot be made (already
    suspended) is skipped."""
    done: list[str] = []
    for alert_id, action, automatic in alerts:
        rule = session.scalar(select(RiskAlert.rule).where(RiskAlert.id == alert_id))
        cause = {"alert_id": alert_id, "rule": rule, "rule_version": rule_version}
        reason = f"rule {rule} ({rule_version}), alert {alert_id}"
        if action == "hold_settlement":
            if _status(session, "merchant", mid) is None:
                continue  # a request that named no known merchant: nothing to hold
            hold, _ = place_hold(session, mid, reason, "risk", now, **cause)
            done.append(f"hold:{hold}")
        elif action in ("suspend_terminal", "suspend_merchant") and automatic:
            what = action.removeprefix("suspend_")
            key = tid if what == "terminal" else mid
            status = _status(session, what, key)
            if status in lifecycle.ACTIVE:
                suspend(session, what, key, reason, "risk", now, **cause)
                done.append(f"suspended:{what}")
    return done


def _status(session: Session, what: str, key: str) -> str | None:
    if what == "terminal":
        return session.scalar(select(Terminal.status).where(Terminal.tid == key))
    return session.scalar(select(Merchant.status).where(Merchant.mid == key))
