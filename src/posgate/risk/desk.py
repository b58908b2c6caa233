"""The alerts desk's reads and its assignment: the queue with filters and ages (`alert_queue`), one case
with everything an officer judges it by (`alert_case`: the alert, its transaction and the rules that hit,
the card's recent history — masked —, the merchant's profile, settlement hold and 30-day chart, the
terminal's reported locations against its registered one, the alert's audit trail), and `assign_alert`.
Plain Session functions shared by the console and the API; no card data leaves them but masked PANs."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from posgate.risk.alerts import ALERT_STATES, AlertError
from posgate.risk.disposal import active_hold, hold_view
from posgate.risk.geo import distance_km, parse_location
from posgate.store.audit import audit
from posgate.store.models import Merchant, Terminal, Transaction
from posgate.store.models_onboarding import AuditEvent
from posgate.store.models_risk import RiskAlert

HISTORY_DAYS = 30
HISTORY_ROWS = 50
LOCATION_ROWS = 200
PURCHASES = ("sale", "completion")


def alert_row(alert: RiskAlert, now: dt.datetime) -> dict[str, Any]:
    """An alert as the queue and the API show it (the keys of `posgate risk alerts --json`, and its age)."""
    return {
        "id": alert.id,
        "rule": alert.rule,
        "rule_version": alert.rule_version,
        "action": alert.action,
        "automatic": alert.automatic,
        "tid": alert.tid,
        "mid": alert.mid,
        "created_at": alert.created_at.isoformat(),
        "age_s": max(0, int((now - alert.created_at).total_seconds())),
        "state": alert.state,
        "kind": alert.kind,
        "rrn": f"{alert.txn_id:012d}" if alert.txn_id is not None else None,
        "pan_masked": alert.pan_masked,
        "amount_fen": alert.amount_fen,
        "score": alert.score,
        "response_code": alert.response_code,
        "assigned_to": alert.assigned_to,
        "decided_at": alert.decided_at.isoformat() if alert.decided_at else None,
        "decided_by": alert.decided_by,
    }


def alert_queue(
    session: Session,
    now: dt.datetime,
    *,
    state: str | None = "open",
    rule: str | None = None,
    mid: str | None = None,
    tid: str | None = None,
    assigned_to: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Alerts, oldest first when open (the queue is worked from its oldest), newest first otherwise.
    `assigned_to` "-" means unassigned."""
    if state is not None and state not in ALERT_STATES:
        raise AlertError(f"state: one of {', '.join(ALERT_STATES)}, not {state!r}")
    query = select(RiskAlert)
    if state is not None:
        query = query.where(RiskAlert.state == state)
    if rule:
        query = query.where(RiskAlert.rule == rule)
    if mid:
        query = query.where(RiskAlert.mid == mid)
    if tid:
        query = query.where(RiskAlert.tid == tid)
    if assigned_to == "-":
        query = query.where(RiskAlert.assigned_to.is_(None))
    elif assigned_to:
        query = query.where(RiskAlert.assigned_to == assigned_to)
    order = RiskAlert.id.asc() if state == "open" else RiskAlert.id.desc()
    return [alert_row(a, now) for a in session.scalars(query.order_by(order).limit(limit))]


def queue_rules(session: Session) -> list[str]:
    """The rules that have raised alerts: the queue's rule filter."""
    return sorted(session.scalars(select(RiskAlert.rule).distinct()))


def assign_alert(session: Session, alert_id: int, username: str | None, actor: str, now: dt.datetime) -> None:
    """Give an alert to an officer (None: back to the queue); audited."""
    alert = session.get(RiskAlert, alert_id, with_for_update=True)
    if alert is None:
        raise AlertError(f"no alert {alert_id}")
    before, alert.assigned_to = alert.assigned_to, (username or None)
    audit(session, actor, "risk_alert_assigned", "risk_alert", alert.id, now, to=username, was=before)


def _txn_view(txn: Transaction) -> dict[str, Any]:
    return {
        "rrn": f"{txn.id:012d}",
        "created_at": txn.created_at.isoformat(),
        "kind": txn.kind,
        "tid": txn.tid,
        "mid": txn.mid,
        "amount_fen": txn.amount_fen,
        "pan_masked": txn.pan_masked,
        "card_kind": txn.card_kind,
        "entry_mode": txn.entry_mode,
        "response_code": txn.response_code,
        "state": txn.state,
        "risk_score": txn.risk_score,
        "location": txn.location,
    }


def _card_history(session: Session, pan_hash: str | None, since: dt.datetime) -> list[dict[str, Any]]:
    if not pan_hash:
        return []
    query = (
        select(Transaction)
        .where(Transaction.pan_hash == pan_hash, Transaction.created_at >= since)
        .order_by(Transaction.id.desc())
        .limit(HISTORY_ROWS)
    )
    return [_txn_view(t) for t in session.scalars(query)]


def _daily(session: Session, mid: str, since: dt.datetime, today: dt.date) -> list[dict[str, Any]]:
    """Approved purchases per UTC day over the last 30 days (zeros included): the merchant's chart."""
    rows = session.execute(
        select(Transaction.created_at, Transaction.amount_fen).where(
            Transaction.mid == mid,
            Transaction.created_at >= since,
            Transaction.kind.in_(PURCHASES),
            Transaction.response_code == "00",
        )
    )
    days = {today - dt.timedelta(days=n): [0, 0] for n in range(HISTORY_DAYS)}
    for created_at, amount in rows:
        day = created_at.date()
        if day in days:
            days[day][0] += 1
            days[day][1] += amount
    return [{"date": d.isoformat(), "count": c, "amount_fen": a} for d, (c, a) in sorted(days.items())]


def _merchant(session: Session, mid: str, now: dt.datetime) -> dict[str, Any] | None:
    merchant = session.scalar(select(Merchant).where(Merchant.mid == mid))
    if merchant is None:
        return None
    since = now - dt.timedelta(days=HISTORY_DAYS)
    count, total = session.execute(
        select(func.count(), func.coalesce(func.sum(Transaction.amount_fen), 0)).where(
            Transaction.mid == mid,
            Transaction.created_at >= since,
            Transaction.kind.in_(PURCHASES),
            Transaction.response_code == "00",
        )
    ).one()
    hold = active_hold(session, mid)
    return {
        "mid": mid,
        "name": merchant.name,
        "mcc": merchant.mcc,
        "status": merchant.status,
        "live_at": merchant.live_at.isoformat() if merchant.live_at else None,
        "created_at": merchant.created_at.isoformat() if merchant.created_at else None,
        "purchases_30d": int(count),
        "amount_30d_fen": int(total),
        "avg_ticket_30d_fen": int(total) // int(count) if count else 0,
        "hold": hold_view(hold) if hold is not None else None,
        "daily": _daily(session, mid, since, now.date()),
    }


def _terminal(session: Session, tid: str, now: dt.datetime) -> dict[str, Any] | None:
    terminal = session.scalar(select(Terminal).where(Terminal.tid == tid))
    if terminal is None:
        return None
    home = parse_location(terminal.location)
    reported = []
    query = (
        select(Transaction.created_at, Transaction.location)
        .where(
            Transaction.tid == tid,
            Transaction.location.is_not(None),
            Transaction.created_at >= now - dt.timedelta(days=HISTORY_DAYS),
        )
        .order_by(Transaction.id.desc())
        .limit(LOCATION_ROWS)
    )
    for created_at, text in session.execute(query):
        point = parse_location(text)
        if point is None:
            continue
        far = round(distance_km(point, home), 1) if home is not None else None
        reported.append({"at": created_at.isoformat(), "lat": point[0], "lon": point[1], "distance_km": far})
    return {
        "tid": tid,
        "status": terminal.status,
        "registered": {"lat": home[0], "lon": home[1]} if home is not None else None,
        "reported": reported,
    }


def alert_case(session: Session, alert_id: int, now: dt.datetime) -> dict[str, Any]:
    """Everything the case page shows (naive UTC `now`)."""
    alert = session.get(RiskAlert, alert_id)
    if alert is None:
        raise AlertError(f"no alert {alert_id}")
    txn = session.get(Transaction, alert.txn_id) if alert.txn_id is not None else None
    decision = json.loads(txn.risk) if txn is not None and txn.risk else None
    since = now - dt.timedelta(days=HISTORY_DAYS)
    history = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.subject_kind == "risk_alert", AuditEvent.subject_ref == str(alert.id))
        .order_by(AuditEvent.id)
    )
    return {
        "alert": alert_row(alert, now),
        "transaction": _txn_view(txn) if txn is not None else None,
        "decision": decision,  # rule-set version, action, score, code, the rules that hit
        "card_history": _card_history(session, txn.pan_hash if txn is not None else None, since),
        "merchant": _merchant(session, alert.mid, now),
        "terminal": _terminal(session, alert.tid, now),
        "history": [
            {
                "at": e.at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "detail": json.loads(e.detail or "{}"),
            }
            for e in history
        ],
    }
