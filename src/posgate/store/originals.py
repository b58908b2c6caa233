"""Originals: the transaction a void, refund, completion or pre-auth void refers to, and the changes those
make to it (voided, completed, cancelled, refunded amount) — each a conditional UPDATE, so two requests
racing for the same original cannot both win."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from posgate.store.acquirer import find_original, reverse_transaction, rrn_of
from posgate.store.models import Transaction
from posgate.txnset import ROWS, TxnState, kinds_where


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


def reserve_refund(session: Session, original_id: int, amount_fen: int, refund_id: int | None = None) -> bool:
    """Add `amount_fen` to the original's refunded total if it stays within the original amount. The
    refund's own row (`refund_id`) then names its original, so whoever resolves that refund later (its
    outcome, or the recovery of a refund left in doubt) knows which reservation to give back."""
    reserved = bool(
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
    if reserved and refund_id is not None:
        session.execute(
            update(Transaction)
            .where(Transaction.id == refund_id)
            .values(original_id=original_id)
            .execution_options(synchronize_session=False)
        )
    return reserved


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


REVERSIBLE_MTIS = ("0200", "0100")
REVERSIBLE_KINDS = kinds_where(lambda row: row.reversible)
# reversing one of these gives its original back its approved state (from the state it had put it in)
RESTORES_ORIGINAL = {
    row.kind: row.reversal_restores for row in ROWS if row.reversible and row.reversal_restores is not None
}


@dataclass(frozen=True)
class TerminalReversal:
    """What a terminal's 0400 did: the original it found (if any) and whether this call reversed it."""

    original_id: int | None = None
    reversed_kind: str | None = None
    refused: str | None = None  # why a found original was left alone

    @property
    def reversed(self) -> bool:
        return self.reversed_kind is not None


def reverse_for_terminal(
    session: Session,
    tid: str,
    stan: str,
    business_date: dt.date,
    processing_code: str,
    reason_code: str,
    now: dt.datetime,
) -> TerminalReversal:
    """A terminal's 0400: find its original (TID + STAN + processing code, today or yesterday), mark it
    reversed and queue its 0420 — exactly once (`reverse_transaction` is a conditional UPDATE) — and give
    a reversed void, completion or pre-authorization void's original back its approved state."""
    original = find_original(session, tid, stan, business_date, processing_code, REVERSIBLE_MTIS)
    if original is None or original.kind not in REVERSIBLE_KINDS:
        return TerminalReversal()
    if original.refunded_fen:  # refunds were made against it since: reversing would pay twice
        return TerminalReversal(original.id, refused="it has been partly refunded")
    if not reverse_transaction(session, original.id, reason_code, now):
        return TerminalReversal(original.id)
    if original.kind in RESTORES_ORIGINAL and original.original_id is not None:
        move_original(session, original.original_id, RESTORES_ORIGINAL[original.kind], TxnState.APPROVED)
    return TerminalReversal(original.id, reversed_kind=original.kind)


# the 0420 of a request found already reversed by its terminal: the 0400's own field 39 is not kept, and a
# terminal reverses a request that got no answer
EARLY_REVERSAL_REASON_CODE = "98"


def reversed_before_recorded(
    session: Session,
    txn_id: int,
    tid: str,
    stan: str,
    business_date: dt.date,
    processing_code: str,
    now: dt.datetime,
) -> bool:
    """Whether the terminal's 0400 for request `txn_id` (same TID, STAN and processing code, today or
    yesterday) reached the host before it: if so the request is marked reversed here and its 0420 queued
    (`reverse_transaction`, exactly once), and the 0400 names it as its original.

    The caller runs this in a unit of work of its own, after the one that inserted `txn_id` committed; the
    0400's `reverse_for_terminal` runs after the 0400's own row committed. Of two such check-after-insert
    pairs, at least one sees the other's row (PostgreSQL's read committed and SQLite both read every
    commit made before the statement), so a request and its reversal handled at the same time on any
    host nodes can never both miss each other."""
    reversal_id = session.scalar(
        select(Transaction.id)
        .where(
            Transaction.tid == tid,
            Transaction.stan == stan,
            Transaction.mti == "0400",
            Transaction.processing_code == processing_code,
            Transaction.business_date.in_((business_date, business_date - dt.timedelta(days=1))),
            Transaction.state.in_((TxnState.PENDING, TxnState.APPROVED)),
            or_(Transaction.original_id.is_(None), Transaction.original_id == txn_id),
        )
        .order_by(Transaction.id.desc())
        .limit(1)
    )
    if reversal_id is None:
        return False
    reverse_transaction(session, txn_id, EARLY_REVERSAL_REASON_CODE, now)
    session.execute(
        update(Transaction)
        .where(
            Transaction.id == reversal_id,
            Transaction.original_id.is_(None),
            Transaction.state != TxnState.PENDING,
        )
        .values(original_id=txn_id)
        .execution_options(synchronize_session=False)
    )
    return True


def stand_in_total_today(session: Session, pan_hash: str, business_date: dt.date) -> int:
    """What stand-in already approved for this card today, in fen."""
    amounts = session.scalars(
        select(Transaction.amount_fen).where(
            Transaction.pan_hash == pan_hash,
            Transaction.business_date == business_date,
            Transaction.stand_in.is_(True),
            Transaction.state == TxnState.APPROVED,
        )
    )
    return sum(amounts)
