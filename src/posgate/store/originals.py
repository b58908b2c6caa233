"""Originals: the transaction a void, refund, completion or pre-auth void refers to, and the changes those
make to it (voided, completed, cancelled, refunded amount) — each a conditional UPDATE, so two requests
racing for the same original cannot both win."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from posgate.store.acquirer import rrn_of
from posgate.store.models import Transaction


@dataclass(frozen=True)
class OriginalRecord:
    id: int
    mti: str
    kind: str
    state: str
    tid: str
    mid: str
    batch_no: str
    stan: str
    amount_fen: int
    refunded_fen: int
    pan_hash: str | None
    issuer_name: str | None
    auth_code: str | None
    transmission_dt: str | None
    settled: bool
    business_date: dt.date
    network_stan: str | None = None  # field 11 it was sent to the issuer with

    @property
    def rrn(self) -> str:
        return rrn_of(self.id)


def find_by_rrn(session: Session, rrn: str) -> OriginalRecord | None:
    """The host's RRN is its row id: look it up by primary key."""
    if not (rrn.isdigit() and len(rrn) == 12):
        return None
    row = session.get(Transaction, int(rrn))
    if row is None:
        return None
    return OriginalRecord(
        id=row.id,
        mti=row.mti,
        kind=row.kind,
        state=row.state,
        tid=row.tid,
        mid=row.mid,
        batch_no=row.batch_no,
        stan=row.stan,
        amount_fen=row.amount_fen,
        refunded_fen=row.refunded_fen,
        pan_hash=row.pan_hash,
        issuer_name=row.issuer_name,
        auth_code=row.auth_code,
        transmission_dt=row.transmission_dt,
        settled=row.settlement_id is not None,
        business_date=row.business_date,
        network_stan=row.network_stan,
    )


def reserve_refund(session: Session, original_id: int, amount_fen: int) -> bool:
    """Add `amount_fen` to the original's refunded total if it stays within the original amount."""
    return bool(
        session.execute(
            update(Transaction)
            .where(
                Transaction.id == original_id,
                Transaction.refunded_fen + amount_fen <= Transaction.amount_fen,
            )
            .values(refunded_fen=Transaction.refunded_fen + amount_fen)
            .execution_options(synchronize_session=False)
        ).rowcount
    )


def release_refund(session: Session, original_id: int, amount_fen: int) -> None:
    session.execute(
        update(Transaction)
        .where(Transaction.id == original_id)
        .values(refunded_fen=Transaction.refunded_fen - amount_fen)
        .execution_options(synchronize_session=False)
    )


def move_original(session: Session, original_id: int, from_state: str, to_state: str) -> bool:
    """approved → voided / completed / cancelled (or back, when the void is reversed)."""
    return bool(
        session.execute(
            update(Transaction)
            .where(Transaction.id == original_id, Transaction.state == from_state)
            .values(state=to_state)
            .execution_options(synchronize_session=False)
        ).rowcount
    )


def stand_in_total_today(session: Session, pan_hash: str, business_date: dt.date) -> int:
    """What stand-in already approved for this card today, in fen."""
    amounts = session.scalars(
        select(Transaction.amount_fen).where(
            Transaction.pan_hash == pan_hash,
            Transaction.business_date == business_date,
            Transaction.stand_in.is_(True),
            Transaction.state == "approved",
        )
    )
    return sum(amounts)
