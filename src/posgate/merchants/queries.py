"""Read models for the API and the console: applications with their checks, photos and history; merchants
with their terminals; terminals with their TMK's KCV; a transaction search that only ever reads masked PANs;
dashboard counts. Plain dicts of JSON-ready values."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from posgate.merchants.provisioning import get_merchant, get_terminal, key_kcv
from posgate.merchants.wallet_ids import sub_merchants
from posgate.store.audit import history
from posgate.store.models import Merchant, Terminal, Transaction
from posgate.store.models_onboarding import Application, ApplicationUpload

MAX_ROWS = 500


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def application_summary(row: Application, mid: str | None = None) -> dict[str, Any]:
    checks = json.loads(row.checks)
    return {
        "id": row.id,
        "status": row.status,
        "applicant_name": row.applicant_name,
        "shop_name": row.shop_name,
        "business_type": row.business_type,
        "mcc": row.mcc,
        "warnings": sum(1 for c in checks if c["outcome"] != "pass"),
        "submitted_by": row.submitted_by,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "mid": mid,
    }


def application_view(session: Session, row: Application) -> dict[str, Any]:
    merchant = session.get(Merchant, row.merchant_id) if row.merchant_id else None
    uploads = session.scalars(
        select(ApplicationUpload)
        .where(ApplicationUpload.application_id == row.id)
        .order_by(ApplicationUpload.id)
    )
    view = application_summary(row, merchant.mid if merchant else None)
    view.update(
        {
            "id_number_masked": row.id_number_masked,
            "birth_date": _iso(row.birth_date),
            "mobile": row.mobile,
            "settlement_card_masked": row.settlement_card_masked,
            "settlement_bank": row.settlement_bank,
            "address": row.address,
            "area_code": row.area_code,
            "licence_number": row.licence_number,
            "decision_reason": row.decision_reason,
            "checks": json.loads(row.checks),
            "uploads": [
                {
                    "kind": u.kind,
                    "sha256": u.sha256,
                    "mime": u.mime,
                    "size": u.size,
                    "width": u.width,
                    "height": u.height,
                    "original_name": u.original_name,
                    "url": f"/api/applications/{row.id}/uploads/{u.kind}",
                }
                for u in uploads
            ],
            "history": history(session, "application", row.id),
            "merchant_status": merchant.status if merchant else None,
        }
    )
    return view


def list_applications(
    session: Session, statuses: tuple[str, ...] = (), limit: int = 200
) -> list[dict[str, Any]]:
    query = (
        select(Application, Merchant.mid)
        .outerjoin(Merchant, Merchant.id == Application.merchant_id)
        .order_by(Application.id.desc())
        .limit(min(limit, MAX_ROWS))
    )
    if statuses:
        query = query.where(Application.status.in_(statuses))
    return [application_summary(row, mid) for row, mid in session.execute(query)]


def upload_row(session: Session, application_id: int, kind: str) -> ApplicationUpload | None:
    return session.scalar(
        select(ApplicationUpload).where(
            ApplicationUpload.application_id == application_id, ApplicationUpload.kind == kind
        )
    )


def terminal_summary(session: Session, terminal: Terminal) -> dict[str, Any]:
    return {
        "tid": terminal.tid,
        "status": terminal.status,
        "nii": terminal.nii,
        "mac_algorithm": terminal.mac_algorithm,
        "tmk_kcv": key_kcv(session, "terminal", terminal.tid, "TMK"),
        "signed_in_at": _iso(terminal.signed_in_at),
        "new_keys_issued_at": _iso(terminal.pending_at),
        "live_at": _iso(terminal.live_at),
        "created_at": _iso(terminal.created_at),
    }


def merchant_summary(merchant: Merchant) -> dict[str, Any]:
    return {
        "mid": merchant.mid,
        "name": merchant.name,
        "mcc": merchant.mcc,
        "status": merchant.status,
        "fee_plan": {
            "mdr_debit_ppm": merchant.mdr_debit_ppm,
            "mdr_debit_cap_fen": merchant.mdr_debit_cap_fen,
            "mdr_credit_ppm": merchant.mdr_credit_ppm,
            "mdr_wallet_ppm": merchant.mdr_wallet_ppm,
            "settlement_cycle": merchant.settlement_cycle,
            "d0_allowed": merchant.d0_allowed,
        },
        "created_at": _iso(merchant.created_at),
        "live_at": _iso(merchant.live_at),
    }


def merchant_view(session: Session, mid: str) -> dict[str, Any]:
    merchant = get_merchant(session, mid)
    view = merchant_summary(merchant)
    terminals = session.scalars(
        select(Terminal).where(Terminal.merchant_id == merchant.id).order_by(Terminal.tid)
    )
    application_id = session.scalar(select(Application.id).where(Application.merchant_id == merchant.id))
    view.update(
        {
            "terminals": [terminal_summary(session, t) for t in terminals],
            "wallet_sub_merchants": sub_merchants(session, merchant.mid),
            "application_id": application_id,
            "history": history(session, "merchant", mid),
        }
    )
    return view


def list_merchants(session: Session, status: str | None = None) -> list[dict[str, Any]]:
    query = select(Merchant).order_by(Merchant.mid).limit(MAX_ROWS)
    if status:
        query = query.where(Merchant.status == status)
    counts = dict(
        session.execute(
            select(Terminal.merchant_id, func.count(Terminal.id)).group_by(Terminal.merchant_id)
        ).all()
    )
    return [merchant_summary(m) | {"terminal_count": counts.get(m.id, 0)} for m in session.scalars(query)]


def terminal_view(session: Session, tid: str) -> dict[str, Any]:
    terminal = get_terminal(session, tid)
    merchant = session.get(Merchant, terminal.merchant_id)
    assert merchant is not None
    view = terminal_summary(session, terminal)
    view.update(
        {
            "mid": merchant.mid,
            "merchant_name": merchant.name,
            "merchant_status": merchant.status,
            "ktk_kcv": key_kcv(session, "acquirer", "KTK", "KTK"),
            "history": history(session, "terminal", tid),
        }
    )
    return view


def search_transactions(
    session: Session,
    tid: str | None = None,
    mid: str | None = None,
    state: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Newest first; the PAN only ever as its masked form (the ciphertext and hash are not selected)."""
    query = select(
        Transaction.id,
        Transaction.created_at,
        Transaction.tid,
        Transaction.mid,
        Transaction.kind,
        Transaction.amount_fen,
        Transaction.currency,
        Transaction.pan_masked,
        Transaction.card_kind,
        Transaction.issuer_name,
        Transaction.rrn,
        Transaction.auth_code,
        Transaction.response_code,
        Transaction.state,
        Transaction.business_date,
    ).order_by(Transaction.id.desc())
    if tid:
        query = query.where(Transaction.tid == tid)
    if mid:
        query = query.where(Transaction.mid == mid)
    if state:
        query = query.where(Transaction.state == state)
    if date_from:
        query = query.where(Transaction.business_date >= date_from)
    if date_to:
        query = query.where(Transaction.business_date <= date_to)
    rows = session.execute(query.limit(max(1, min(limit, MAX_ROWS)))).mappings()
    return [
        dict(row) | {"created_at": _iso(row["created_at"]), "business_date": _iso(row["business_date"])}
        for row in rows
    ]


def dashboard_counts(session: Session) -> dict[str, dict[str, int]]:
    def by_status(model: type[Application] | type[Merchant] | type[Terminal]) -> dict[str, int]:
        return dict(session.execute(select(model.status, func.count(model.id)).group_by(model.status)).all())  # type: ignore[arg-type]

    return {
        "applications": by_status(Application),
        "merchants": by_status(Merchant),
        "terminals": by_status(Terminal),
    }
