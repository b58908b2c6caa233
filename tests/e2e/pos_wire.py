"""A POS 8583 wire client written from shared/spec/pos-8583.md alone, for attack tests: it imports nothing of
posgate, so what it sends is what any client on the terminal network could send.

`encode(mti, fields)` builds a frame (length, TPDU, header, MTI, bitmap, fields) from field values given as
the spec writes them (digits for n/z fields, text for an/ans, bytes for b); `decode_body(body)` reads a frame
body back into `(mti, fields)` and raises `SpecError` for anything the spec's field table does not allow.
`FrameReader` reads one frame (or end of stream) from an asyncio stream.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

TPDU = bytes.fromhex("6000030000")
HEADER = bytes.fromhex("603100000000")
DEMO_TID = "10000001"
DEMO_MID = "898440153110001"


class SpecError(ValueError):
    """A frame that the spec's field table does not allow."""


@dataclass(frozen=True)
class Field:
    kind: str  # "n" BCD digits, "z" track (BCD, D separator), "a" ASCII, "b" binary
    length: int  # fixed length (digits for n/z, bytes otherwise) or the maximum when `prefix`
    prefix: int = 0  # 0 fixed, 1 or 2 bytes of BCD length
    right_aligned: bool = False


# The "Field layout" table of the spec.
FIELDS: dict[int, Field] = {
    2: Field("n", 19, 1),
    3: Field("n", 6),
    4: Field("n", 12),
    11: Field("n", 6),
    12: Field("n", 6),
    13: Field("n", 4),
    14: Field("n", 4),
    15: Field("n", 4),
    22: Field("n", 3),
    23: Field("n", 3, right_aligned=True),
    25: Field("n", 2),
    26: Field("n", 2),
    32: Field("n", 11, 1),
    35: Field("z", 37, 1),
    36: Field("z", 104, 2),
    37: Field("a", 12),
    38: Field("a", 6),
    39: Field("a", 2),
    41: Field("a", 8),
    42: Field("a", 15),
    44: Field("a", 25, 1),
    48: Field("n", 322, 2),
    49: Field("a", 3),
    52: Field("b", 8),
    53: Field("n", 16),
    54: Field("a", 20, 2),
    55: Field("b", 255, 2),
    59: Field("a", 999, 2),
    60: Field("n", 999, 2),  # "n..17+": terminals send further sub-fields
    61: Field("n", 29, 2),
    62: Field("b", 512, 2),
    63: Field("a", 163, 2),
    64: Field("b", 8),
}


def bcd(digits: str, right_aligned: bool = False) -> bytes:
    if len(digits) % 2:
        digits = "0" + digits if right_aligned else digits + "0"
    return bytes.fromhex(digits)


def _length_prefix(count: int, size: int) -> bytes:
    return bcd(str(count).rjust(size * 2, "0"))


def encode_field(number: int, value: str | bytes) -> bytes:
    spec = FIELDS[number]
    if spec.kind in "nz":
        assert isinstance(value, str)
        data = bcd(value, spec.right_aligned)
        count = len(value)
    else:
        data = value if isinstance(value, bytes) else value.encode("latin-1")
        count = len(data)
    if spec.prefix:
        return _length_prefix(count, spec.prefix) + data
    return data


def encode(mti: str, fields: dict[int, str | bytes], tpdu: bytes = TPDU, header: bytes = HEADER) -> bytes:
    """The complete frame, length prefix included."""
    bitmap = 0
    data = b""
    for number in sorted(fields):
        bitmap |= 1 << (64 - number)
        data += encode_field(number, fields[number])
    body = tpdu + header + bcd(mti) + bitmap.to_bytes(8, "big") + data
    return len(body).to_bytes(2, "big") + body


def _digits(raw: bytes, field: int) -> str:
    text = raw.hex().upper()
    if not text.isdigit():
        raise SpecError(f"field {field}: not BCD digits: {text}")
    return text


def decode_body(body: bytes) -> tuple[str, dict[int, str]]:
    """(MTI, fields) of a frame body (what follows the length prefix); values as the spec writes them
    (binary fields as uppercase hex)."""
    if len(body) < 5 + 6 + 2 + 8 or body[0] != 0x60:
        raise SpecError("too short for TPDU, header, MTI and bitmap, or TPDU id not 60")
    pos = 11
    mti = _digits(body[pos : pos + 2], 0)
    bitmap = int.from_bytes(body[pos + 2 : pos + 10], "big")
    pos += 10
    if bitmap >> 63:
        raise SpecError("secondary bitmap: the spec has none")
    fields: dict[int, str] = {}
    for number in range(2, 65):
        if not bitmap >> (64 - number) & 1:
            continue
        spec = FIELDS.get(number)
        if spec is None:
            raise SpecError(f"field {number} is not in the spec")
        count = spec.length
        if spec.prefix:
            count = int(_digits(body[pos : pos + spec.prefix], number))
            pos += spec.prefix
            if count > spec.length:
                raise SpecError(f"field {number}: length {count} over {spec.length}")
        size = (count + 1) // 2 if spec.kind in "nz" else count
        raw = body[pos : pos + size]
        if len(raw) < size:
            raise SpecError(f"field {number}: truncated")
        pos += size
        if spec.kind == "n":
            text = _digits(raw, number)
            fields[number] = text[-count:] if spec.right_aligned else text[:count]
        elif spec.kind == "z":
            fields[number] = raw.hex().upper()[:count]
        elif spec.kind == "b":
            fields[number] = raw.hex().upper()
        else:
            fields[number] = raw.decode("latin-1")
    if pos != len(body):
        raise SpecError(f"{len(body) - pos} bytes after the last field")
    return mti, fields


def echo(stan: str = "000001", tid: str = DEMO_TID, mid: str = DEMO_MID) -> bytes:
    """0820 echo test (60.1 00, batch 000001, 60.3 301)."""
    return encode("0820", {11: stan, 41: tid, 42: mid, 60: "00000001301"})


def sign_in(stan: str = "000001", tid: str = DEMO_TID, mid: str = DEMO_MID) -> bytes:
    """0800 sign-in (60.3 003), operator 001 in field 63."""
    return encode("0800", {11: stan, 41: tid, 42: mid, 60: "00000001003", 63: "001"})


class FrameReader:
    """Reads whole frames from a stream: `next()` is a frame body, or None at end of stream."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    async def next(self) -> bytes | None:
        try:
            prefix = await self.reader.readexactly(2)
            return await self.reader.readexactly(int.from_bytes(prefix, "big"))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
