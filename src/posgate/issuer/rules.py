"""The issuer simulator's authorization rules: pure decisions, no database, no clock, no keys.

`decide(request, card, today_yymm)` reads a request view (`AuthRequest`: what kind of transaction, the amount,
the expiry on the card, and the verdicts of the card checks the caller ran — CVV, ARQC, PIN) against a
snapshot of the card and its account (`CardSnapshot`), and returns a `Decision`: the `Reason` (field 39 via
`NETWORK_RESPONSE_CODES`), the `Effect` on the account, its amount, and the card's new PIN-failure count.

The checks run in this order, the first that fails decides (see `demo-fixture.md`):

1. the MTI and processing code name a transaction we serve, else `INVALID_TRANSACTION` (12);
2. the card is known, else `INVALID_CARD` (14);
3. card state: lost `LOST_CARD` (41), stolen `STOLEN_CARD` (43), blocked or 3 wrong PINs in a row
   `PIN_TRIES_EXCEEDED` (75);
4. expiry (the request's, else the card's) before `today_yymm`: `EXPIRED_CARD` (54);
5. card data: a wrong track 2 CVV, an expiry that is not the card's, a wrong or unverifiable ARQC:
   `DO_NOT_HONOUR` (05);
6. PIN, when a PIN block was sent: wrong `WRONG_PIN` (55), the third wrong in a row `PIN_TRIES_EXCEEDED`
   (75); a right PIN resets the count; a block that does not decrypt to format 0 `SYSTEM_ERROR` (96, not a
   cardholder's try: a key or PAN mismatch upstream);
7. amount ≤ 0 (anything but a balance inquiry): `INVALID_AMOUNT` (13);
8. funds: available < amount `INSUFFICIENT_FUNDS` (51), for sales, pre-authorizations and completions.

An advice (0220) reports a transaction that already happened (stand-in, offline): only checks 1, 2 and 7
apply, and its effect is booked even past the available amount (`Decision.forced`).

Available: debit = balance − held; credit = limit − used − held (`SimAccount.balance_fen` is "used" on a
credit account).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from posgate.iso8583.reasons import MALFORMED_PIN_BLOCK, Reason, network_code
from posgate.txnset import IssuerEffect, IssuerKind, issuer_kind_of

PIN_TRIES_LIMIT = 3
ADVICE_MTI = "0220"
PREAUTH_CONDITION_CODE = "06"


# what a request asks the issuer to do, and what an approval does to the account: the transaction set's
# network-side kinds (`posgate.txnset`)
Kind = IssuerKind
Effect = IssuerEffect


class Check(Enum):
    """The verdict of one card check the caller ran (CVV, ARQC, PIN)."""

    ABSENT = "absent"  # nothing presented to check
    PASSED = "passed"
    FAILED = "failed"
    MALFORMED = "malformed"  # could not be checked: a bad PIN block, missing EMV tags, no key


def classify(mti: str, processing_code: str, condition_code: str | None = None) -> Kind | None:
    """The transaction kind of a request, or None when the simulator does not serve it.

    The first two digits of the processing code are the transaction type; the account types are ignored.

    >>> classify("0200", "000000"), classify("0200", "000000", "06")
    (<IssuerKind.SALE: 'sale'>, <IssuerKind.COMPLETION: 'completion'>)
    >>> classify("0100", "200000")
    <IssuerKind.PREAUTH_VOID: 'preauth void'>
    >>> classify("0200", "400000") is None
    True
    """
    return issuer_kind_of(mti, processing_code, condition_code)


@dataclass(frozen=True)
class AccountSnapshot:
    """An account as read: kind `debit` or `credit`, money in fen."""

    kind: str
    balance_fen: int
    credit_limit_fen: int = 0
    held_fen: int = 0

    @property
    def available_fen(self) -> int:
        """What the cardholder can spend now.

        >>> AccountSnapshot("debit", 1000, held_fen=300).available_fen
        700
        >>> AccountSnapshot("credit", 500, credit_limit_fen=2000, held_fen=100).available_fen
        1400
        """
        if self.kind == "credit":
            return self.credit_limit_fen - self.balance_fen - self.held_fen
        return self.balance_fen - self.held_fen


@dataclass(frozen=True)
class CardSnapshot:
    """A card as read: state `active | lost | stolen | blocked`, expiry YYMM, wrong PINs in a row."""

    state: str
    expiry: str
    account: AccountSnapshot
    pin_failures: int = 0


@dataclass(frozen=True)
class AuthRequest:
    """What the rules need of a request. `expiry` is the track 2's or field 14's (None: not sent).

    `hold_fen` is the amount held by the pre-authorization a completion or pre-authorization void refers
    to (field 38), when the caller found it open; None otherwise.
    """

    mti: str
    processing_code: str
    amount_fen: int
    condition_code: str | None = None
    expiry: str | None = None
    cvv: Check = Check.ABSENT
    arqc: Check = Check.ABSENT
    pin: Check = Check.ABSENT
    hold_fen: int | None = None

    @property
    def kind(self) -> Kind | None:
        return classify(self.mti, self.processing_code, self.condition_code)

    @property
    def is_advice(self) -> bool:
        return self.mti == ADVICE_MTI


@dataclass(frozen=True)
class Decision:
    """The answer to one request. `pin_failures` is the card's new count (None: leave it)."""

    reason: Reason
    effect: Effect = Effect.NONE
    amount_fen: int = 0
    released_fen: int = 0
    forced: bool = False
    pin_failures: int | None = None

    @property
    def approved(self) -> bool:
        return self.reason is Reason.APPROVED

    @property
    def response_code(self) -> str:
        """Field 39 of the network dialect.

        >>> Decision(Reason.WRONG_PIN).response_code
        '55'
        """
        return network_code(self.reason)

    def declined(self, reason: Reason) -> Decision:
        """The same decision turned into a decline (no effect); the PIN count update is kept."""
        return replace(self, reason=reason, effect=Effect.NONE, amount_fen=0, released_fen=0, forced=False)


def decide(request: AuthRequest, card: CardSnapshot | None, today_yymm: str) -> Decision:
    """Approve or decline `request` for `card` (None: no such card at this issuer) on `today_yymm`."""
    kind = request.kind
    if kind is None:
        return Decision(Reason.INVALID_TRANSACTION)
    if card is None:
        return Decision(Reason.INVALID_CARD)
    if request.is_advice:
        return _decide_money(request, kind, card.account, forced=True, pin_failures=None)

    refusal = _card_state(card) or _expiry(request, card, today_yymm) or _card_data(request, card)
    if refusal is not None:
        return Decision(refusal)

    pin_failures: int | None = None
    if request.pin is Check.PASSED and card.pin_failures:
        pin_failures = 0
    elif request.pin is Check.FAILED:
        pin_failures = card.pin_failures + 1
        reason = Reason.PIN_TRIES_EXCEEDED if pin_failures >= PIN_TRIES_LIMIT else Reason.WRONG_PIN
        return Decision(reason, pin_failures=pin_failures)
    elif request.pin is Check.MALFORMED:  # the host's rule too: 96, not a wrong PIN, not counted
        return Decision(MALFORMED_PIN_BLOCK)

    return _decide_money(request, kind, card.account, forced=False, pin_failures=pin_failures)


def _card_state(card: CardSnapshot) -> Reason | None:
    if card.state == "lost":
        return Reason.LOST_CARD
    if card.state == "stolen":
        return Reason.STOLEN_CARD
    if card.state == "blocked" or card.pin_failures >= PIN_TRIES_LIMIT:
        return Reason.PIN_TRIES_EXCEEDED
    if card.state != "active":
        return Reason.DO_NOT_HONOUR
    return None


def _expiry(request: AuthRequest, card: CardSnapshot, today_yymm: str) -> Reason | None:
    expiry = request.expiry or card.expiry
    return Reason.EXPIRED_CARD if expiry < today_yymm else None


def _card_data(request: AuthRequest, card: CardSnapshot) -> Reason | None:
    if request.cvv is not Check.ABSENT and request.cvv is not Check.PASSED:
        return Reason.DO_NOT_HONOUR
    if request.expiry is not None and request.expiry != card.expiry:
        return Reason.DO_NOT_HONOUR
    if request.arqc is not Check.ABSENT and request.arqc is not Check.PASSED:
        return Reason.DO_NOT_HONOUR
    return None


def _decide_money(
    request: AuthRequest, kind: Kind, account: AccountSnapshot, forced: bool, pin_failures: int | None
) -> Decision:
    approve = Decision(Reason.APPROVED, pin_failures=pin_failures, forced=forced)
    amount = request.amount_fen
    if kind is Kind.BALANCE:
        return approve
    if amount <= 0:
        return approve.declined(Reason.INVALID_AMOUNT)
    if kind is Kind.CREDIT:
        return replace(approve, effect=Effect.CREDIT, amount_fen=amount)
    if kind is Kind.PREAUTH_VOID:
        if request.hold_fen is None:
            return approve.declined(Reason.ORIGINAL_NOT_FOUND)
        if request.hold_fen != amount:
            return approve.declined(Reason.AMOUNT_DIFFERS)
        return replace(approve, effect=Effect.RELEASE, released_fen=request.hold_fen)

    released = request.hold_fen if kind is Kind.COMPLETION and request.hold_fen is not None else 0
    if not forced and account.available_fen + released < amount:
        return approve.declined(Reason.INSUFFICIENT_FUNDS)
    if kind is Kind.PREAUTH:
        return replace(approve, effect=Effect.HOLD, amount_fen=amount)
    if released:
        return replace(approve, effect=Effect.COMPLETE, amount_fen=amount, released_fen=released)
    return replace(approve, effect=Effect.DEBIT, amount_fen=amount)
