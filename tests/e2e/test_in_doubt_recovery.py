"""Finding 3 of issue 9: a host that dies while an issuer holds its request leaves the transaction in doubt.

A separate `posgate host` process is killed with SIGKILL while the issuer has debited the card but not yet
answered (fault `drop_replies`); the terminal never reverses. A host that starts later (or another node that
is still running) must find the `pending` row once it is older than `in_doubt_after_s`, claim it in the
database and reverse it through store-and-forward — exactly once, however many nodes look, on SQLite and
on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from posgate.bootstrap.host import HostRuntime, start_host
from posgate.bootstrap.stack import Running, start_all
from posgate.config import Settings
from posgate.issuer import books
from posgate.logs import configure_logging
from posgate.store.models import SafEntry, Transaction
from posgate.store.models_simulator import SimAuthorization
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state
from posgate.terminal.client import TerminalError
from posgate.terminal.messages import last_transaction, sale_request
from posgate.terminal.state import TerminalState

from .conftest import stack_settings
from .helpers import eventually

pytestmark = pytest.mark.slow

CARD = demo_card("6229990000000012")
BANK_A = "Demo Bank A"
AMOUNT_FEN = 2_500
START_FEN = 1_000_000
# every node of these tests runs with the same timing: the issuer time-out, then the in-doubt age
TIMING = {"issuer_timeout_s": 5.0, "in_doubt_after_s": 7.0, "recovery_interval_s": 0.5}


def _settings(tmp_path: Path, database_url: str) -> Settings:
    return stack_settings(tmp_path, database_url, **TIMING)


@pytest.fixture
async def issuers(tmp_path: Path, database_url: str) -> AsyncIterator[Running]:
    """The issuer simulator alone, in this process, on the test's store."""
    settings = _settings(tmp_path, database_url)
    configure_logging(settings.data_dir, "INFO", console=False)
    running = await start_all(settings, host=False, issuers=True)
    try:
        yield running
    finally:
        await running.stop()


class HostProcess:
    """`posgate host` in its own process, on the same store, pointed at the simulator's ports."""

    def __init__(self, tmp_path: Path, settings: Settings, ports: dict[str, int]) -> None:
        env = {
            **os.environ,
            "POSGATE_ENV": "test",
            "POSGATE_ISSUER_TIMEOUT_S": str(TIMING["issuer_timeout_s"]),
            "POSGATE_IN_DOUBT_AFTER_S": str(TIMING["in_doubt_after_s"]),
            "POSGATE_TERMINAL_CACHE_S": "0",
            "POSGATE_ISSUER_CONNECT_TIMEOUT_S": "1",
            "POSGATE_RECONNECT_MAX_S": "0.5",
        }
        env.pop("POSGATE_CONFIG", None)
        data_dir = tmp_path / "host-a"  # every node needs the same master key
        data_dir.mkdir(exist_ok=True)
        shutil.copy(settings.master_key_path, data_dir / "master.key")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "posgate",
                "host",
                "--data-dir",
                str(data_dir),
                "--database-url",
                settings.resolved_database_url,
                "--pos-port",
                "0",
                "--issuer-ports",
                ",".join(str(ports[name]) for name in sorted(ports)),
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=(tmp_path / "host-a.stderr").open("w"),
            text=True,
        )
        self.stderr_path = tmp_path / "host-a.stderr"

    async def ready(self) -> tuple[str, int]:
        def read() -> str:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith("posgate ready pos="):
                    return line.strip()
            return ""

        line = await asyncio.wait_for(asyncio.to_thread(read), 60)
        assert line, "posgate host printed no ready line: " + self.stderr_path.read_text()[-2000:]
        host, port = line.split("=", 1)[1].rsplit(":", 1)
        return host, int(port)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()


async def _available_fen(running: Running) -> int:
    vault = running.handle.vault

    def read(session) -> int:  # type: ignore[no-untyped-def]
        card = books.find_card(session, vault, BANK_A, CARD.pan)
        assert card is not None
        return card.account.balance_fen - card.account.held_fen

    return await running.handle.store.run(read)


async def _the_sale(running: Running) -> Transaction:
    def read(session) -> Transaction:  # type: ignore[no-untyped-def]
        return session.scalars(
            select(Transaction).where(Transaction.kind == "sale", Transaction.amount_fen == AMOUNT_FEN)
        ).one()

    return await running.handle.store.run(read)


async def _state_is(running: Running, state: str) -> bool:
    return (await _the_sale(running)).state == state


async def _reversals_of(running: Running, txn_id: int) -> int:
    return await running.handle.store.run(
        lambda s: s.scalar(
            select(func.count()).where(SafEntry.transaction_id == txn_id, SafEntry.mti == "0420")
        )
    )


async def _issuer_reversed(running: Running) -> int:
    return await running.handle.store.run(
        lambda s: s.scalar(
            select(func.count()).where(SimAuthorization.state == "reversed", SimAuthorization.mti == "0200")
        )
    )


async def _sale_in_flight_when_the_host_dies(
    tmp_path: Path, issuers: Running
) -> tuple[Transaction, TerminalState]:
    """A sale the issuer debited and never answered; its host is killed (SIGKILL) while it waits."""
    assert issuers.issuers is not None
    settings = _settings(tmp_path, issuers.handle.store.engine.url.render_as_string(hide_password=False))
    host = HostProcess(tmp_path, settings, dict(issuers.issuers.ports))
    try:
        address = await host.ready()
        state = demo_terminal_state()
        terminal = TerminalClient(*address, state, timeout_s=30)
        await terminal.connect()
        assert (await terminal.sign_in()).approved
        assert await _available_fen(issuers) == START_FEN
        issuers.issuers.set_fault(BANK_A, "drop_replies")  # the issuer debits but does not answer
        sale = asyncio.create_task(terminal.sale(CARD, "123456", AMOUNT_FEN))

        async def debited() -> bool:
            return await _available_fen(issuers) == START_FEN - AMOUNT_FEN

        assert await eventually(debited, timeout_s=10, every_s=0.05)
        host.kill()
        with pytest.raises(TerminalError):  # the terminal never gets an answer, and does not reverse
            await sale
        await terminal.close()
    finally:
        host.stop()
        issuers.issuers.set_fault(BANK_A, "none")
    txn = await _the_sale(issuers)
    assert txn.state == "pending", "the host died before the issuer time-out: the row must be in doubt"
    assert await _reversals_of(issuers, txn.id) == 0
    return txn, state


async def _start_node(tmp_path: Path, issuers: Running, name: str) -> HostRuntime:
    assert issuers.issuers is not None
    settings = _settings(tmp_path, "sqlite://").model_copy(update={"data_dir": tmp_path / name})
    node = await start_host(settings, issuers.handle, issuer_ports=dict(issuers.issuers.ports))
    assert await node.services.links.wait_up(5)
    return node


async def test_a_sale_in_doubt_after_a_crash_is_reversed_by_the_restarted_host(
    tmp_path: Path, issuers: Running
) -> None:
    txn, state = await _sale_in_flight_when_the_host_dies(tmp_path, issuers)
    assert await _available_fen(issuers) == START_FEN - AMOUNT_FEN  # the card stays debited meanwhile
    started = time.monotonic()
    node = await _start_node(tmp_path, issuers, "restarted")
    try:

        async def restored() -> bool:
            return await _available_fen(issuers) == START_FEN

        assert await eventually(restored, timeout_s=TIMING["in_doubt_after_s"] + 15)
        assert time.monotonic() - started < TIMING["in_doubt_after_s"] + 15
        assert await eventually(lambda: _state_is(issuers, "reversed"))  # the 0430 is recorded
        recovered = await _the_sale(issuers)
        assert recovered.state == "reversed" and recovered.response_code == "98"
        assert recovered.recovered_at is not None
        assert await _reversals_of(issuers, txn.id) == 1
        assert await _issuer_reversed(issuers) == 1
        # the terminal, back on line, reverses it late: still reversed exactly once at the issuer
        terminal = TerminalClient(*node.address, state, timeout_s=10)
        async with terminal:
            assert (await terminal.sign_in()).approved
            assert (await terminal.reverse_last("98")).response_code == "00"
        await asyncio.sleep(1.0)
        assert await _available_fen(issuers) == START_FEN
        assert await _reversals_of(issuers, txn.id) == 1
        assert await _issuer_reversed(issuers) == 1
    finally:
        await node.stop()


async def test_two_live_nodes_reverse_a_dead_nodes_sale_exactly_once(
    tmp_path: Path, issuers: Running
) -> None:
    # two nodes are up while a third dies with a sale in doubt: both look for it on their timer
    first = await _start_node(tmp_path, issuers, "node-b")
    second = await _start_node(tmp_path, issuers, "node-c")
    try:
        txn, _state = await _sale_in_flight_when_the_host_dies(tmp_path, issuers)

        async def restored() -> bool:
            return await _available_fen(issuers) == START_FEN

        assert await eventually(restored, timeout_s=TIMING["in_doubt_after_s"] + 15)
        assert await eventually(lambda: _state_is(issuers, "reversed"))
        await asyncio.sleep(2 * TIMING["recovery_interval_s"] + 1)  # both timers have run again since
        assert await _reversals_of(issuers, txn.id) == 1
        assert await _issuer_reversed(issuers) == 1
        assert await _available_fen(issuers) == START_FEN
    finally:
        for node in (first, second):
            with contextlib.suppress(Exception):
                await node.stop()


class ReplyGate:
    """A TCP relay between the host and one issuer whose replies the test can hold back and release."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.open = asyncio.Event()
        self.open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _relay(self, host_reader: asyncio.StreamReader, host_writer: asyncio.StreamWriter) -> None:
        issuer_reader, issuer_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for pump in (
            self._pump(host_reader, issuer_writer, False),
            self._pump(issuer_reader, host_writer, True),
        ):
            task = asyncio.create_task(pump)
            self._tasks.add(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gated: bool) -> None:
        try:
            while data := await reader.read(65536):
                if gated:
                    await self.open.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def test_a_late_approval_of_a_resolved_sale_is_answered_98_and_reversed_once(
    tmp_path: Path, issuers: Running
) -> None:
    """The live node is slow, not dead: its issuer answers after another node resolved the sale. The
    resolution wins (conditional UPDATEs on the state): the terminal gets 98, never 00, the card is
    reversed once, and a repeat of the sale gets the stored 98 instead of 94."""
    assert issuers.issuers is not None
    ports = dict(issuers.issuers.ports)
    gate = ReplyGate(ports[BANK_A])
    ports[BANK_A] = await gate.start()
    # a long issuer time-out, so that the resolution (not this node's own time-out) decides
    settings = stack_settings(
        tmp_path, "sqlite://", issuer_timeout_s=30.0, in_doubt_after_s=32.0, recovery_interval_s=600
    )
    node = await start_host(settings, issuers.handle, issuer_ports=ports)
    try:
        assert await node.services.links.wait_up(5) and node.recovery is not None
        state = demo_terminal_state()
        async with TerminalClient(*node.address, state, timeout_s=40) as terminal:
            assert (await terminal.sign_in()).approved
            gate.open.clear()  # the issuer's answers wait at the gate
            msg = sale_request(state, state.next_stan(), CARD, AMOUNT_FEN, None, "magstripe", None)
            sale = asyncio.create_task(terminal.exchange(dict(msg)))

            async def debited() -> bool:
                return await _available_fen(issuers) == START_FEN - AMOUNT_FEN

            assert await eventually(debited, timeout_s=10, every_s=0.05)
            # as another node's timer would once the sale is older than its in_doubt_after_s
            resolved = await node.recovery.recover_once(in_doubt_after_s=0.0)
            assert [(r.kind, r.state, r.reversal_queued) for r in resolved] == [("sale", "timed_out", True)]

            async def restored() -> bool:
                return await _available_fen(issuers) == START_FEN

            assert await eventually(restored, timeout_s=10)  # the 0420 went through; its 0430 waits
            gate.open.set()  # now the late 0210 approval arrives
            answer = await asyncio.wait_for(sale, 20)
            assert answer.response_code == "98"
            txn = await _the_sale(issuers)
            assert "AskIssuer:ok" in (txn.trace or "")  # the issuer's approval did arrive
            assert txn.recovered_at is not None and txn.response_code == "98"

            async def reversed_() -> bool:
                return (await _the_sale(issuers)).state == "reversed"

            assert await eventually(reversed_, timeout_s=10)  # 0430 delivered
            repeat = await terminal.exchange(dict(msg))
            assert repeat.response_code == "98" and repeat.rrn == answer.rrn
            state.last = last_transaction(msg)  # the terminal reverses the sale it got 98 for
            assert (await terminal.reverse_last("98")).response_code == "00"
            await asyncio.sleep(0.5)
        assert await _available_fen(issuers) == START_FEN
        assert await _reversals_of(issuers, txn.id) == 1
        assert await _issuer_reversed(issuers) == 1
    finally:
        await node.stop()
        await gate.stop()
