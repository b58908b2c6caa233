"""The store-and-forward queue's promise to a terminal's reversal: ReverseOriginal tries to deliver the 0420
at once and answers the terminal after the issuer has, when it can (docs/protocols/pos-8583.md, Reversals).

When the forwarder's own timer (every `saf_retry_s`) picked the new entry up first, `deliver_for` found
it "in flight" and returned at once: the terminal got its `00` while the 0420 was still on its way, and a
balance read right after could still see the hold (a suspected cause of a flaky
`test_reversal_of_each_reversible_kind_restores_the_account[postgresql]`). Here the race is made
deterministic: the issuer's link is slowed, the forwarder starts the attempt, then `deliver_for` is asked.
Real TCP: host → proxy → issuer simulator, SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from posgate.bootstrap.host import start_host
from posgate.bootstrap.stack import Running, start_all
from posgate.logs import configure_logging
from posgate.store.acquirer import reverse_transaction
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state

from .conftest import stack_settings
from .helpers import available_fen, eventually

OK_CARD = demo_card("6229990000000012")  # Demo Bank A, 10,000.00
BANK_A = "Demo Bank A"


class SlowReversalProxy:
    """Between the host and an issuer: relays every frame, holding each 0420 for `delay_s` first."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay_s = 0.0
        self.reversals_seen = 0
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _accept(self, host_reader: asyncio.StreamReader, host_writer: asyncio.StreamWriter) -> None:
        issuer_reader, issuer_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for pump in (
            self._pump(host_reader, issuer_writer, True),
            self._pump(issuer_reader, host_writer, False),
        ):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, outbound: bool) -> None:
        try:
            while True:
                (length,) = struct.unpack(">H", await reader.readexactly(2))
                body = await reader.readexactly(length)
                if outbound and body[:4] == b"0420":
                    self.reversals_seen += 1
                    await asyncio.sleep(self.delay_s)
                writer.write(struct.pack(">H", len(body)) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def slow_stack(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[Running, SlowReversalProxy]]:
    settings = stack_settings(tmp_path, database_url, issuer_timeout_s=5.0, saf_retry_s=60.0)
    configure_logging(settings.data_dir, "INFO", console=False)
    running = await start_all(settings, host=False)
    assert running.issuers is not None
    ports = dict(running.issuers.ports)
    proxy = SlowReversalProxy(ports[BANK_A])
    ports[BANK_A] = await proxy.start()
    running.host = await start_host(settings, running.handle, issuer_ports=ports)
    try:
        assert await running.host.services.links.wait_up(5.0)
        yield running, proxy
    finally:
        await running.stop()
        await proxy.stop()


async def test_delivering_now_waits_for_the_forwarders_attempt_already_under_way(
    slow_stack: tuple[Running, SlowReversalProxy],
) -> None:
    running, proxy = slow_stack
    assert running.host is not None
    saf = running.host.services.saf
    async with TerminalClient(*running.pos_address, demo_terminal_state(), timeout_s=10.0) as terminal:
        assert (await terminal.sign_in()).approved
        sale = await terminal.sale(OK_CARD, "123456", 6_600)
        assert sale.approved and sale.rrn
        txn_id, now = int(sale.rrn), dt.datetime.now(dt.UTC).replace(tzinfo=None)
        assert await running.handle.store.run(lambda s: reverse_transaction(s, txn_id, "98", now))

        proxy.delay_s = 1.5
        forwarder = asyncio.create_task(saf.drain_once())  # the forwarder's timer, first to the entry
        assert await eventually(_seen(proxy), timeout_s=5), "the forwarder sent no 0420"
        assert await saf.deliver_for(txn_id, 5.0), "returned before the issuer answered the 0420"
        # the issuer has answered: the card has its money back now, not some time later
        assert await available_fen(terminal, OK_CARD) == 1_000_000
        assert await forwarder == 1


async def test_delivering_now_gives_up_without_an_error_when_the_attempt_under_way_takes_too_long(
    slow_stack: tuple[Running, SlowReversalProxy],
) -> None:
    """ReverseOriginal must still answer its terminal `00` when the forwarder's attempt outlasts the wait:
    `deliver_for` returns False, the attempt goes on, and the 0420 is delivered all the same. (Raising
    there answered the reversal `96`, and every repeat of it `96` again: 172 times in a short chaos run.)"""
    running, proxy = slow_stack
    assert running.host is not None
    saf = running.host.services.saf
    async with TerminalClient(*running.pos_address, demo_terminal_state(), timeout_s=10.0) as terminal:
        assert (await terminal.sign_in()).approved
        sale = await terminal.sale(OK_CARD, "123456", 6_700)
        assert sale.approved and sale.rrn
        txn_id, now = int(sale.rrn), dt.datetime.now(dt.UTC).replace(tzinfo=None)
        assert await running.handle.store.run(lambda s: reverse_transaction(s, txn_id, "98", now))

        proxy.delay_s = 2.5
        forwarder = asyncio.create_task(saf.drain_once())
        assert await eventually(_seen(proxy), timeout_s=5), "the forwarder sent no 0420"
        assert await saf.deliver_for(txn_id, 0.2) is False
        assert await forwarder == 1  # the forwarder's attempt was not cut short
        assert await available_fen(terminal, OK_CARD) == 1_000_000


def _seen(proxy: SlowReversalProxy):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return proxy.reversals_seen == 1

    return check
