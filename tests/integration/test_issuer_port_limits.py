"""The issuer simulator's port against the POS port's trivial abuses: a trickle is cut by the whole-frame
deadline, and a bank takes a bounded number of connections (SQLite store, real sockets)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from posgate.bootstrap.seed import load_demo_fixture
from posgate.fixtures.document import read_demo_fixture
from posgate.issuer.server import IssuerSimulator
from posgate.security.at_rest import CardVault
from posgate.store.db import make_engine, migrate
from posgate.store.runtime import Store

BANK_A = "Demo Bank A"
# an 0800 echo in the network dialect (ASCII MTI, hex bitmap, field 11, field 70 = 301), length-prefixed
ECHO = b"0800" + b"8020000000000000" + b"0400000000000000" + b"000001" + b"301"
FRAME = len(ECHO).to_bytes(2, "big") + ECHO


@pytest.fixture
async def simulator(tmp_path: Path) -> AsyncIterator[IssuerSimulator]:
    engine = make_engine(f"sqlite:///{tmp_path / 'issuer.sqlite'}")
    migrate(engine)
    vault = CardVault(os.urandom(32))
    store = Store(engine, threads=1)
    store.transact(lambda session: load_demo_fixture(session, vault, read_demo_fixture(), "test"))
    sim = IssuerSimulator(store, vault, frame_deadline_s=0.5, max_connections=2)
    await sim.start(banks=[BANK_A], ports={BANK_A: 0})
    try:
        yield sim
    finally:
        await sim.stop()
        store.close()


async def test_a_trickle_is_cut_by_the_frame_deadline(simulator: IssuerSimulator) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", simulator.ports[BANK_A])

    async def trickle() -> None:  # a byte every 0.05 s: the frame would take 1.4 s
        for byte in FRAME:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)

    sending = asyncio.create_task(trickle())
    started = time.monotonic()
    try:
        assert await asyncio.wait_for(reader.read(), 3) == b""  # closed unanswered
        assert time.monotonic() - started < 1.0
    finally:
        sending.cancel()
        writer.close()


async def test_a_whole_echo_is_answered_and_connections_are_capped(simulator: IssuerSimulator) -> None:
    port = simulator.ports[BANK_A]
    first = await asyncio.open_connection("127.0.0.1", port)
    second = await asyncio.open_connection("127.0.0.1", port)
    third = await asyncio.open_connection("127.0.0.1", port)
    try:
        first[1].write(FRAME)
        answer = await asyncio.wait_for(first[0].read(200), 2)
        assert answer[2:6] == b"0810" and b"000001" in answer
        assert await asyncio.wait_for(third[0].read(), 2) == b""  # over max_connections: closed
    finally:
        for _, writer in (first, second, third):
            writer.close()
