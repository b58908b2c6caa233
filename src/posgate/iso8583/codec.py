"""Encode and decode ISO 8583 messages of both dialects: pyiso8583 for the layout, `content` for the values.

A `Message` is a pyiso8583-style dict of strings: `"t"` is the MTI, `"2"`..`"128"` are fields, binary fields
are uppercase hex, track 2 uses `D` as separator. Bitmaps are computed, never part of a Message. The bytes are
the message from the MTI on: no length prefix, TPDU or header (see `framing`).

Decoding accepts only the MTIs of the dialect's message table and their responses; encoding accepts any
4-digit MTI (answering an unknown request type with `30` needs its response MTI).

Every failure is a `DecodeError` / `EncodeError` naming the field (a number, `"t"` or `"bitmap"`) and the byte
offset from the MTI, e.g. `field 4: expected 12 digits, got 'ABC…' at byte 22`.

This module also owns where the MAC goes: the bytes a MAC covers and writing it once it is computed — field
64 in the POS dialect; in the network dialect the last field, 64 or 128 (`network_dialect.network_mac_field`).
Whoever computes or checks a MAC asks it: `encode_pos_with_mac` / `encode_network_with_mac` to write one,
`split_pos_mac` / `split_network_mac` for the bytes a received MAC covers (and the MAC).

>>> msg = {"t": "0800", "11": "000001", "41": "10000001", "60": "00000001003"}
>>> encode_pos(msg).hex().upper()
'0800002000000080001000000131303030303030310011000000010030'
>>> decode_pos(encode_pos(msg)) == msg
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import iso8583

from posgate.errors import DecodeError, EncodeError
from posgate.iso8583.content import field_number, from_pyiso, kind_of, message, problem, shown
from posgate.iso8583.network_dialect import (
    NETWORK_FIELD_TYPES,
    NETWORK_MAC_FIELDS,
    NETWORK_MTIS,
    NETWORK_SPEC,
    network_mac_field,
)
from posgate.iso8583.pos_dialect import POS_FIELD_TYPES, POS_MTIS, POS_SPEC
from posgate.iso8583.private_fields import Field60, Field61, parse_field60, parse_field61

__all__ = [
    "Field60",
    "Field61",
    "Message",
    "decode_network",
    "decode_pos",
    "encode_network",
    "encode_network_with_mac",
    "encode_pos",
    "encode_pos_with_mac",
    "mac_payload",
    "network_mac_payload",
    "parse_field60",
    "parse_field61",
    "response_mti",
    "salvage_network",
    "salvage_pos",
    "split_network_mac",
    "split_pos_mac",
]

Message = dict[str, str]

MAC_BYTES = 8
_TERTIARY_BITMAP = "65"
_NOT_DATA_FIELDS = frozenset({"h", "t", "p", "1", _TERTIARY_BITMAP})


@dataclass(frozen=True)
class Dialect:
    """One dialect as the codec uses it: spec, content classes, known MTIs (requests and responses)."""

    name: str
    spec: Mapping[str, Mapping[str, Any]]
    field_types: Mapping[str, str]
    mtis: frozenset[str]

    @property
    def mti_len(self) -> int:
        return 2 if self.spec["t"]["data_enc"] == "b" else 4

    @property
    def bitmap_len(self) -> int:
        return 8 if self.spec["p"]["data_enc"] == "b" else 16

    def is_data_field(self, key: object) -> bool:
        return (
            isinstance(key, str)
            and key.isascii()
            and key.isdigit()
            and key in self.spec
            and key not in _NOT_DATA_FIELDS
        )


def _dialect(
    name: str, spec: Mapping[str, Any], types: Mapping[str, str], mtis: Mapping[str, str]
) -> Dialect:
    return Dialect(name, spec, types, frozenset(mtis) | frozenset(mtis.values()))


_POS = _dialect("POS", POS_SPEC, POS_FIELD_TYPES, POS_MTIS)
_NETWORK = _dialect("network", NETWORK_SPEC, NETWORK_FIELD_TYPES, NETWORK_MTIS)
DIALECTS: dict[str, Dialect] = {"pos": _POS, "network": _NETWORK}


# ---------------------------------------------------------------------------------------------------- decode


def decode_pos(data: bytes) -> Message:
    """Decode a POS message (MTI, binary bitmap, fields) and check every field's content."""
    return decode(data, _POS)[0]


def decode_network(data: bytes) -> Message:
    """Decode a network message (ASCII MTI, hex bitmap, fields) and check every field's content."""
    return decode(data, _NETWORK)[0]


def decode(data: bytes, dialect: Dialect) -> tuple[Message, dict[str, int]]:
    """The Message and the byte offset where each field starts."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    mti = _read_mti(data, dialect)
    try:
        doc_dec, doc_enc = iso8583.decode(data, dialect.spec)
    except iso8583.DecodeError as e:
        raise from_pyiso(e, data, dialect.spec) from None
    except KeyError as e:
        key = str(e.args[0])
        pos = dialect.mti_len
        problem_text = f"set in the bitmap but not defined in the {dialect.name} dialect"
        raise DecodeError(message(field_number(key), problem_text, pos), field_number(key), pos) from None

    msg: Message = {"t": mti}
    offsets: dict[str, int] = {}
    pos = 0
    for key, enc in doc_enc.items():
        start = pos
        pos += len(enc["len"])
        if enc["len"] and dialect.spec[key]["len_enc"] == "ascii" and not _ascii_digits(enc["len"]):
            # pyiso8583 reads the prefix with int(), which also takes " 8", "+8" and "8 "
            raise DecodeError(
                message(field_number(key), "length prefix is not digits", start), field_number(key), start
            )
        if key in ("p", "1") and dialect.spec[key]["data_enc"] != "b" and not _hex_digits(enc["data"]):
            # pyiso8583 reads a hex bitmap with bytes.fromhex, which skips spaces: a second spelling
            raise DecodeError(message("bitmap", "expected hex digits", start), "bitmap", start)
        if key == "1" and int(doc_dec["1"][:1] or "0", 16) & 0x8:
            # bit 65: pyiso8583 reads a tertiary bitmap, which neither dialect uses and a Message cannot carry
            bad = "set in the secondary bitmap, but a tertiary bitmap is not used by this dialect"
            raise DecodeError(message(65, bad, start), 65, start)
        if key not in _NOT_DATA_FIELDS:
            offsets[key] = start
            value = doc_dec[key]
            kind = kind_of(dialect.field_types, key, dialect.spec[key])
            value = value.upper() if kind == "b" else value
            fault = problem(key, value, kind, dialect.spec[key])
            if fault:
                raise DecodeError(message(int(key), fault, pos), int(key), pos)
            msg[key] = value
        pos += len(enc["data"])
    return msg, offsets


def _ascii_digits(raw: bytes) -> bool:
    return all(0x30 <= b <= 0x39 for b in raw)


def _hex_digits(raw: bytes) -> bool:
    return all(0x30 <= b <= 0x39 or 0x41 <= b <= 0x46 or 0x61 <= b <= 0x66 for b in raw)


def _read_mti(data: bytes, dialect: Dialect) -> str:
    raw = data[: dialect.mti_len]
    if len(raw) < dialect.mti_len:
        bad = f"truncated, expected {dialect.mti_len} bytes, got {len(raw)}"
        raise DecodeError(message("t", bad, 0), "t", 0)
    mti = raw.hex().upper() if dialect.spec["t"]["data_enc"] == "b" else raw.decode("latin-1")
    if mti not in dialect.mtis:
        bad = f"unknown message type {mti!r} for the {dialect.name} dialect"
        raise DecodeError(message("t", bad, 0), "t", 0)
    return mti


def salvage_pos(data: bytes) -> Message:
    """Whatever of a bad POS message can be read cleanly (MTI, fields before the damage). Never raises.

    Use it to answer an undecodable request with field 39 = `30`, carrying its fields 11 and 41.
    """
    return _salvage(data, _POS)


def salvage_network(data: bytes) -> Message:
    """Whatever of a bad network message can be read cleanly. Never raises."""
    return _salvage(data, _NETWORK)


def _salvage(data: bytes, dialect: Dialect) -> Message:
    try:
        return decode(data, dialect)[0]
    except (DecodeError, TypeError):
        pass
    failed = None
    try:
        doc_dec, _ = iso8583.decode(bytes(data), dialect.spec)
    except iso8583.DecodeError as e:
        doc_dec, failed = e.doc_dec, e.field
    except (KeyError, TypeError, ValueError):
        doc_dec = {}
    out: Message = {}
    raw = bytes(data[: dialect.mti_len]) if isinstance(data, bytes | bytearray) else b""
    mti = raw.hex().upper() if dialect.spec["t"]["data_enc"] == "b" else raw.decode("latin-1")
    if len(raw) == dialect.mti_len and mti.isascii() and mti.isdigit():
        out["t"] = mti
    for key, value in doc_dec.items():
        if key != failed and value and dialect.is_data_field(key):
            kind = kind_of(dialect.field_types, key, dialect.spec[key])
            value = value.upper() if kind == "b" else value
            if problem(key, value, kind, dialect.spec[key]) is None:
                out[key] = value
    return out


# ---------------------------------------------------------------------------------------------------- encode


def encode_pos(msg: Message) -> bytes:
    """Encode a POS Message after checking every field; the input is not modified."""
    return encode(msg, _POS)[0]


def encode_network(msg: Message) -> bytes:
    """Encode a network Message after checking every field; the input is not modified."""
    return encode(msg, _NETWORK)[0]


def encode(msg: Mapping[str, str], dialect: Dialect) -> tuple[bytes, dict[str, int]]:
    """The bytes and the offset where each field starts. Keys `p`, `1` and `h` are ignored (computed).

    Any 4-digit MTI encodes, so that a request with an unknown MTI can still be answered with `30`.
    """
    if not isinstance(msg, Mapping):
        raise TypeError(f"expected a dict Message, got {type(msg).__name__}")
    mti = msg.get("t")
    if not (isinstance(mti, str) and len(mti) == 4 and mti.isascii() and mti.isdigit()):
        bad = "missing" if mti is None else f"expected 4 digits, got {mti!r}"
        raise EncodeError(message("t", bad, 0), "t", 0)
    keys = [k for k in msg if k not in ("t", "p", "1", "h")]
    for key in keys:
        if not dialect.is_data_field(key):
            field = field_number(key) if isinstance(key, str) else repr(key)
            bad = f"not defined in the {dialect.name} dialect"
            raise EncodeError(message(field, bad, dialect.mti_len), field, dialect.mti_len)
    numbers = sorted(int(k) for k in keys)
    pos = dialect.mti_len + dialect.bitmap_len * (2 if numbers and numbers[-1] > 64 else 1)
    doc: dict[str, str] = {"t": mti}
    offsets: dict[str, int] = {}
    for number in numbers:
        key = str(number)
        fspec = dialect.spec[key]
        value = msg[key]
        offsets[key] = pos
        pos += fspec["len_type"]
        if not isinstance(value, str):
            bad = f"expected a str, got {type(value).__name__}"
            raise EncodeError(message(number, bad, pos), number, pos)
        kind = kind_of(dialect.field_types, key, fspec)
        value = value.upper() if kind == "b" else value
        fault = problem(key, value, kind, fspec)
        if fault:
            raise EncodeError(message(number, fault, pos), number, pos)
        pos += _data_size(value, fspec)
        doc[key] = value
    try:
        raw, _ = iso8583.encode(doc, dialect.spec)
    except iso8583.EncodeError as e:  # not expected after the checks above; kept as a backstop
        field = "bitmap" if e.field in ("p", "1") else field_number(str(e.field))
        raise EncodeError(
            message(field, e.msg, offsets.get(str(e.field))), field, offsets.get(str(e.field))
        ) from None
    return bytes(raw), offsets


def _data_size(value: str, fspec: Mapping[str, Any]) -> int:
    if fspec["data_enc"] != "b":
        return len(value.encode(fspec["data_enc"]))
    if fspec.get("len_count", "bytes") == "nibbles":
        return (len(value) + 1) // 2
    return len(value) // 2


def response_mti(mti: str) -> str:
    """The response MTI of a request MTI (third digit + 1).

    >>> response_mti("0200"), response_mti("0420")
    ('0210', '0430')
    """
    if not (len(mti) == 4 and mti.isascii() and mti.isdigit() and int(mti[2]) % 2 == 0):
        raise EncodeError(message("t", f"expected a request message type, got {shown('t', mti)}", None), "t")
    return mti[:2] + str(int(mti[2]) + 1) + mti[3]


# ---------------------------------------------------------------------------------------------------- MAC


def mac_payload(encoded: bytes) -> bytes:
    """The bytes a POS MAC covers: from the MTI up to field 64, exclusive (the message without its last 8).

    Raises DecodeError if the message does not decode or carries no field 64.
    """
    parts = split_pos_mac(decode(encoded, _POS)[0], encoded)
    if parts is None:
        pos = _POS.mti_len
        raise DecodeError(message(64, "not in the bitmap, the message carries no MAC", pos), 64, pos)
    return parts[0]


def split_pos_mac(msg: Mapping[str, str], encoded: bytes) -> tuple[bytes, bytes] | None:
    """For a POS Message decoded from `encoded`: (the bytes its MAC covers, the 8-byte MAC of field 64), or
    None when it carries no field 64. Field 64 is the last field of every POS message (the dialect defines
    none above it), so the MAC covers every byte before its 8 — the secondary bitmap, when set, included.

    >>> signed = encode_pos({"t": "0210", "11": "000001", "39": "00", "64": "3132333435363738"})
    >>> covered, mac = split_pos_mac(decode_pos(signed), signed)
    >>> covered == signed[:-8], mac
    (True, b'12345678')
    >>> split_pos_mac({"t": "0810", "11": "000001"}, b"...") is None
    True
    """
    if "64" not in msg:
        return None
    return bytes(encoded[:-MAC_BYTES]), bytes.fromhex(msg["64"])


def network_mac_payload(encoded: bytes) -> bytes:
    """The bytes a network MAC covers: every byte before the MAC, which is the last field (64, or 128 in a
    message with a secondary bitmap) — the message without its last 16 characters.

    Raises DecodeError if the message does not decode or carries no MAC in the last field.
    """
    msg = decode(encoded, _NETWORK)[0]
    parts = split_network_mac(msg, encoded)
    if parts is None:
        field, pos = int(network_mac_field(msg)), _NETWORK.mti_len
        bad = "no MAC as the last field of the message (64 without a secondary bitmap, else 128)"
        raise DecodeError(message(field, bad, pos), field, pos)
    return parts[0]


def split_network_mac(msg: Mapping[str, str], encoded: bytes) -> tuple[bytes, bytes] | None:
    """For a network Message decoded from `encoded`: (the bytes its MAC covers, the 8-byte MAC), or None
    when it carries no MAC as its last field — none at all, both 64 and 128, or a field 64 followed by
    fields above 64 (which it would not cover).

    >>> plain = encode_network({"t": "0210", "11": "000001", "39": "00", "64": "0123456789ABCDEF"})
    >>> covered, mac = split_network_mac(decode_network(plain), plain)
    >>> covered == plain[:-16], mac.hex().upper()
    (True, '0123456789ABCDEF')
    >>> before_90 = {"t": "0430", "11": "000002", "39": "00", "64": "0123456789ABCDEF", "90": "0" * 42}
    >>> split_network_mac(before_90, encode_network(before_90)) is None
    True
    """
    if "128" in msg:
        field = "128" if "64" not in msg else None
    elif "64" in msg:
        above_64 = any(key.isdigit() and int(key) > 64 for key in msg)
        field = None if above_64 else "64"
    else:
        field = None
    if field is None:
        return None
    return bytes(encoded[: -2 * MAC_BYTES]), bytes.fromhex(msg[field])


def encode_pos_with_mac(msg: Message, mac_fn: Callable[[bytes], bytes]) -> bytes:
    """Encode `msg` with field 64 = `mac_fn(bytes from the MTI up to field 64)` (8 bytes, written as is)."""
    return _encode_with_mac(msg, _POS, mac_fn, lambda mac: mac)


def encode_network_with_mac(msg: Message, mac_fn: Callable[[bytes], bytes]) -> bytes:
    """Encode `msg` with its MAC as the last field: 64, or 128 when the message needs a secondary bitmap
    (`network_mac_field`); the MAC is `mac_fn(every byte before it)`, 8 bytes written as 16 uppercase hex.
    A MAC field already in `msg` is replaced."""
    fields = {key: value for key, value in msg.items() if key not in NETWORK_MAC_FIELDS}
    field = network_mac_field(fields)
    raw, offsets = encode({**fields, field: "0" * 2 * MAC_BYTES}, _NETWORK)
    start = offsets[field]
    mac = mac_fn(raw[:start])
    if not isinstance(mac, bytes | bytearray) or len(mac) != MAC_BYTES:
        got = f"{len(mac)} bytes" if isinstance(mac, bytes | bytearray) else f"a {type(mac).__name__}"
        bad = f"the MAC function returned {got}, expected {MAC_BYTES}"
        raise EncodeError(message(int(field), bad, start), int(field), start)
    return raw[:start] + bytes(mac).hex().upper().encode("ascii")


def _encode_with_mac(
    msg: Message, dialect: Dialect, mac_fn: Callable[[bytes], bytes], render: Callable[[bytes], bytes]
) -> bytes:
    raw, offsets = encode({**msg, "64": "0" * 2 * MAC_BYTES}, dialect)
    start = offsets["64"]
    mac = mac_fn(raw[:start])
    if not isinstance(mac, bytes | bytearray) or len(mac) != MAC_BYTES:
        got = f"{len(mac)} bytes" if isinstance(mac, bytes | bytearray) else f"a {type(mac).__name__}"
        bad = f"the MAC function returned {got}, expected {MAC_BYTES}"
        raise EncodeError(message(64, bad, start), 64, start)
    field = render(bytes(mac))
    return raw[:start] + field + raw[start + len(field) :]
