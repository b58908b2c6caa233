"""The chaos harness's own tools, checked on their own (fast): the fault proxy's modes over real sockets and
the scan's encodings. A harness whose faults do nothing, or whose scan cannot find a PAN, would pass
anything."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from psec import pinblock

from tests.chaos.proxy import FaultProxy, Mode
from tests.chaos.scan import RawScanner

PAN = "6229996000000016"


async def _echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _round_trip(port: int, timeout_s: float = 1.0) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        started = time.monotonic()
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), timeout_s) == b"ping"
        return time.monotonic() - started
    finally:
        writer.close()


async def test_the_proxy_passes_delays_drops_and_cuts() -> None:
    server, port = await _echo_server()
    proxy = FaultProxy("127.0.0.1", port)
    listen = await proxy.start()
    try:
        assert await _round_trip(listen) < 0.5

        await proxy.set_mode(Mode.DELAY, 0.3)
        assert await _round_trip(listen, timeout_s=5) >= 0.6  # 0.3 s each way

        await proxy.set_mode(Mode.DROP)
        with pytest.raises(TimeoutError):
            await _round_trip(listen, timeout_s=0.5)

        await proxy.set_mode(Mode.PASS)
        reader, writer = await asyncio.open_connection("127.0.0.1", listen)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        await proxy.set_mode(Mode.CUT)
        assert await asyncio.wait_for(reader.read(10), 1) == b""  # the open connection is closed
        writer.close()
        with pytest.raises(OSError):
            await _round_trip(listen)  # and no new one is accepted

        await proxy.set_mode(Mode.PASS)
        assert await _round_trip(listen) < 0.5
    finally:
        await proxy.stop()
        server.close()
        await server.wait_closed()


def test_the_raw_scan_finds_a_pan_in_every_encoding_and_names_it_masked(tmp_path: Path) -> None:
    block = pinblock.encode_pinblock_iso_0("123456", PAN)
    planted = {
        "ascii.log": b"sale pan=" + PAN.encode() + b" ok",
        "track.log": b"t2 " + PAN.encode() + b"=30121011234567890",
        "utf16le.bin": b"x" + PAN.encode("utf-16-le"),
        "utf16be.bin": PAN.encode("utf-16-be"),
        "bcd.bin": b"\x01\x02" + bytes.fromhex(PAN + "D3012F"),
        "pinblock.bin": b"\xff" + block,
        "pinblock.txt": b"52=" + block.hex().upper().encode(),
        "unknown.log": b"other card 6228880000000016 seen",
        "clean.log": b"masked 622999******0016 rrn 000000000042 hash " + b"6" * 12,
    }
    for name, data in planted.items():
        (tmp_path / name).write_bytes(data)
    report = RawScanner([PAN], {PAN: "123456"}, ["622999", "622888"]).scan([tmp_path])
    found = {(Path(f.path).name, f.what, f.encoding) for f in report.findings}
    assert found == {
        ("ascii.log", "PAN", "ASCII"),
        ("track.log", "track 2", "ASCII"),
        ("utf16le.bin", "PAN", "UTF-16LE"),
        ("utf16be.bin", "PAN", "UTF-16BE"),
        ("bcd.bin", "track 2", "BCD"),
        ("pinblock.bin", "PIN block", "binary"),
        ("pinblock.txt", "PIN block", "hex"),
        ("unknown.log", "PAN-like", "ASCII"),
    }
    assert report.files == len(planted)
    assert all(PAN not in str(f) and "0000000016" not in str(f) for f in report.findings)
