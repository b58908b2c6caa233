"""FaultProxy: a loopback TCP proxy between the host and one issuer whose behaviour the harness switches at
run time — pass bytes on, delay them, drop them (the link stays open and goes silent), or cut every
connection and refuse new ones. One listening port per issuer; the host's route points at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from enum import Enum

_CHUNK = 65536


class Mode(Enum):
    PASS = "pass"
    DELAY = "delay"  # every chunk, both ways, `delay_s` late (order kept)
    DROP = "drop"  # read and discard both ways: a silent link
    CUT = "cut"  # no listener, every open connection closed


class FaultProxy:
    """Forwards 127.0.0.1:`port` → `target_host`:`target_port` (the target may be down: a new connection
    is then closed at once, as a dead issuer would refuse it)."""

    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target_host, self.target_port, self.port = target_host, target_port, port
        self.mode = Mode.PASS
        self.delay_s = 0.0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()  # connection handlers and their pumps
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        await self._close_listener()
        self._abort_all()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def set_mode(self, mode: Mode, delay_s: float = 0.0) -> None:
        """Switch behaviour. CUT closes the listener and aborts each connection; leaving CUT listens again."""
        if mode is Mode.CUT:
            self.mode = mode
            await self._close_listener()
            self._abort_all()
            return
        if self.mode is Mode.CUT or self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.mode, self.delay_s = mode, delay_s

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)
            self._server = None

    def _abort_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, down_reader: asyncio.StreamReader, down_writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._pipes.add(handler)
        try:
            await self._relay(down_reader, down_writer)
        except asyncio.CancelledError:
            pass
        finally:
            self._pipes.discard(handler)

    async def _relay(self, down_reader: asyncio.StreamReader, down_writer: asyncio.StreamWriter) -> None:
        if self.mode is Mode.CUT:
            down_writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(self.target_host, self.target_port), 1
            )
        except (OSError, TimeoutError):
            down_writer.transport.abort()
            return
        if self.mode is Mode.CUT:  # cut while connecting
            down_writer.transport.abort()
            up_writer.transport.abort()
            return
        self.connections += 1
        self._writers |= {down_writer, up_writer}
        pumps = [
            asyncio.create_task(self._pump(down_reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, down_writer)),
        ]
        for task in pumps:
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for writer in (down_writer, up_writer):  # one side closed: close the other, as a TCP relay does
            writer.transport.abort()
            self._writers.discard(writer)
        for task in pumps:
            task.cancel()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Reader → a queue of (due time, bytes) → writer: a delay shifts every chunk, in order."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        sender = asyncio.create_task(self._send(queue, writer))
        try:
            while data := await reader.read(_CHUNK):
                if self.mode is Mode.DROP:
                    continue
                due = time.monotonic() + (self.delay_s if self.mode is Mode.DELAY else 0.0)
                queue.put_nowait((due, data))
        except OSError:
            pass
        finally:
            queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await sender

    async def _send(
        self, queue: asyncio.Queue[tuple[float, bytes] | None], writer: asyncio.StreamWriter
    ) -> None:
        while (item := await queue.get()) is not None:
            due, data = item
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            if writer.is_closing():
                return
            writer.write(data)
            await writer.drain()
