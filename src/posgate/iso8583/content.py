"""Content rules pyiso8583 does not check, and the wording of every codec error (pyiso8583's included).

pyiso8583 checks structure (lengths, pads, encodings); this module checks what a field may contain, from its
content class ("n", "z", "an", "ans", "b", see the dialect modules) and its pyiso8583 field spec:
numeric fields are ASCII digits (so BCD nibbles are 0-9), track data is digits with the `D` separator
(`=` also allowed where the track is ASCII), text fields ("an", "ans") are printable ASCII (0x20-0x7E: no
control character reaches a log or a receipt), binary fields are hex, fixed lengths are exact.

Error messages read `field 4: expected 12 digits, got 'ABC…' at byte 22`. Values of card and security fields
(`SENSITIVE_FIELDS`, and every binary field) are never quoted, only their length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import iso8583

from posgate.errors import DecodeError

# PAN, expiry, extended PAN, tracks 1-3, PIN block, ICC data (holds the PAN), keys, MACs.
SENSITIVE_FIELDS = frozenset({2, 14, 34, 35, 36, 45, 52, 55, 62, 64, 96, 128})

_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789ABCDEFabcdef")
# "an" and "ans" are printable ASCII: a control character in a TID would reach logs and receipts raw
_PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F))
_PREVIEW_CHARS = 12


def label(field: int | str) -> str:
    """How an error message names a field or a part of the frame.

    >>> [label(4), label("t"), label("bitmap")]
    ['field 4', 'MTI', 'bitmap']
    """
    if isinstance(field, int):
        return f"field {field}"
    return {"t": "MTI", "tpdu": "TPDU"}.get(field, field)


def message(field: int | str, problem: str, pos: int | None) -> str:
    """One line: what, where.

    >>> message(4, "expected 12 digits, got 'ABC'", 22)
    "field 4: expected 12 digits, got 'ABC' at byte 22"
    """
    where = "" if pos is None else f" at byte {pos}"
    return f"{label(field)}: {problem}{where}"


def field_number(key: str) -> int | str:
    """A Message key as the error's `field`: `"4"` -> 4, anything else unchanged."""
    return int(key) if key.isascii() and key.isdigit() else key


def shown(field: int | str, value: str, kind: str = "") -> str:
    """A value as an error message may show it: quoted and shortened, or only its length if sensitive.

    >>> shown(4, "ABC0000000000000")
    "'ABC000000000…'"
    >>> shown(2, "6229990000000012")
    '16 characters (not shown)'
    """
    if kind in ("b", "z") or field in SENSITIVE_FIELDS:
        return f"{len(value)} characters (not shown)"
    if len(value) > _PREVIEW_CHARS:
        return repr(value[:_PREVIEW_CHARS] + "…")
    return repr(value)


def kind_of(field_types: Mapping[str, str], key: str, fspec: Mapping[str, Any]) -> str:
    """The content class of a field; fields a dialect does not type are binary or free text by encoding."""
    return field_types.get(key) or ("b" if fspec["data_enc"] == "b" else "ans")


def _count(fixed: bool, limit: int) -> str:
    return str(limit) if fixed else f"up to {limit}"


def problem(key: str, value: str, kind: str, fspec: Mapping[str, Any]) -> str | None:
    """What is wrong with `value` for this field, or None when it is acceptable.

    >>> spec = {"data_enc": "b", "len_type": 0, "len_count": "nibbles", "max_len": 12}
    >>> problem("4", "000000001234", "n", spec) is None
    True
    >>> problem("4", "00000000123A", "n", spec)
    "expected 12 digits, got '00000000123A'"
    """
    field = field_number(key)
    fixed = fspec["len_type"] == 0
    binary = fspec["data_enc"] == "b"
    in_nibbles = not binary or fspec.get("len_count", "bytes") == "nibbles"
    size = len(value)

    if kind in ("n", "z"):
        limit = fspec["max_len"] if in_nibbles else fspec["max_len"] * 2
        allowed = _DIGITS | ({"D"} if binary else {"D", "="}) if kind == "z" else _DIGITS
        what = f"{_count(fixed, limit)} digits" + (" with a 'D' separator" if kind == "z" else "")
        ok = set(value) <= allowed and (size == limit if fixed else size <= limit)
        ok = ok and (in_nibbles or size % 2 == 0)
    elif kind == "b":
        limit = fspec["max_len"] if binary and not in_nibbles else fspec["max_len"] // 2
        what = f"{_count(fixed, limit)} bytes as hex digits"
        ok = set(value) <= _HEX and size % 2 == 0 and (size == 2 * limit if fixed else size <= 2 * limit)
    else:
        limit = fspec["max_len"]
        what = f"{_count(fixed, limit)} characters"
        try:
            size = len(value.encode(fspec["data_enc"]))
        except (UnicodeError, LookupError):
            return f"expected {fspec['data_enc']} text, got {shown(field, value, kind)}"
        if not set(value) <= _PRINTABLE:
            return f"expected printable characters, got {shown(field, value, kind)}"
        ok = size == limit if fixed else size <= limit
    if ok:
        return None
    return f"expected {what}, got {shown(field, value, kind)}"


_DATA_LEN = re.compile(r"Field data is (\d+) (bytes|nibbles), expecting (\d+)")
_PREFIX_LEN = re.compile(r"Field length is (\d+) bytes wide, expecting (\d+)")
_TOO_LONG = re.compile(r"Field data is (\d+) (bytes|nibbles), larger than maximum (\d+)")
_PYISO_TEXT = {
    "Failed to decode field length, invalid BCD data": "length prefix is not BCD",
    "Failed to decode field length, non-numeric data": "length prefix is not digits",
    "Failed to decode field length, invalid data": "length prefix is not text",
    "Failed to decode field, non-hex data": "expected hex digits",
}


def from_pyiso(e: iso8583.DecodeError, data: bytes, spec: Mapping[str, Mapping[str, Any]]) -> DecodeError:
    """pyiso8583's DecodeError in posgate's words (its messages are stable in the pinned 4.0.1)."""
    key = str(e.field)
    field: int | str = "bitmap" if key in ("p", "1") else field_number(key)
    pos = e.pos
    fspec = spec.get(key, {})
    ends = "set in the bitmap but the message ends"
    if m := _DATA_LEN.fullmatch(e.msg):
        got, unit, want = int(m[1]), m[2], int(m[3])
        unit_word = "digits" if unit == "nibbles" else "bytes"
        if unit == "nibbles" and got == want + 1:
            bad = "expected the pad nibble 0"
        elif pos >= len(data) and fspec.get("len_type") == 0 and field != "bitmap":
            bad = ends
        else:
            bad = f"truncated, expected {want} {unit_word}, got {got}"
    elif m := _PREFIX_LEN.fullmatch(e.msg):
        bad = ends if m[1] == "0" else f"truncated length prefix, expected {m[2]} bytes, got {m[1]}"
    elif m := _TOO_LONG.fullmatch(e.msg):
        unit_word = "digits" if m[2] == "nibbles" else "bytes"
        bad = f"length {m[1]} exceeds the maximum {m[3]} {unit_word}"
    elif e.msg == "Extra data after last field":
        field, bad = "bitmap", f"{len(data) - pos} bytes after the last field ({_label_of(key)})"
    elif e.msg == "Failed to decode field, invalid data":
        bad = f"expected {fspec.get('data_enc', 'text')} text"
    else:
        bad = _PYISO_TEXT.get(e.msg, e.msg[:1].lower() + e.msg[1:])
    return DecodeError(message(field, bad, pos), field, pos)


def _label_of(key: str) -> str:
    return "bitmap" if key in ("p", "1") else f"field {key}"
