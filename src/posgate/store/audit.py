"""The audit trail: who did what to which record, when. One row per transition, written in the same unit
of work as the change it records."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.store.base import utcnow
from posgate.store.models_onboarding import AuditEvent


def audit(
    session: Session,
    actor: str,
    action: str,
    subject_kind: str,
    subject_ref: str | int,
    now: dt.datetime | None = None,
    **detail: Any,
) -> None:
    """Record one event (`detail` must hold no card data, key or password)."""
    session.add(
        AuditEvent(
            at=now or utcnow(),
            actor=actor,
            action=action,
            subject_kind=subject_kind,
            subject_ref=str(subject_ref),
            detail=json.dumps(detail, sort_keys=True, ensure_ascii=False, default=str),
        )
    )


def history(session: Session, subject_kind: str, subject_ref: str | int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.subject_kind == subject_kind, AuditEvent.subject_ref == str(subject_ref))
        .order_by(AuditEvent.id)
    )
    return [
        {"at": row.at.isoformat(), "actor": row.actor, "action": row.action, "detail": json.loads(row.detail)}
        for row in rows
    ]
