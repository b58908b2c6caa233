"""The issuer simulator's books in the store: cards, accounts, authorizations. Plain functions of a
SQLAlchemy `Session`; the caller's unit of work commits.

They run on the hot path of every request, so they speak SQLAlchemy Core, not the ORM: each statement is
built once, at import, on the mapped tables (`SimCard.__table__`, …) with `bindparam`s, and executed on the
session's connection. Nothing is flushed by a unit of work and nothing enters the identity map; reads
return plain records (`CardOnFile`) or read-only rows (`find_authorization`, `find_preauth`).

Money moves only through conditional UPDATEs whose WHERE clause re-checks the available amount
(`balance_fen - held_fen >= :need` on a debit account), so concurrent requests can never overdraw on SQLite
or PostgreSQL: a row count of 0 means "not enough" (`INSUFFICIENT_FUNDS`). Who undoes an authorization is
decided the same way: `UPDATE … SET state = 'reversed' WHERE id = :id AND state = 'approved'` succeeds for
exactly one reversal.

An authorization is claimed under its unique key (bank, acquirer id, STAN, transmission date-time, MTI)
BEFORE any money moves: a repeated or concurrent identical request hits the key and gets the first answer,
and a reversal that arrives before its original leaves a tombstone (state `reversed`, effect `none`) under
the original's key, so the late original collides with it and is declined without being applied. The claim
is one `INSERT … ON CONFLICT (key) DO NOTHING RETURNING id` (SQLite and PostgreSQL, the stores posgate runs
on): no row back means the key is taken — no IntegrityError, so no savepoint around it. On PostgreSQL the
INSERT waits for a concurrent transaction holding the same key, as a plain INSERT would.

Authorization states: `approved`, `declined`, `reversed`; a pre-authorization can also become `completed`
or `voided` (its hold released by a completion or a pre-authorization void, which store its auth code).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, Row, Table, and_, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from posgate.iso8583.reasons import Reason
from posgate.issuer.messages import AuthKey
from posgate.issuer.rules import AccountSnapshot, CardSnapshot, Decision, Effect
from posgate.security.at_rest import CardVault
from posgate.store.models_simulator import SimAccount, SimAuthorization, SimBank, SimCard
from posgate.txnset import TxnState

PREAUTH_MTI = "0100"
#: What a request gets when it arrives after its own reversal (the tombstone's answer).
LATE_ORIGINAL_CODE = "05"

_cards = cast(Table, SimCard.__table__)
_accounts = cast(Table, SimAccount.__table__)
_auths = cast(Table, SimAuthorization.__table__)


def _execute(session: Session, statement: Executable, params: dict[str, Any]) -> CursorResult[Any]:
    """Run a prebuilt Core statement on the session's connection (in its transaction, no ORM flush)."""
    return session.connection().execute(statement, params)


# ---------------------------------------------------------------------------------------------------- cards


@dataclass(frozen=True)
class CardOnFile:
    """A card and its account as `find_card` reads them: ids, what the card checks need (PSN, PIN offset)
    and the rules' view (`snapshot`: state, expiry, PIN failures, the account's kind and amounts)."""

    id: int
    account_id: int
    psn: str | None
    snapshot: CardSnapshot
    pin_offset: str = field(repr=False)

    @property
    def account(self) -> AccountSnapshot:
        return self.snapshot.account


_CARD = (
    select(
        _cards.c.id,
        _cards.c.account_id,
        _cards.c.psn,
        _cards.c.pin_offset,
        _cards.c.state,
        _cards.c.expiry,
        _cards.c.pin_failures,
        _accounts.c.kind,
        _accounts.c.balance_fen,
        _accounts.c.credit_limit_fen,
        _accounts.c.held_fen,
    )
    .join_from(_cards, _accounts, _cards.c.account_id == _accounts.c.id)
    .where(_cards.c.pan_hash == bindparam("pan_hash"), _cards.c.bank == bindparam("bank"))
)
_CARD_FOR_UPDATE = _CARD.with_for_update(of=_cards)  # locks the card row only, as before the join
_SET_PIN_FAILURES = (
    update(_cards).where(_cards.c.id == bindparam("card_id")).values(pin_failures=bindparam("count"))
)


def list_banks(session: Session) -> list[SimBank]:
    return list(session.scalars(select(SimBank).order_by(SimBank.id)))


def find_card(
    session: Session, vault: CardVault, bank: str, pan: str, lock: bool = False
) -> CardOnFile | None:
    """The bank's card with this PAN (looked up by its keyed hash) and its account, in one SELECT; the
    card row locked for update when `lock`."""
    params = {"pan_hash": vault.pan_hash(pan), "bank": bank}
    row = _execute(session, _CARD_FOR_UPDATE if lock else _CARD, params).first()
    if row is None:
        return None
    account = AccountSnapshot(row.kind, row.balance_fen, row.credit_limit_fen, row.held_fen)
    snapshot = CardSnapshot(row.state, row.expiry, account, row.pin_failures)
    return CardOnFile(row.id, row.account_id, row.psn, snapshot, row.pin_offset)


def set_pin_failures(session: Session, card_id: int, count: int) -> None:
    _execute(session, _SET_PIN_FAILURES, {"card_id": card_id, "count": count})


# ---------------------------------------------------------------------------------------------------- claims

_KEY_COLUMNS = ("bank", "acquirer_id", "stan", "transmission_dt", "mti")
_AUTHORIZATION = select(_auths).where(*(_auths.c[name] == bindparam(name) for name in _KEY_COLUMNS))
_PREAUTH = (
    select(_auths)
    .where(
        _auths.c.bank == bindparam("bank"),
        _auths.c.account_id == bindparam("account_id"),
        _auths.c.mti == PREAUTH_MTI,
        _auths.c.effect == Effect.HOLD.value,
        _auths.c.auth_code == bindparam("auth_code"),
        _auths.c.state == bindparam("state"),
    )
    .order_by(_auths.c.id.desc())
    .limit(1)
)
#: INSERT … ON CONFLICT (key) DO NOTHING RETURNING id, per dialect; the columns are the parameters given.
_INSERT = {
    name: insert(_auths)
    .on_conflict_do_nothing(index_elements=[_auths.c[column] for column in _KEY_COLUMNS])
    .returning(_auths.c.id)
    for name, insert in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert))
}
_FINISH = (
    update(_auths)
    .where(_auths.c.id == bindparam("auth_id"))
    .values(
        state=bindparam("new_state"),
        response_code=bindparam("new_response_code"),
        effect=bindparam("new_effect"),
        auth_code=bindparam("new_auth_code"),
        account_id=bindparam("new_account_id"),
    )
)
_STATE_GUARD = and_(_auths.c.id == bindparam("auth_id"), _auths.c.state == bindparam("old_state"))
_SET_STATE = update(_auths).where(_STATE_GUARD).values(state=bindparam("new_state"))
_SET_REVERSED = (
    update(_auths)
    .where(_STATE_GUARD)
    .values(state=bindparam("new_state"), reversed_at=bindparam("new_reversed_at"))
)


def _key_params(key: AuthKey) -> dict[str, Any]:
    return {
        "bank": key.bank,
        "acquirer_id": key.acquirer_id,
        "stan": key.stan,
        "transmission_dt": key.transmission_dt,
        "mti": key.mti,
    }


def find_authorization(session: Session, key: AuthKey) -> Row[Any] | None:
    """The authorization under `key` (every column, as a read-only row)."""
    return _execute(session, _AUTHORIZATION, _key_params(key)).first()


def find_preauth(
    session: Session, bank: str, account_id: int, auth_code: str, state: TxnState = TxnState.APPROVED
) -> Row[Any] | None:
    """The pre-authorization (0100 hold) of this account with this auth code, in `state`."""
    params = {"bank": bank, "account_id": account_id, "auth_code": auth_code, "state": state}
    return _execute(session, _PREAUTH, params).first()


def _insert(session: Session, values: dict[str, Any]) -> int | None:
    """Insert an authorization; its id, or None when its key is already taken (nothing else changes)."""
    connection = session.connection()
    return connection.execute(_INSERT[connection.dialect.name], values).scalar()


def claim(
    session: Session, key: AuthKey, processing_code: str, amount_fen: int, rrn: str | None
) -> int | None:
    """Take `key` for a new request (state `pending` until `finish`): the new authorization's id, or None
    when an identical request has it already (on PostgreSQL this waits for a concurrent one to commit)."""
    values = {
        **_key_params(key),
        "processing_code": processing_code,
        "rrn": rrn,
        "amount_fen": amount_fen,
        "effect": Effect.NONE.value,
        "state": TxnState.PENDING,
        "response_code": "96",
    }
    return _insert(session, values)


def finish(
    session: Session, auth_id: int, decision: Decision, auth_code: str | None, account_id: int | None
) -> None:
    """Record the answer on a claimed authorization."""
    params = {
        "auth_id": auth_id,
        "new_state": TxnState.APPROVED if decision.approved else TxnState.DECLINED,
        "new_response_code": decision.response_code,
        "new_effect": decision.effect.value,
        "new_auth_code": auth_code,
        "new_account_id": account_id,
    }
    _execute(session, _FINISH, params)


def _set_state(
    session: Session, auth_id: int, old: TxnState, new: TxnState, reversed_at: dt.datetime | None = None
) -> bool:
    """Move an authorization from `old` to `new` state (stamping `reversed_at` when given); False when it
    was not in `old` (someone else won)."""
    params: dict[str, Any] = {"auth_id": auth_id, "old_state": old, "new_state": new}
    statement = _SET_STATE
    if reversed_at is not None:
        statement = _SET_REVERSED
        params["new_reversed_at"] = reversed_at
    return _execute(session, statement, params).rowcount == 1


# ---------------------------------------------------------------------------------------------------- money

_balance, _held, _limit = _accounts.c.balance_fen, _accounts.c.held_fen, _accounts.c.credit_limit_fen
_MOVE = (
    update(_accounts)
    .where(_accounts.c.id == bindparam("account_id"))
    .values(balance_fen=_balance + bindparam("balance_delta"), held_fen=_held + bindparam("held_delta"))
)
#: The same move, only if the account has at least `:need_fen` available (debit: balance − held; credit:
#: limit − used − held).
_MOVE_IF_AVAILABLE = {
    "debit": _MOVE.where(_balance - _held >= bindparam("need_fen")),
    "credit": _MOVE.where(_limit - _balance - _held >= bindparam("need_fen")),
}
_ACCOUNT_KIND = select(_accounts.c.kind).where(_accounts.c.id == bindparam("account_id"))


def _move(
    session: Session,
    account_id: int,
    kind: str,
    spend_fen: int = 0,
    hold_fen: int = 0,
    need_fen: int | None = None,
) -> bool:
    """Spend `spend_fen` (negative: give it back) and hold `hold_fen` more (negative: release), in one
    UPDATE that only applies when `need_fen` is available (None: unconditionally); False when it was not."""
    credit = kind == "credit"
    params = {
        "account_id": account_id,
        "balance_delta": spend_fen if credit else -spend_fen,  # a credit account's balance is "used"
        "held_delta": hold_fen,
    }
    statement = _MOVE
    if need_fen is not None:
        statement = _MOVE_IF_AVAILABLE["credit" if credit else "debit"]
        params["need_fen"] = need_fen
    return _execute(session, statement, params).rowcount == 1


def apply_effect(
    session: Session, account_id: int, kind: str, decision: Decision, preauth: Row[Any] | None = None
) -> Reason | None:
    """Book an approved decision's effect on the account (`kind` debit or credit) atomically; returns the
    decline reason when it cannot be booked (funds gone since the snapshot: `INSUFFICIENT_FUNDS`;
    pre-authorization gone: `ORIGINAL_NOT_FOUND`).

    `preauth` is the pre-authorization a COMPLETE or RELEASE effect releases (`find_preauth`).
    """
    amount = decision.amount_fen
    need = None if decision.forced else amount
    effect = decision.effect
    if effect is Effect.NONE:
        return None
    if effect is Effect.DEBIT:
        ok = _move(session, account_id, kind, spend_fen=amount, need_fen=need)
        return None if ok else Reason.INSUFFICIENT_FUNDS
    if effect is Effect.HOLD:
        ok = _move(session, account_id, kind, hold_fen=amount, need_fen=need)
        return None if ok else Reason.INSUFFICIENT_FUNDS
    if effect is Effect.CREDIT:
        _move(session, account_id, kind, spend_fen=-amount)
        return None
    if preauth is None:
        return Reason.ORIGINAL_NOT_FOUND
    if effect is Effect.RELEASE:
        if not _set_state(session, preauth.id, TxnState.APPROVED, TxnState.VOIDED):
            return Reason.ORIGINAL_NOT_FOUND
        _move(session, account_id, kind, hold_fen=-decision.released_fen)
        return None
    # COMPLETE: release the hold and spend, as one guarded update; a hold reversed meanwhile -> plain debit
    released = decision.released_fen
    if not _set_state(session, preauth.id, TxnState.APPROVED, TxnState.COMPLETED):
        debit = Decision(decision.reason, Effect.DEBIT, amount, forced=decision.forced)
        return apply_effect(session, account_id, kind, debit)
    need = None if decision.forced else amount - released
    if _move(session, account_id, kind, spend_fen=amount, hold_fen=-released, need_fen=need):
        return None
    _set_state(session, preauth.id, TxnState.COMPLETED, TxnState.APPROVED)
    return Reason.INSUFFICIENT_FUNDS


def _undo_effect(session: Session, row: Row[Any]) -> None:
    """Give back what an approved authorization booked (its state already moved to `reversed`)."""
    effect = Effect(row.effect)
    if effect is Effect.NONE or row.account_id is None:
        return
    kind = _execute(session, _ACCOUNT_KIND, {"account_id": row.account_id}).scalar() or "debit"
    amount = row.amount_fen
    if effect is Effect.DEBIT:
        _move(session, row.account_id, kind, spend_fen=-amount)
    elif effect is Effect.HOLD:
        _move(session, row.account_id, kind, hold_fen=-amount)
    elif effect is Effect.CREDIT:
        _move(session, row.account_id, kind, spend_fen=amount)
    elif row.auth_code is not None:  # COMPLETE / RELEASE: put the pre-authorization's hold back
        state = TxnState.COMPLETED if effect is Effect.COMPLETE else TxnState.VOIDED
        preauth = find_preauth(session, row.bank, row.account_id, row.auth_code, state)
        released = 0
        if preauth is not None and _set_state(session, preauth.id, state, TxnState.APPROVED):
            released = preauth.amount_fen
        spent = amount if effect is Effect.COMPLETE else 0
        _move(session, row.account_id, kind, spend_fen=-spent, hold_fen=released)


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
            tombstone = {
                **_key_params(original),
                "processing_code": processing_code,
                "amount_fen": amount_fen,
                "effect": Effect.NONE.value,
                "state": TxnState.REVERSED,
                "response_code": LATE_ORIGINAL_CODE,
                "reversed_at": now,
            }
            if _insert(session, tombstone) is not None:
                return ReversalOutcome.TOMBSTONE
            continue  # the original was inserted meanwhile: reverse it
        if _set_state(session, row.id, TxnState.APPROVED, TxnState.REVERSED, reversed_at=now):
            _undo_effect(session, row)
            return ReversalOutcome.REVERSED
        return ReversalOutcome.NOTHING_TO_UNDO
    return ReversalOutcome.NOTHING_TO_UNDO
