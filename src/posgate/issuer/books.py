"""The issuer simulator's books in the store: cards, accounts, authorizations. Plain functions of a
SQLAlchemy `Session`; the caller's unit of work commits.

Money moves only through conditional UPDATEs whose WHERE clause re-checks the available amount
(`balance_fen - held_fen >= :a` on a debit account), so concurrent requests can never overdraw on SQLite
or PostgreSQL: a row count of 0 means "not enough" (`INSUFFICIENT_FUNDS`). Who undoes an authorization is
decided the same way: `UPDATE … SET state = 'reversed' WHERE id = :id AND state = 'approved'` succeeds for
exactly one reversal.

An authorization is claimed under its unique key (bank, acquirer id, STAN, transmission date-time, MTI)
BEFORE any money moves: a repeated or concurrent identical request hits the key and gets the first answer,
and a reversal that arrives before its original leaves a tombstone (state `reversed`, effect `none`) under
the original's key, so the late original collides with it and is declined without being applied.

Authorization states: `approved`, `declined`, `reversed`; a pre-authorization can also become `completed`
or `voided` (its hold released by a completion or a pre-authorization void, which store its auth code).
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from posgate.iso8583.reasons import Reason
from posgate.issuer.messages import AuthKey
from posgate.issuer.rules import AccountSnapshot, CardSnapshot, Decision, Effect
from posgate.security.at_rest import CardVault
from posgate.store.models import SimAccount, SimAuthorization, SimBank, SimCard

APPROVED = "approved"
DECLINED = "declined"
REVERSED = "reversed"
COMPLETED = "completed"
VOIDED = "voided"
PENDING = "pending"
PREAUTH_MTI = "0100"
#: What a request gets when it arrives after its own reversal (the tombstone's answer).
LATE_ORIGINAL_CODE = "05"


# ---------------------------------------------------------------------------------------------------- reads


def list_banks(session: Session) -> list[SimBank]:
    return list(session.scalars(select(SimBank).order_by(SimBank.id)))


def find_card(session: Session, vault: CardVault, bank: str, pan: str, lock: bool = False) -> SimCard | None:
    """The bank's card with this PAN (looked up by its keyed hash), locked for update when `lock`."""
    stmt = select(SimCard).where(SimCard.pan_hash == vault.pan_hash(pan), SimCard.bank == bank)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def snapshot(card: SimCard, account: SimAccount) -> CardSnapshot:
    """The rules' view of a card and its account."""
    return CardSnapshot(
        state=card.state,
        expiry=card.expiry,
        pin_failures=card.pin_failures,
        account=account_snapshot(account),
    )


def account_snapshot(account: SimAccount) -> AccountSnapshot:
    return AccountSnapshot(
        kind=account.kind,
        balance_fen=account.balance_fen,
        credit_limit_fen=account.credit_limit_fen,
        held_fen=account.held_fen,
    )


def find_authorization(session: Session, key: AuthKey) -> SimAuthorization | None:
    return session.scalar(
        select(SimAuthorization).where(
            SimAuthorization.bank == key.bank,
            SimAuthorization.acquirer_id == key.acquirer_id,
            SimAuthorization.stan == key.stan,
            SimAuthorization.transmission_dt == key.transmission_dt,
            SimAuthorization.mti == key.mti,
        )
    )


def find_preauth(
    session: Session, bank: str, account_id: int, auth_code: str, state: str = APPROVED
) -> SimAuthorization | None:
    """The pre-authorization (0100 hold) of this account with this auth code, in `state`."""
    return session.scalar(
        select(SimAuthorization)
        .where(
            SimAuthorization.bank == bank,
            SimAuthorization.account_id == account_id,
            SimAuthorization.mti == PREAUTH_MTI,
            SimAuthorization.effect == Effect.HOLD.value,
            SimAuthorization.auth_code == auth_code,
            SimAuthorization.state == state,
        )
        .order_by(SimAuthorization.id.desc())
        .limit(1)
    )


# ---------------------------------------------------------------------------------------------------- claims


def _insert(session: Session, row: SimAuthorization) -> bool:
    """Insert `row` in a savepoint; False when its unique key is already taken (nothing else changes)."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def claim(
    session: Session, key: AuthKey, processing_code: str, amount_fen: int, rrn: str | None
) -> SimAuthorization | None:
    """Take `key` for a new request (state `pending` until `finish`); None when an identical request has
    it already (on PostgreSQL this waits for a concurrent one to commit)."""
    row = SimAuthorization(
        bank=key.bank,
        acquirer_id=key.acquirer_id,
        stan=key.stan,
        transmission_dt=key.transmission_dt,
        mti=key.mti,
        processing_code=processing_code,
        rrn=rrn,
        amount_fen=amount_fen,
        effect=Effect.NONE.value,
        state=PENDING,
        response_code="96",
    )
    return row if _insert(session, row) else None


def finish(row: SimAuthorization, decision: Decision, auth_code: str | None, account_id: int | None) -> None:
    """Record the answer on a claimed authorization."""
    row.state = APPROVED if decision.approved else DECLINED
    row.response_code = decision.response_code
    row.effect = decision.effect.value
    row.auth_code = auth_code
    row.account_id = account_id


def set_pin_failures(session: Session, card_id: int, count: int) -> None:
    session.execute(
        update(SimCard)
        .where(SimCard.id == card_id)
        .values(pin_failures=count)
        .execution_options(synchronize_session=False)
    )


# ---------------------------------------------------------------------------------------------------- money


def _available(kind: str) -> ColumnElement[Any]:
    if kind == "credit":
        return SimAccount.credit_limit_fen - SimAccount.balance_fen - SimAccount.held_fen
    return SimAccount.balance_fen - SimAccount.held_fen


def _spent(kind: str, amount_fen: int) -> ColumnElement[Any]:
    """The balance after spending `amount_fen` (negative: giving it back)."""
    if kind == "credit":
        return SimAccount.balance_fen + amount_fen
    return SimAccount.balance_fen - amount_fen


def _update_account(
    session: Session, account_id: int, guard: ColumnElement[bool] | None, **values: Any
) -> bool:
    stmt = update(SimAccount).where(SimAccount.id == account_id)
    if guard is not None:
        stmt = stmt.where(guard)
    result = session.execute(stmt.values(**values).execution_options(synchronize_session=False))
    return result.rowcount == 1  # type: ignore[attr-defined]


def _set_state(session: Session, auth_id: int, old: str, new: str, **values: Any) -> bool:
    """Move an authorization from `old` to `new` state; False when it was not in `old` (someone else won)."""
    result = session.execute(
        update(SimAuthorization)
        .where(SimAuthorization.id == auth_id, SimAuthorization.state == old)
        .values(state=new, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def apply_effect(
    session: Session, account: SimAccount, decision: Decision, preauth: SimAuthorization | None = None
) -> Reason | None:
    """Book an approved decision's effect atomically; returns the decline reason when it cannot be booked
    (funds gone since the snapshot: `INSUFFICIENT_FUNDS`; pre-authorization gone: `ORIGINAL_NOT_FOUND`).

    `preauth` is the pre-authorization a COMPLETE or RELEASE effect releases.
    """
    kind, amount = account.kind, decision.amount_fen
    guard = None if decision.forced else _available(kind) >= amount
    effect = decision.effect
    if effect is Effect.NONE:
        return None
    if effect is Effect.DEBIT:
        ok = _update_account(session, account.id, guard, balance_fen=_spent(kind, amount))
        return None if ok else Reason.INSUFFICIENT_FUNDS
    if effect is Effect.HOLD:
        ok = _update_account(session, account.id, guard, held_fen=SimAccount.held_fen + amount)
        return None if ok else Reason.INSUFFICIENT_FUNDS
    if effect is Effect.CREDIT:
        _update_account(session, account.id, None, balance_fen=_spent(kind, -amount))
        return None
    if preauth is None:
        return Reason.ORIGINAL_NOT_FOUND
    if effect is Effect.RELEASE:
        if not _set_state(session, preauth.id, APPROVED, VOIDED):
            return Reason.ORIGINAL_NOT_FOUND
        _update_account(session, account.id, None, held_fen=SimAccount.held_fen - decision.released_fen)
        return None
    # COMPLETE: release the hold and spend, as one guarded update; a hold reversed meanwhile -> plain debit
    released = decision.released_fen
    if not _set_state(session, preauth.id, APPROVED, COMPLETED):
        debit = Decision(decision.reason, Effect.DEBIT, amount, forced=decision.forced)
        return apply_effect(session, account, debit)
    guard = None if decision.forced else _available(kind) + released >= amount
    if _update_account(
        session, account.id, guard, balance_fen=_spent(kind, amount), held_fen=SimAccount.held_fen - released
    ):
        return None
    _set_state(session, preauth.id, COMPLETED, APPROVED)
    return Reason.INSUFFICIENT_FUNDS


def _undo_effect(session: Session, row: SimAuthorization) -> None:
    """Give back what an approved authorization booked (its state already moved to `reversed`)."""
    effect = Effect(row.effect)
    if effect is Effect.NONE or row.account_id is None:
        return
    kind = session.scalar(select(SimAccount.kind).where(SimAccount.id == row.account_id)) or "debit"
    amount = row.amount_fen
    if effect is Effect.DEBIT:
        _update_account(session, row.account_id, None, balance_fen=_spent(kind, -amount))
    elif effect is Effect.HOLD:
        _update_account(session, row.account_id, None, held_fen=SimAccount.held_fen - amount)
    elif effect is Effect.CREDIT:
        _update_account(session, row.account_id, None, balance_fen=_spent(kind, amount))
    elif row.auth_code is not None:  # COMPLETE / RELEASE: put the pre-authorization's hold back
        state = COMPLETED if effect is Effect.COMPLETE else VOIDED
        preauth = find_preauth(session, row.bank, row.account_id, row.auth_code, state)
        released = 0
        if preauth is not None and _set_state(session, preauth.id, state, APPROVED):
            released = preauth.amount_fen
        spent = amount if effect is Effect.COMPLETE else 0
        _update_account(
            session,
            row.account_id,
            None,
            balance_fen=_spent(kind, -spent),
            held_fen=SimAccount.held_fen + released,
        )


# ------------------------------------------------------------------------------------------------ reversal


class ReversalOutcome(Enum):
    REVERSED = "reversed"  # the original was approved: its effect is undone now
    NOTHING_TO_UNDO = "nothing to undo"  # declined, or reversed before
    TOMBSTONE = "tombstone"  # the original was never seen: a late arrival will be declined


def reverse(
    session: Session, original: AuthKey, processing_code: str, amount_fen: int, now: dt.datetime
) -> ReversalOutcome:
    """Reverse the authorization under `original` exactly once, or leave a tombstone under its key."""
    for _ in range(2):
        row = find_authorization(session, original)
        if row is None:
            tombstone = SimAuthorization(
                bank=original.bank,
                acquirer_id=original.acquirer_id,
                stan=original.stan,
                transmission_dt=original.transmission_dt,
                mti=original.mti,
                processing_code=processing_code,
                amount_fen=amount_fen,
                effect=Effect.NONE.value,
                state=REVERSED,
                response_code=LATE_ORIGINAL_CODE,
                reversed_at=now,
            )
            if _insert(session, tombstone):
                return ReversalOutcome.TOMBSTONE
            continue  # the original was inserted meanwhile: reverse it
        if _set_state(session, row.id, APPROVED, REVERSED, reversed_at=now):
            _undo_effect(session, row)
            return ReversalOutcome.REVERSED
        return ReversalOutcome.NOTHING_TO_UNDO
    return ReversalOutcome.NOTHING_TO_UNDO
