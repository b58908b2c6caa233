"""A host response as the terminal reads it (pure): response code and text, RRN, authorization code,
balance, whether its MAC verifies and, for a chip transaction, whether the issuer's ARPC does.

The host MACs every 0110 / 0210 / 0230 / 0410 / 0510 response with field 39 = `00` (pos-8583.md); such a
response without a valid field 64 has `mac_ok = False` and is NOT approved: the caller must reverse the
transaction (reason `A0`). Other responses have `mac_ok = None` unless they carry a field 64 anyway.
Likewise an approval whose field 55 ARPC does not authenticate the issuer (`arpc_ok = False`) is not
approved: the card would decline it, and the caller must reverse it (reason `96`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from posgate.errors import DecodeError
from posgate.iso8583.codec import decode_pos, split_pos_mac
from posgate.iso8583.reasons import POS_RESPONSE_TEXT
from posgate.security.pos_mac import MacAlgorithm, verify_pos_mac
from posgate.terminal.messages import MACED_RESPONSE_MTIS

#: Header processing-requirement nibble asking the terminal to sign in again.
SIGN_IN_AGAIN = 3


@dataclass
class TxnResult:
    """The outcome of one exchange with the host. `fields` is the decoded response (binary fields as hex)."""

    mti: str
    response_code: str
    response_text: str
    stan: str
    rrn: str | None
    auth_code: str | None
    amount_fen: int | None
    masked_pan: str | None
    balance_fen: int | None
    mac_ok: bool | None
    elapsed_ms: float
    fields: dict[str, str] = field(repr=False)
    sign_in_required: bool = False
    arpc_ok: bool | None = None
    kind: str | None = None

    @property
    def approved(self) -> bool:
        """Field 39 is `00`, and the MAC and the ARPC, where present or due, verified."""
        return self.response_code == "00" and self.mac_ok is not False and self.arpc_ok is not False

    @property
    def needs_reversal(self) -> bool:
        """Approved by the host but the MAC or the ARPC failed: the terminal must reverse it
        (`reversal_reason`)."""
        return self.response_code == "00" and (self.mac_ok is False or self.arpc_ok is False)

    @property
    def reversal_reason(self) -> str:
        """Field 39 of the reversal a `needs_reversal` result calls for: `A0` (MAC), else `96` (the ARPC)."""
        return "A0" if self.mac_ok is False else "96"

    def summary(self) -> str:
        """One line for logs: MTI, STAN, code and text (no card data)."""
        mac = "" if self.mac_ok is not False else " (MAC check failed)"
        arpc = "" if self.arpc_ok is not False else " (ARPC check failed)"
        return f"{self.mti} STAN {self.stan}: {self.response_code} {self.response_text}{mac}{arpc}"


def response_text(code: str) -> str:
    """The text of a field 39 code.

    >>> response_text("51"), response_text("ZZ")
    ('insufficient funds', 'unknown response code')
    """
    return POS_RESPONSE_TEXT.get(code, "unknown response code")


def parse_balance(field54: str | None) -> int | None:
    """The available balance in fen from field 54 (account type n2, amount type n2, currency n3, C/D, n12).

    Several 20-character amounts may follow each other; amount type `02` (available) wins, else the first.

    >>> parse_balance("1002156C000001000000"), parse_balance("3002156D000000000150"), parse_balance(None)
    (1000000, -150, None)
    """
    if not field54:
        return None
    entries = [field54[i : i + 20] for i in range(0, len(field54) - 19, 20)]
    entries = [e for e in entries if e[7] in "CD" and e[8:].isdigit()]
    if not entries:
        raise DecodeError(
            "field 54: expected account type, amount type, currency, C/D and 12 digits", field=54
        )
    entry = next((e for e in entries if e[2:4] == "02"), entries[0])
    amount = int(entry[8:])
    return -amount if entry[7] == "D" else amount


def mac_verifies(
    payload: bytes, fields: dict[str, str], mak: bytes | None, algorithm: MacAlgorithm = MacAlgorithm.CUP_ECB
) -> bool:
    """True when the message's field 64 is the MAC (`algorithm`) under `mak` of the bytes it covers
    (`codec.split_pos_mac`: every byte before field 64)."""
    parts = split_pos_mac(fields, payload)
    if mak is None or parts is None:
        return False
    covered, mac = parts
    return verify_pos_mac(algorithm, mak, covered, mac)


def result_from_message(
    fields: dict[str, str],
    mac_ok: bool | None,
    elapsed_ms: float = 0.0,
    masked_pan: str | None = None,
    sign_in_required: bool = False,
) -> TxnResult:
    """A `TxnResult` from a decoded response whose MAC has been checked (or needs none)."""
    code = fields.get("39", "")
    amount = fields.get("4")
    try:
        balance = parse_balance(fields.get("54"))
    except DecodeError:
        balance = None
    return TxnResult(
        mti=fields.get("t", ""),
        response_code=code,
        response_text=response_text(code),
        stan=fields.get("11", ""),
        rrn=fields.get("37"),
        auth_code=fields.get("38"),
        amount_fen=int(amount) if amount and amount.isdigit() else None,
        masked_pan=masked_pan,
        balance_fen=balance,
        mac_ok=mac_ok,
        elapsed_ms=elapsed_ms,
        fields=dict(fields),
        sign_in_required=sign_in_required,
    )


def parse_response(
    payload: bytes,
    mak: bytes | None,
    elapsed_ms: float = 0.0,
    masked_pan: str | None = None,
    header: bytes | None = None,
    algorithm: MacAlgorithm = MacAlgorithm.CUP_ECB,
) -> TxnResult:
    """Decode a response (bytes from the MTI on) and check its MAC (`algorithm`) with `mak` (None: not
    signed in).

    `header` is the 6-byte frame header, if known: its processing-requirement nibble 3 sets
    `sign_in_required`. Raises `DecodeError` if the message does not decode.
    """
    fields = decode_pos(payload)
    return result_from_message(
        fields,
        response_mac_ok(payload, fields, mak, algorithm),
        elapsed_ms=elapsed_ms,
        masked_pan=masked_pan,
        sign_in_required=header is not None and len(header) >= 3 and header[2] & 0x0F == SIGN_IN_AGAIN,
    )


def response_mac_ok(
    payload: bytes, fields: dict[str, str], mak: bytes | None, algorithm: MacAlgorithm = MacAlgorithm.CUP_ECB
) -> bool | None:
    """The MAC verdict for a response: required (39 = 00 on a MACed MTI), else checked only if present."""
    if fields.get("t") in MACED_RESPONSE_MTIS and fields.get("39") == "00":
        return mac_verifies(payload, fields, mak, algorithm)
    if "64" in fields:
        return mac_verifies(payload, fields, mak, algorithm)
    return None


def as_dict(result: TxnResult) -> dict[str, Any]:
    """The result as JSON-ready data (for `posgate bench` reports and logs); no card data beyond the mask."""
    return {
        "mti": result.mti,
        "response_code": result.response_code,
        "response_text": result.response_text,
        "approved": result.approved,
        "stan": result.stan,
        "rrn": result.rrn,
        "auth_code": result.auth_code,
        "amount_fen": result.amount_fen,
        "masked_pan": result.masked_pan,
        "balance_fen": result.balance_fen,
        "mac_ok": result.mac_ok,
        "arpc_ok": result.arpc_ok,
        "kind": result.kind,
        "elapsed_ms": round(result.elapsed_ms, 3),
    }
