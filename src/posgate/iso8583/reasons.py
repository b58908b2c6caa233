"""Why a request was approved or declined, as data.

Steps record a `Reason`; each dialect maps reasons to its field 39 through its own table
(`POS_RESPONSE_CODES`, `NETWORK_RESPONSE_CODES`). An issuer's field 39 maps back through
`reason_from_network_code`; a code we do not know becomes `DO_NOT_HONOUR` (safe side).
"""

from __future__ import annotations

from enum import Enum

from posgate.iso8583.pos_dialect import POS_RESPONSE_TEXT

__all__ = ["POS_RESPONSE_TEXT", "Reason", "network_code", "pos_code", "reason_from_network_code"]


class Reason(Enum):
    APPROVED = "approved"
    REFER_TO_ISSUER = "refer to issuer"
    INVALID_MERCHANT = "invalid merchant"
    PICK_UP = "pick up card"
    DO_NOT_HONOUR = "do not honour"
    INVALID_TRANSACTION = "invalid transaction"
    INVALID_AMOUNT = "invalid amount"
    INVALID_CARD = "invalid card number"
    NO_SUCH_ISSUER = "no such issuer"
    ORIGINAL_NOT_FOUND = "original not found"
    FORMAT_ERROR = "format error"
    SUSPECTED_FRAUD = "suspected fraud"
    FUNCTION_NOT_SUPPORTED = "function not supported"
    LOST_CARD = "lost card"
    STOLEN_CARD = "stolen card"
    INSUFFICIENT_FUNDS = "insufficient funds"
    EXPIRED_CARD = "expired card"
    WRONG_PIN = "wrong PIN"
    NOT_PERMITTED_TO_CARDHOLDER = "not permitted to cardholder"
    NOT_PERMITTED_TO_TERMINAL = "not permitted to terminal"
    RISK_SUSPECTED_FRAUD = "suspected fraud (risk)"
    OVER_AMOUNT_LIMIT = "over amount limit"
    AMOUNT_DIFFERS = "amount differs from original"
    OVER_FREQUENCY_LIMIT = "over frequency limit"
    PIN_TRIES_EXCEEDED = "PIN tries exceeded"
    ISSUER_UNAVAILABLE = "issuer unavailable"
    DUPLICATE = "duplicate transmission"
    SYSTEM_ERROR = "system error"
    ISSUER_REPLY_UNVERIFIED = "issuer reply failed MAC verification"  # host only: 96, and the reversal
    TERMINAL_NOT_SIGNED_IN = "terminal not signed in"
    UNKNOWN_TERMINAL = "unknown terminal"  # host only: 97 (pos-8583.md: "terminal not signed in / unknown")
    ISSUER_TIMEOUT = "issuer timeout"
    MAC_ERROR = "MAC error"


POS_RESPONSE_CODES: dict[Reason, str] = {
    Reason.APPROVED: "00",
    Reason.REFER_TO_ISSUER: "01",
    Reason.INVALID_MERCHANT: "03",
    Reason.PICK_UP: "04",
    Reason.DO_NOT_HONOUR: "05",
    Reason.INVALID_TRANSACTION: "12",
    Reason.INVALID_AMOUNT: "13",
    Reason.INVALID_CARD: "14",
    Reason.NO_SUCH_ISSUER: "15",
    Reason.ORIGINAL_NOT_FOUND: "25",
    Reason.FORMAT_ERROR: "30",
    Reason.SUSPECTED_FRAUD: "34",
    Reason.FUNCTION_NOT_SUPPORTED: "40",
    Reason.LOST_CARD: "41",
    Reason.STOLEN_CARD: "43",
    Reason.INSUFFICIENT_FUNDS: "51",
    Reason.EXPIRED_CARD: "54",
    Reason.WRONG_PIN: "55",
    Reason.NOT_PERMITTED_TO_CARDHOLDER: "57",
    Reason.NOT_PERMITTED_TO_TERMINAL: "58",
    Reason.RISK_SUSPECTED_FRAUD: "59",
    Reason.OVER_AMOUNT_LIMIT: "61",
    Reason.AMOUNT_DIFFERS: "64",
    Reason.OVER_FREQUENCY_LIMIT: "65",
    Reason.PIN_TRIES_EXCEEDED: "75",
    Reason.ISSUER_UNAVAILABLE: "91",
    Reason.DUPLICATE: "94",
    Reason.SYSTEM_ERROR: "96",
    Reason.ISSUER_REPLY_UNVERIFIED: "96",
    Reason.TERMINAL_NOT_SIGNED_IN: "97",
    Reason.UNKNOWN_TERMINAL: "97",
    Reason.ISSUER_TIMEOUT: "98",
    Reason.MAC_ERROR: "A0",
}

# One rule at both ends (docs/architecture.md, "A malformed PIN block"): a PIN block that does not open as
# ISO 9564 format 0 for the PAN — at the host under the terminal's PIK, at the issuer under the zone PIN key —
# is a key or equipment fault, not the cardholder's wrong PIN: `96`, never counted against the PIN tries, and
# the host sends nothing on to the issuer.
MALFORMED_PIN_BLOCK = Reason.SYSTEM_ERROR

# The network dialect uses the same ISO 8583:1987 codes for the reasons an issuer can give.
# The host's own reasons (an unknown terminal, an issuer reply that failed its MAC) are not an issuer's.
HOST_ONLY_REASONS = frozenset({Reason.ISSUER_REPLY_UNVERIFIED, Reason.UNKNOWN_TERMINAL})
NETWORK_RESPONSE_CODES: dict[Reason, str] = {
    reason: code for reason, code in POS_RESPONSE_CODES.items() if reason not in HOST_ONLY_REASONS
}

_FROM_NETWORK = {code: reason for reason, code in NETWORK_RESPONSE_CODES.items()}


def pos_code(reason: Reason) -> str:
    """Field 39 for the POS dialect.

    >>> pos_code(Reason.INSUFFICIENT_FUNDS)
    '51'
    """
    return POS_RESPONSE_CODES[reason]


def network_code(reason: Reason) -> str:
    return NETWORK_RESPONSE_CODES[reason]


def reason_from_network_code(code: str) -> Reason:
    """An issuer's field 39 as a reason; unknown codes decline as do-not-honour.

    >>> reason_from_network_code("51")
    <Reason.INSUFFICIENT_FUNDS: 'insufficient funds'>
    >>> reason_from_network_code("Z9")
    <Reason.DO_NOT_HONOUR: 'do not honour'>
    """
    return _FROM_NETWORK.get(code, Reason.DO_NOT_HONOUR)
