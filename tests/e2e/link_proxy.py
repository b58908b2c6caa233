"""A man in the middle of an issuer link, for tests: relays network-dialect frames between the host and an
issuer over real TCP, records every message it sees (decoded with bare pyiso8583, no posgate code) and can
rewrite the host's messages on their way — what an attacker on the link between acquirer and issuer can do.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import iso8583
import iso8583.specs

SPEC = iso8583.specs.default_ascii

Message = dict[str, str]
#: Given a message from the host, the message to forward instead (or None to forward it unchanged).
Tamper = Callable[[Message], Message | None]


def decode(body: bytes) -> Message:
    msg, _ = iso8583.decode(body, SPEC)
    return {key: value for key, value in msg.items() if key not in ("p", "1")}


def encode(msg: Message) -> bytes:
    raw, _ = iso8583.encode(dict(msg), SPEC)
    return bytes(raw)


@dataclass
class LinkProxy:
    """Listens on a free loopback port and relays each connection to `upstream_port`."""

    upstream_port: int
    #: host → issuer messages, in order
    requests: list[Message] = field(default_factory=list)
    #: issuer → host messages, in order
    replies: list[Message] = field(default_factory=list)
    tamper: Tamper | None = None
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def sent(self, mti: str) -> list[Message]:
        return [msg for msg in self.requests if msg["t"] == mti]

    def answered(self, mti: str) -> list[Message]:
        return [msg for msg in self.replies if msg["t"] == mti]

    async def _serve(self, host_reader: asyncio.StreamReader, host_writer: asyncio.StreamWriter) -> None:
        issuer_reader, issuer_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        up = asyncio.create_task(self._relay(host_reader, issuer_writer, outbound=True))
        down = asyncio.create_task(self._relay(issuer_reader, host_writer, outbound=False))
        self._tasks |= {up, down}
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
                self._tasks.discard(task)
            for writer in (host_writer, issuer_writer):
                writer.close()

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, outbound: bool
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                (length,) = struct.unpack(">H", await reader.readexactly(2))
                body = await reader.readexactly(length)
                msg = decode(body)
                if outbound and self.tamper is not None:
                    changed = self.tamper(msg)
                    if changed is not None:
                        msg, body = changed, encode(changed)
                (self.requests if outbound else self.replies).append(msg)
                writer.write(struct.pack(">H", len(body)) + body)
                await writer.drain()
