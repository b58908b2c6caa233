"""The issuer side of the network dialect, as data: reading requests, writing responses (pure).

`read_financial` turns a decoded 0100/0200/0220 into a `FinancialRequest` (amount in fen, the card as the
request presents it: PAN, track 2, expiry, PIN block, EMV tags), `read_reversal` reads a 0420's field 90
(`OriginalData`), `build_response` writes the answer (MTI + 10, the request's echoed fields, 39 and extras),
and `balance_field` writes field 54. Malformed input raises `DecodeError` naming the field (answer `30`).

Card data never shows in a `repr`: the PAN is masked, track, expiry, PIN block and EMV data are hidden.
Transaction keys (`AuthKey`) use the acquirer id zero-padded to 11 digits, as field 90 carries it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from posgate.cards.pan import mask_pan
from posgate.cards.tlv import decode_tlv
from posgate.cards.track2 import Track2, parse_track2
from posgate.errors import DecodeError
from posgate.iso8583.codec import Message, response_mti

#: Fields a response copies from its request when the request has them.
ECHOED_FIELDS = ("3", "4", "7", "11", "12", "13", "32", "37", "41", "42", "49")
#: Field 70 codes of 0800: sign-on, sign-off, echo.
NETWORK_MANAGEMENT_CODES = {"001": "sign-on", "002": "sign-off", "301": "echo"}
ACCOUNT_TYPES = {"debit": "10", "credit": "30"}
AVAILABLE_AMOUNT_TYPE = "02"
ACQUIRER_ID_DIGITS = 11


def acquirer_key(acquirer_id: str) -> str:
    """An acquiring institution id as transaction keys hold it: 11 digits, zero-padded.

    >>> acquirer_key("49990000")
    '00049990000'
    """
    return acquirer_id.zfill(ACQUIRER_ID_DIGITS)


@dataclass(frozen=True)
class AuthKey:
    """What identifies one request at an issuer: bank, acquirer (32), STAN (11), date-time (7), MTI."""

    bank: str
    acquirer_id: str
    stan: str
    transmission_dt: str
    mti: str


def _required(msg: Mapping[str, str], key: str) -> str:
    value = msg.get(key)
    if not value:
        raise DecodeError(f"field {key}: required in a {msg.get('t', 'request')}", field=int(key))
    return value


@dataclass(frozen=True)
class FinancialRequest:
    """A 0100/0200/0220 as the issuer reads it. `auth_code_ref` is field 38 (a completion or pre-auth void
    names its pre-authorization by it); `psn` is field 23's last two digits."""

    mti: str
    stan: str
    transmission_dt: str
    acquirer_id: str
    processing_code: str
    amount_fen: int
    condition_code: str | None
    rrn: str | None
    auth_code_ref: str | None
    psn: str | None
    pan: str = field(repr=False)
    track: Track2 | None = field(default=None, repr=False)
    expiry: str | None = field(default=None, repr=False)
    pin_block: bytes | None = field(default=None, repr=False)
    icc: dict[str, bytes] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (
            f"FinancialRequest(mti={self.mti!r}, stan={self.stan!r}, pan={mask_pan(self.pan)!r}, "
            f"processing_code={self.processing_code!r}, amount_fen={self.amount_fen})"
        )

    def key(self, bank: str) -> AuthKey:
        return AuthKey(bank, self.acquirer_id, self.stan, self.transmission_dt, self.mti)


def read_financial(msg: Mapping[str, str]) -> FinancialRequest:
    """Read a decoded financial request; `DecodeError` (field number set) when a needed field is missing
    or inconsistent. Field 4 may be absent only in a balance inquiry (310000)."""
    processing_code = _required(msg, "3")
    if "4" in msg:
        amount_fen = int(msg["4"])
    elif processing_code.startswith("31"):
        amount_fen = 0
    else:
        raise DecodeError(f"field 4: required in a {msg.get('t')} with processing code {processing_code}", 4)
    track = parse_track2(msg["35"]) if msg.get("35") else None
    pan = msg.get("2") or (track.pan if track else "")
    if not pan:
        raise DecodeError("field 2: required when field 35 is absent", field=2)
    if track is not None and track.pan != pan:
        raise DecodeError("field 35: track 2 PAN differs from field 2", field=35)
    psn = msg.get("23")
    return FinancialRequest(
        mti=msg["t"],
        stan=_required(msg, "11"),
        transmission_dt=_required(msg, "7"),
        acquirer_id=acquirer_key(_required(msg, "32")),
        processing_code=processing_code,
        amount_fen=amount_fen,
        condition_code=msg.get("25"),
        rrn=msg.get("37"),
        auth_code_ref=msg.get("38"),
        psn=psn[-2:] if psn else None,
        pan=pan,
        track=track,
        expiry=track.expiry if track else msg.get("14"),
        pin_block=bytes.fromhex(msg["52"]) if msg.get("52") else None,
        icc=decode_tlv(bytes.fromhex(msg["55"])) if msg.get("55") else None,
    )


@dataclass(frozen=True)
class OriginalData:
    """Field 90 of a reversal: original MTI n4, STAN n6, transmission date-time n10, acquirer id n11,
    forwarding id n11."""

    mti: str
    stan: str
    transmission_dt: str
    acquirer_id: str
    forwarding_id: str

    def key(self, bank: str) -> AuthKey:
        return AuthKey(bank, self.acquirer_id, self.stan, self.transmission_dt, self.mti)


def parse_original_data(field90: str) -> OriginalData:
    """Split field 90.

    >>> parse_original_data("0200" "000123" "1126101500" "00049990000" "00000000000")
    OriginalData(mti='0200', stan='000123', transmission_dt='1126101500', acquirer_id='00049990000', \
forwarding_id='00000000000')
    >>> parse_original_data("0200000123")
    Traceback (most recent call last):
    ...
    posgate.errors.DecodeError: field 90: expected 42 digits, got 10
    """
    if len(field90) != 42 or not (field90.isascii() and field90.isdigit()):
        raise DecodeError(f"field 90: expected 42 digits, got {len(field90)}", field=90)
    return OriginalData(field90[0:4], field90[4:10], field90[10:20], field90[20:31], field90[31:42])


def read_reversal(msg: Mapping[str, str]) -> OriginalData:
    """The original a 0420 reverses. An all-zero acquirer id in field 90 means the reversal's own field 32."""
    original = parse_original_data(_required(msg, "90"))
    if original.acquirer_id.strip("0") == "" and msg.get("32"):
        original = OriginalData(
            original.mti,
            original.stan,
            original.transmission_dt,
            acquirer_key(msg["32"]),
            original.forwarding_id,
        )
    return original


def balance_field(account_kind: str, available_fen: int, currency: str = "156") -> str:
    """Field 54: account type (10 debit, 30 credit), amount type 02 (available), currency, C/D, n12.

    >>> balance_field("debit", 999900)
    '1002156C000000999900'
    >>> balance_field("credit", -50)
    '3002156D000000000050'
    """
    sign = "C" if available_fen >= 0 else "D"
    account_type = ACCOUNT_TYPES.get(account_kind, "00")
    return f"{account_type}{AVAILABLE_AMOUNT_TYPE}{currency}{sign}{abs(available_fen):012d}"


def build_response(
    request: Mapping[str, str], response_code: str, extra: Mapping[str, str] | None = None
) -> Message:
    """The response to `request`: MTI + 10, its `ECHOED_FIELDS`, field 39 and `extra` (38, 54, 55, 70…).

    Never copies the card fields (2, 14, 35, 52, 55) of the request.

    >>> build_response({"t": "0800", "7": "1126101500", "11": "000001", "70": "301"}, "00", {"70": "301"})
    {'t': '0810', '7': '1126101500', '11': '000001', '39': '00', '70': '301'}
    """
    response: Message = {"t": response_mti(request["t"])}
    for key in ECHOED_FIELDS:
        if request.get(key):
            response[key] = request[key]
    response["39"] = response_code
    if extra:
        response.update(extra)
    return dict(sorted(response.items(), key=lambda item: -1 if item[0] == "t" else int(item[0])))
