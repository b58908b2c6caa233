"""One request, one unit of work: what the issuer simulator does with a financial request or a reversal,
as plain functions of a SQLAlchemy `Session` (the server runs them through `Store.run`).

`authorize` reads top to bottom: find the card and its account → verify chip data → claim the request's
key (taken: a repeated request, answered as before) → find the pre-authorization it refers to → check CVV
and PIN → `rules.decide` → count PIN failures → book the effect (`books.apply_effect`, which may still
decline 51) → record the answer. `reverse` undoes an original exactly once (`books.reverse`); a reversal is
always answered `00`. A sale is four statements besides BEGIN and COMMIT, all prebuilt in `books`: the
card and account (one joined SELECT), the claim (INSERT), the money move and the answer (two UPDATEs).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from posgate.iso8583.reasons import Reason, network_code
from posgate.issuer import books
from posgate.issuer.card_checks import ChipCheck, arpc_field, check_arqc, check_pin, check_track_cvv
from posgate.issuer.messages import FinancialRequest, OriginalData, balance_field
from posgate.issuer.rules import AuthRequest, Check, Effect, Kind, classify, decide
from posgate.security.at_rest import CardVault
from posgate.txnset import TxnState


@dataclass(frozen=True)
class BankKeys:
    """A simulated bank's clear keys (`store.keys.get_keys(..., "sim_bank", name)`); `repr` hides them."""

    zpk: bytes | None = field(default=None, repr=False)
    zak: bytes | None = field(default=None, repr=False)
    pvk: bytes | None = field(default=None, repr=False)
    cvk: bytes | None = field(default=None, repr=False)
    imk_ac: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_purposes(cls, keys: dict[str, bytes]) -> BankKeys:
        return cls(
            zpk=keys.get("ZPK"),
            zak=keys.get("ZAK"),
            pvk=keys.get("PVK"),
            cvk=keys.get("CVK"),
            imk_ac=keys.get("IMK_AC"),
        )


@dataclass(frozen=True)
class Answer:
    """What goes back besides the echoed fields: 39, and 38 / 54 / 55 when there is one."""

    response_code: str
    auth_code: str | None = None
    balance: str | None = None
    icc: str | None = None

    def fields(self) -> dict[str, str]:
        out = {"39": self.response_code}
        if self.auth_code is not None and self.response_code == "00":
            out["38"] = self.auth_code
        if self.balance is not None:
            out["54"] = self.balance
        if self.icc is not None:
            out["55"] = self.icc
        return out


def new_auth_code() -> str:
    """A fresh 6-digit authorization code."""
    return f"{secrets.randbelow(1_000_000):06d}"


def authorize(
    session: Session,
    vault: CardVault,
    bank: str,
    keys: BankKeys,
    request: FinancialRequest,
    today_yymm: str,
) -> Answer:
    """Decide and book one 0100/0200/0220; a repeat of a request already answered gets the same answer."""
    card = books.find_card(session, vault, bank, request.pan, lock=request.pin_block is not None)
    chip = ChipCheck(Check.ABSENT)  # an unknown card is declined 14, with no ARPC
    if card is not None:
        chip = check_arqc(request.icc, request.pan, card.psn or request.psn, keys.imk_ac)

    key = request.key(bank)
    auth_id = books.claim(session, key, request.processing_code, request.amount_fen, request.rrn)
    if auth_id is None:
        return _repeat(books.find_authorization(session, key), request, card, chip)

    kind = classify(request.mti, request.processing_code, request.condition_code)
    preauth = None
    if card is not None and kind in (Kind.COMPLETION, Kind.PREAUTH_VOID) and request.auth_code_ref:
        preauth = books.find_preauth(session, bank, card.account_id, request.auth_code_ref)

    pin = cvv = Check.ABSENT
    if card is not None:
        cvv = check_track_cvv(request.track, keys.cvk)
        pin = check_pin(request.pin_block, request.pan, keys.zpk, keys.pvk, card.pin_offset)
    auth_request = AuthRequest(
        mti=request.mti,
        processing_code=request.processing_code,
        amount_fen=request.amount_fen,
        condition_code=request.condition_code,
        expiry=request.expiry,
        hold_fen=preauth.amount_fen if preauth is not None else None,
        cvv=cvv,
        arqc=chip.check,
        pin=pin,
    )
    decision = decide(auth_request, card.snapshot if card is not None else None, today_yymm)

    if card is not None and decision.pin_failures is not None:
        books.set_pin_failures(session, card.id, decision.pin_failures)
    if decision.approved and card is not None:
        refusal = books.apply_effect(session, card.account_id, card.account.kind, decision, preauth)
        if refusal is not None:
            decision = decision.declined(refusal)

    auth_code = None
    if decision.approved:
        releases = decision.effect in (Effect.COMPLETE, Effect.RELEASE) and preauth is not None
        auth_code = preauth.auth_code if releases and preauth is not None else new_auth_code()
    books.finish(session, auth_id, decision, auth_code, card.account_id if card is not None else None)
    balance = None
    if decision.approved and kind is Kind.BALANCE and card is not None:
        balance = balance_field(card.account.kind, card.account.available_fen)
    return Answer(decision.response_code, auth_code, balance, arpc_field(chip, decision.response_code))


def _repeat(
    existing: Row[Any] | None, request: FinancialRequest, card: books.CardOnFile | None, chip: ChipCheck
) -> Answer:
    """The answer to a request whose key is taken: the first answer, or a decline when the key belongs to
    a reversed authorization (a late original) or to a different request (`DUPLICATE`)."""
    if existing is None:  # cannot happen: the key was taken a moment ago
        code = network_code(Reason.SYSTEM_ERROR)
    elif existing.state == TxnState.REVERSED:
        code = books.LATE_ORIGINAL_CODE
    elif (existing.processing_code, existing.amount_fen) != (request.processing_code, request.amount_fen):
        code = network_code(Reason.DUPLICATE)
    else:
        code = existing.response_code
        balance = None
        kind = classify(request.mti, request.processing_code, request.condition_code)
        if code == "00" and kind is Kind.BALANCE and card is not None:
            balance = balance_field(card.account.kind, card.account.available_fen)
        return Answer(code, existing.auth_code, balance, arpc_field(chip, code))
    return Answer(code, None, None, arpc_field(chip, code))


def reverse(
    session: Session,
    bank: str,
    original: OriginalData,
    processing_code: str,
    amount_fen: int,
    now: dt.datetime,
) -> books.ReversalOutcome:
    """Undo the original of a 0420 once (or leave a tombstone for it)."""
    return books.reverse(session, original.key(bank), processing_code, amount_fen, now)
