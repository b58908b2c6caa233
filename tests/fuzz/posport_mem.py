"""Fuzz target: the host's whole POS connection path, in memory — fast enough for a million inputs.

The `posport` target sends each input over TCP to a host in another thread (≈10–40 inputs a second: two
connections, thread hand-offs, the kernel). This one drives the very same code — `PosServer._serve`, the
connection handler the POS port's `asyncio.start_server` calls: admission, `FrameBuffer`, limits, one task
per frame, `split_pos_frame`, `decode_pos`, the `30` answer, the pipelines and steps on a SQLite store, the
issuer simulator over loopback when a request gets that far, encoding and the MAC of the answer, `_send`,
the close — with an in-memory transport in place of the socket: the input is fed to the connection's
`StreamReader` followed by the end of the stream (the peer's half-close), and what the host writes is
collected until the handler returns (the host closed the connection).

Only the socket is left out (`asyncio.start_server`'s accept, the kernel's buffers); the TCP target keeps
that: `tests/fuzz/test_posport.py` replays the corpus and its mutations over real sockets in `make test`.

Input and contract: those of `posport` (`tests.fuzz.posport.check_answers`): the host closes within
`ANSWER_WAIT_S` of the end of the stream (else: a hang), every answer is a well-formed POS response and never
`96`, each decodable request is answered with its 11, each undecodable one with MTI, 11 and 41 readable gets
`30`; the host logs no traceback, no ERROR, no raw control character; every `ECHO_EVERY` inputs a legitimate
echo gets `00`. The corpus is the `posport` one (`tests/fuzz/corpus/posport_mem` links to it).

Atheris: `python -m tests.fuzz.posport_mem -runs=N .fuzz/work/posport_mem tests/fuzz/corpus/posport`;
`POSPORT_KEEP_GOING=<file>` lists every problem with its input instead of stopping at the first.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from posgate.bootstrap.stack import (
    start_all,  # imported here: atheris instruments what is loaded before the run
)
from posgate.config import Settings
from posgate.errors import FramingError
from posgate.host.server import PosServer
from posgate.iso8583.codec import decode_pos
from posgate.iso8583.framing import FrameBuffer, split_pos_frame
from posgate.logs import configure_logging
from tests.fuzz._harness import fuzz
from tests.fuzz.posport import ANSWER_WAIT_S, LogWatch, check_answers, legit_echo

REPLAY_HERE = False  # starts a host: tests/fuzz/test_posport.py replays the corpus through it
ECHO_EVERY = 50  # a legitimate echo after every this many inputs (and after the first)
COLLECT_EVERY = 200  # run the garbage collector first: "Task exception was never retrieved" shows then
PEER = ("192.0.2.7", 40000)  # TEST-NET-1: one source, as a terminal behind one address


class MemoryTransport(asyncio.Transport):
    """A socket's transport with no socket: writes are kept, closing tells the protocol the connection is
    lost (as the event loop does after the last write is flushed)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol) -> None:
        super().__init__({"peername": PEER, "sockname": ("127.0.0.1", 9000)})
        self.loop = loop
        self.protocol = protocol
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.closed:
            self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return not self.closed


async def exchange(server: PosServer, data: bytes, wait_s: float = ANSWER_WAIT_S) -> tuple[list[bytes], bool]:
    """One connection carrying `data` then the end of the stream, handled by `server` as its POS port
    would: (the frame bodies it wrote, whether it closed within `wait_s`)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16384, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = MemoryTransport(loop, protocol)
    protocol.connection_made(transport)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    reader.feed_data(data)
    reader.feed_eof()
    try:
        async with asyncio.timeout(wait_s):
            await server._serve(reader, writer)
        closed = transport.closed
    except TimeoutError:
        closed = False
    frames, bodies = FrameBuffer(65535), []
    frames.receive_data(bytes(transport.written))
    try:
        while (body := frames.next_frame()) is not None:
            bodies.append(body)
    except FramingError:
        pass  # a broken frame in the answers: check_answers sees fewer answers than owed
    return bodies, closed


async def check_input(server: PosServer, data: bytes, log: LogWatch, collect: bool = False) -> list[str]:
    """Every way the host broke the contract on this input; empty when it held."""
    bodies, closed = await exchange(server, data)
    problems = check_answers(data, bodies, closed, server.services.settings.max_frame_bytes)
    return problems + log.take(collect)


async def echo_problems(server: PosServer) -> list[str]:
    """A legitimate echo on a new connection must get `00`."""
    bodies, closed = await exchange(server, legit_echo())
    codes = [decode_pos(split_pos_frame(b).payload).get("39") for b in bodies]
    return [] if codes == ["00"] else [f"a legitimate echo got {codes} (closed: {closed})"]


# ---------------------------------------------------------------------------------------- atheris mode

_HOST: dict[str, Any] = {"inputs": 0}


def _start_host() -> None:
    """The whole stack (issuer simulator + host, SQLite in a temporary folder in memory) on an event loop
    of this thread, which runs only while an input is handled."""
    shm = Path("/dev/shm")  # a store on tmpfs: its commits cost no disk flush
    workdir = Path(tempfile.mkdtemp(prefix="posgate-fuzz-posport-mem-", dir=shm if shm.is_dir() else None))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    settings = Settings(
        data_dir=workdir / "data",
        database_url=f"sqlite:///{workdir / 'posgate.sqlite'}",
        pos_port=0,
        issuer_ports=[0, 0],
        env="test",
        terminal_cache_s=0.0,
        issuer_timeout_s=1.0,
    )
    configure_logging(settings.data_dir, "INFO", console=False)
    loop = asyncio.new_event_loop()
    running = loop.run_until_complete(start_all(settings))
    watch = LogWatch()
    logging.getLogger().addHandler(watch)
    atexit.register(lambda: loop.run_until_complete(running.stop()))
    _HOST.update(server=running.host.server, watch=watch, running=running, loop=loop)


def one_input(data: bytes) -> None:
    if "server" not in _HOST:
        _start_host()
    server, watch, loop = _HOST["server"], _HOST["watch"], _HOST["loop"]
    _HOST["inputs"] = count = _HOST["inputs"] + 1
    problems = loop.run_until_complete(check_input(server, data, watch, collect=count % COLLECT_EVERY == 0))
    if count % ECHO_EVERY == 1:
        problems += loop.run_until_complete(echo_problems(server))
    if not problems:
        return
    keep_going = os.environ.get("POSPORT_KEEP_GOING")
    if keep_going:
        with open(keep_going, "a", encoding="utf-8") as out:
            out.writelines(f"{p}\t{data.hex()}\n" for p in problems)
        return
    raise AssertionError("; ".join(problems))


if __name__ == "__main__":
    fuzz(Path(__file__).stem, one_input)
