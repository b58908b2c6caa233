"""Risk alerts: what a decision asks a risk officer to look at (`alerts_for`, pure) and the alerts in the
store (`open_alerts`, `list_alerts`). A review opens an alert for the rule that asked for it (or "score");
every `alert`, `hold_settlement` and `suspend_*` hit opens one with its action — a hold is placed at once
(`risk.disposal`), a suspension only where the rule is automatic, else it is a proposal an officer confirms
from the alert (`disposal.act_on_alert`). Written after the transaction's outcome is
committed, off the decision. An officer dismisses or confirms an alert (`decide_alert`); confirming fraud
blocks the card."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.errors import PosgateError
from posgate.risk.decision import Decision
from posgate.risk.lists import add_entry
from posgate.store.audit import audit
from posgate.store.models import Transaction
from posgate.store.models_risk import RiskAlert

ALERT_STATES = ("open", "dismissed", "confirmed")


def alerts_for(decision: Decision) -> list[tuple[str, str, bool]]:
    """(rule, action, automatic) of each alert a decision opens, in rule order.

    >>> from posgate.risk.decision import Hit
    >>> hit = Hit("watched", "alert", 20)
    >>> alerts_for(Decision("v", "review", 70, None, (hit,), (hit,), decided_by="score"))
    [('score', 'review', False), ('watched', 'alert', False)]
    """
    opened: list[tuple[str, str, bool]] = []
    if decision.action == "review" and decision.decided_by is not None:
        opened.append((decision.decided_by, "review", False))
    opened.extend((hit.rule, hit.action, hit.automatic) for hit in decision.after)
    return opened


def open_alerts(
    session: Session,
    decision: Decision,
    now: dt.datetime,
    *,
    txn_id: int | None,
    kind: str,
    tid: str,
    mid: str,
    pan_masked: str | None,
    amount_fen: int,
    response_code: str | None,
) -> list[int]:
    """Insert the decision's alerts (naive UTC `now`); their ids."""
    rows = [
        RiskAlert(
            created_at=now,
            rule=rule,
            rule_version=decision.version,
            action=action,
            automatic=automatic,
            txn_id=txn_id,
            kind=kind,
            tid=tid,
            mid=mid,
            pan_masked=pan_masked,
            amount_fen=amount_fen,
            score=decision.score,
            response_code=response_code,
            state="open",
        )
        for rule, action, automatic in alerts_for(decision)
    ]
    session.add_all(rows)
    session.flush()
    return [row.id for row in rows]


def list_alerts(session: Session, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Newest first; RRNs are the transaction ids, twelve digits."""
    query = select(RiskAlert).order_by(RiskAlert.id.desc()).limit(limit)
    if state is not None:
        query = query.where(RiskAlert.state == state)
    return [
        {
            "id": a.id,
            "rule": a.rule,
            "rule_version": a.rule_version,
            "action": a.action,
            "automatic": a.automatic,
            "tid": a.tid,
            "mid": a.mid,
            "created_at": a.created_at.isoformat(),
            "state": a.state,
            "kind": a.kind,
            "rrn": f"{a.txn_id:012d}" if a.txn_id is not None else None,
            "pan_masked": a.pan_masked,
            "amount_fen": a.amount_fen,
            "score": a.score,
            "response_code": a.response_code,
            "assigned_to": a.assigned_to,
        }
        for a in session.scalars(query)
    ]


class AlertError(PosgateError):
    """An alert decision that cannot be made: no such alert, or it is already decided."""


def decide_alert(
    session: Session, alert_id: int, verdict: str, actor: str, now: dt.datetime, note: str = ""
) -> dict[str, Any]:
    """Dismiss or confirm an open alert. Confirming fraud puts the transaction's card on the block list
    (by its PAN hash, from the transaction), so its next sale anywhere gets 59. Audited with the rule and
    the rule-set version; the verdict is the label backtests use."""
    if verdict not in ("dismiss", "confirm"):
        raise AlertError(f"a verdict is dismiss or confirm, not {verdict!r}")
    alert = session.get(RiskAlert, alert_id, with_for_update=True)
    if alert is None:
        raise AlertError(f"no alert {alert_id}")
    if alert.state != "open":
        raise AlertError(f"alert {alert_id} is already {alert.state}")
    alert.state = "dismissed" if verdict == "dismiss" else "confirmed"
    alert.decided_at, alert.decided_by = now, actor
    blocked = None
    if verdict == "confirm" and alert.txn_id is not None:
        pan_hash = session.scalar(select(Transaction.pan_hash).where(Transaction.id == alert.txn_id))
        if pan_hash:
            reason = f"confirmed fraud: alert {alert.id} ({alert.rule})" + (f": {note}" if note else "")
            blocked = add_entry(
                session, "card", "block", pan_hash, reason[:200], actor, now, masked=alert.pan_masked
            )
    detail = {"rule": alert.rule, "rule_version": alert.rule_version, "note": note, "blocked_entry": blocked}
    audit(session, actor, f"risk_alert_{alert.state}", "risk_alert", alert.id, now, **detail)
    return {"id": alert.id, "state": alert.state, "blocked_entry": blocked, "pan_masked": alert.pan_masked}
