"""A hex dump of a message or frame, explained: what `posgate decode` prints.

Card data is masked unless the caller asks to reveal it: the PAN (field 2) keeps its first 6 and last 4
digits, tracks 2 and 3 (fields 35, 36) keep the first 6 and last 4 digits of the PAN they start with and
nothing else. Errors are the codec's, with byte positions counted from the start of the given hex
(so they point into the frame when `framed`); bad hex is a `DecodeError` with field `"hex"`.

>>> describe("0800 0020000000800000 000001 3130303030303031", "pos", framed=False, reveal=False)
{'mti': '0800', 'fields': {'11': '000001', '41': '10000001'}}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from posgate.errors import DecodeError, FramingError, ProtocolError
from posgate.iso8583.codec import DIALECTS, decode
from posgate.iso8583.content import message
from posgate.iso8583.framing import LENGTH_PREFIX_LEN, POS_HEADER_LEN, TPDU_LEN, split_pos_frame

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_AT_BYTE = re.compile(r" at byte (\d+)$")


def describe(hex_text: str, dialect: str, framed: bool, reveal: bool) -> dict[str, Any]:
    """Decode `hex_text` (whitespace ignored) in `dialect` ("pos" or "network"); with `framed`, the hex
    starts with the 2-byte length (and, for POS, the TPDU and header), which must match.

    Returns `{"mti": ..., "tpdu": ..., "header": ..., "fields": {"2": ..., ...}}`, tpdu and header only for a
    framed POS message, fields in numeric order, binary fields as uppercase hex.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {sorted(DIALECTS)}, got {dialect!r}")
    data = _from_hex(hex_text)
    out: dict[str, Any] = {}
    payload, base = data, 0
    if framed:
        body = _unframe(data)
        payload, base = body, LENGTH_PREFIX_LEN
        if dialect == "pos":
            frame = _shifted(split_pos_frame, body, base)
            out["tpdu"], out["header"] = frame.tpdu.hex().upper(), frame.header.hex().upper()
            payload, base = frame.payload, base + TPDU_LEN + POS_HEADER_LEN
    msg, _ = _shifted(decode, payload, base, DIALECTS[dialect])
    fields = {key: msg[key] for key in sorted((k for k in msg if k != "t"), key=int)}
    if not reveal:
        fields = {key: _masked(key, value) for key, value in fields.items()}
    return {"mti": msg["t"], **out, "fields": fields}


def _from_hex(hex_text: str) -> bytes:
    text = "".join(hex_text.split())
    for index, char in enumerate(text):
        if char not in _HEX_DIGITS:
            bad = f"expected hex digits, got {char!r}"
            raise DecodeError(message("hex", bad, index // 2), "hex", index // 2)
    if not text or len(text) % 2:
        bad = "no data" if not text else f"odd number of hex digits ({len(text)})"
        raise DecodeError(message("hex", bad, len(text) // 2), "hex", len(text) // 2)
    return bytes.fromhex(text)


def _unframe(data: bytes) -> bytes:
    if len(data) < LENGTH_PREFIX_LEN:
        bad = f"truncated, expected {LENGTH_PREFIX_LEN} bytes, got {len(data)}"
        raise FramingError(message("length", bad, 0), "length", 0)
    length = int.from_bytes(data[:LENGTH_PREFIX_LEN], "big")
    follow = len(data) - LENGTH_PREFIX_LEN
    if length != follow:
        bad = f"prefix says {length} bytes, {follow} follow"
        raise FramingError(message("length", bad, 0), "length", 0)
    return data[LENGTH_PREFIX_LEN:]


_T = TypeVar("_T")


def _shifted(fn: Callable[..., _T], data: bytes, base: int, *args: object) -> _T:
    """Call `fn(data, *args)`; a ProtocolError it raises is re-raised with positions moved by `base`."""
    try:
        return fn(data, *args)
    except ProtocolError as e:
        if e.pos is None or base == 0:
            raise
        pos = e.pos + base
        text = _AT_BYTE.sub(f" at byte {pos}", str(e))
        raise type(e)(text, e.field, pos) from None


def _mask_pan(pan: str) -> str:
    if len(pan) <= 10:
        return "*" * len(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


def _mask_track(track: str) -> str:
    pan = re.split("[D=]", track, maxsplit=1)[0]
    return _mask_pan(pan) + "*" * (len(track) - len(pan))


def _masked(key: str, value: str) -> str:
    if key == "2":
        return _mask_pan(value)
    if key in ("35", "36"):
        return _mask_track(value)
    return value
