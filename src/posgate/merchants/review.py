"""The reviewer's decisions: start the review, ask for more information, reject, approve. Approval creates
the merchant (MID, fee plan, status testing) and its terminals (TIDs, fresh TMKs). Each transition is
audited in the same unit of work."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from posgate.merchants.applications import get_application, merchants_for_id
from posgate.merchants.checks import MAX_MERCHANTS_PER_ID
from posgate.merchants.errors import FieldError, StateConflict
from posgate.merchants.feeplan import FeePlan
from posgate.merchants.identifiers import insert_unique, mid_prefix, next_mid
from posgate.merchants.provisioning import DEFAULT_MAC_ALGORITHM, provision_terminals
from posgate.merchants.wallet_ids import allocate as allocate_wallet_ids
from posgate.merchants.workflow import next_status
from posgate.store.audit import audit
from posgate.store.keys import KeySealer
from posgate.store.models import Merchant

MAX_REASON = 500


def check_reason(reason: str | None, field: str = "reason") -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise FieldError(field, "is required")
    if len(text) > MAX_REASON:
        raise FieldError(field, f"must be at most {MAX_REASON} characters, got {len(text)}")
    return text


def _transition(
    session: Session,
    application_id: int,
    action: str,
    actor: str,
    now: dt.datetime,
    reason: str | None = None,
) -> None:
    row = get_application(session, application_id, for_update=True)
    before = row.status
    row.status = next_status(application_id, row.status, action)
    row.updated_at = now
    detail = {"from": before, "to": row.status}
    if reason is not None:
        row.decision_reason = detail["reason"] = reason
    audit(
        session,
        actor,
        action,
        "application",
        application_id,
        now,
        **detail,
    )


def start_review(session: Session, application_id: int, actor: str, now: dt.datetime) -> None:
    _transition(session, application_id, "start_review", actor, now)


def request_more_info(
    session: Session, application_id: int, reason: str, actor: str, now: dt.datetime
) -> None:
    _transition(session, application_id, "request_more_info", actor, now, check_reason(reason))


def reject(session: Session, application_id: int, reason: str, actor: str, now: dt.datetime) -> None:
    _transition(session, application_id, "reject", actor, now, check_reason(reason))


def approve(
    session: Session,
    sealer: KeySealer,
    application_id: int,
    plan: FeePlan,
    terminals: int,
    actor: str,
    now: dt.datetime,
    mac_algorithm: str = DEFAULT_MAC_ALGORITHM,
) -> tuple[str, list[str]]:
    """Approve: a merchant (status testing) with a MID and the fee plan, and `terminals` terminals (MAC
    algorithm `mac_algorithm`). Returns (MID, TIDs)."""
    row = get_application(session, application_id, for_update=True)
    before = row.status
    status = next_status(application_id, row.status, "approve")
    if (
        merchants_for_id(session, row.id_number_hash, exclude_application=application_id)
        >= MAX_MERCHANTS_PER_ID
    ):
        raise StateConflict(f"the applicant's ID number already has {MAX_MERCHANTS_PER_ID} merchants")
    prefix = mid_prefix(row.area_code, row.mcc)

    def insert(mid: str) -> Merchant:
        merchant = Merchant(
            mid=mid,
            name=row.shop_name,
            mcc=row.mcc,
            status="testing",
            mdr_debit_ppm=plan.mdr_debit_ppm,
            mdr_debit_cap_fen=plan.mdr_debit_cap_fen,
            mdr_credit_ppm=plan.mdr_credit_ppm,
            mdr_wallet_ppm=plan.mdr_wallet_ppm,
            settlement_cycle=plan.settlement_cycle,
            d0_allowed=plan.d0_allowed,
            created_at=now,
        )
        session.add(merchant)
        return merchant

    merchant = insert_unique(session, lambda: next_mid(session, prefix), insert)
    tids = provision_terminals(session, sealer, merchant, terminals, actor, now, mac_algorithm)
    wallet_ids = allocate_wallet_ids(session, merchant.mid, now)
    row.status, row.merchant_id, row.updated_at = status, merchant.id, now
    audit(
        session,
        actor,
        "approve",
        "application",
        application_id,
        now,
        **{"from": before, "to": status},
        mid=merchant.mid,
        tids=tids,
    )
    audit(
        session,
        actor,
        "create",
        "merchant",
        merchant.mid,
        now,
        application=application_id,
        status="testing",
        mdr_debit_ppm=plan.mdr_debit_ppm,
        mdr_debit_cap_fen=plan.mdr_debit_cap_fen,
        mdr_credit_ppm=plan.mdr_credit_ppm,
        mdr_wallet_ppm=plan.mdr_wallet_ppm,
        settlement_cycle=plan.settlement_cycle,
        d0_allowed=plan.d0_allowed,
        wallet_sub_merchants=wallet_ids,
    )
    return merchant.mid, tids
