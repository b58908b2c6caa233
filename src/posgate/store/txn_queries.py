"""Read-only views of the host's transactions for people: filtered lists and one transaction in full.
Masked PANs only; the ciphertext and hash never leave this module."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.store.models import Transaction


@dataclass(frozen=True)
class TxnFilter:
    tid: str | None = None
    mid: str | None = None
    state: str | None = None
    kind: str | None = None
    date: dt.date | None = None  # business (acquirer-local) date
    limit: int = 50


LIST_COLUMNS = (
    "rrn",
    "business_date",
    "tid",
    "mid",
    "batch_no",
    "stan",
    "kind",
    "amount_fen",
    "pan_masked",
    "response_code",
    "state",
    "stand_in",
)


def list_transactions(session: Session, where: TxnFilter) -> list[dict[str, Any]]:
    """Newest first."""
    query = select(Transaction).order_by(Transaction.id.desc()).limit(where.limit)
    for column, value in (
        (Transaction.tid, where.tid),
        (Transaction.mid, where.mid),
        (Transaction.state, where.state),
        (Transaction.kind, where.kind),
        (Transaction.business_date, where.date),
    ):
        if value is not None:
            query = query.where(column == value)
    return [_row(txn, LIST_COLUMNS) for txn in session.scalars(query)]


DETAIL_COLUMNS = (
    *LIST_COLUMNS,
    "mti",
    "processing_code",
    "condition_code",
    "entry_mode",
    "card_seq",
    "card_kind",
    "fallback",
    "currency",
    "issuer_name",
    "network_stan",
    "transmission_dt",
    "auth_code",
    "refunded_fen",
    "original_id",
    "settlement_id",
    "created_at",
    "updated_at",
    "trace",
    "risk_score",
    "location",  # field 59 as the terminal reported it (risk), `lat,lon`
)


def get_transaction(session: Session, rrn: str) -> dict[str, Any] | None:
    """One transaction by RRN, with its trace and the answer the terminal got."""
    if not (rrn.isdigit() and len(rrn) <= 12):
        return None
    txn = session.get(Transaction, int(rrn))
    if txn is None:
        return None
    detail = _row(txn, DETAIL_COLUMNS)
    detail["rrn"] = f"{txn.id:012d}"
    detail["response_fields"] = json.loads(txn.response_fields) if txn.response_fields else None
    detail["risk"] = json.loads(txn.risk) if txn.risk else None  # rule-set version, action, rules that hit
    return detail


def _row(txn: Transaction, columns: tuple[str, ...]) -> dict[str, Any]:
    row = {column: getattr(txn, column) for column in columns}
    row["rrn"] = row.get("rrn") or f"{txn.id:012d}"
    return row
