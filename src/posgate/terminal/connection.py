"""The terminal simulator's connection to the acquirer host (asyncio shell): one TCP connection (TLS when
given a context), requests pipelined on it.

`HostConnection` sends framed requests and hands each response to the request waiting for it, matched by
field 11 (STAN), the response MTI and field 41 (TID) — so several tasks may have requests in flight at once
and the host may answer out of order. Frames that match nothing (late answers, answers to `send_raw`) go to
a small queue that `send_raw` reads. It knows nothing of MACs, keys or the transactions: `client` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import ssl
import time
from dataclasses import dataclass

from posgate.errors import DecodeError, FramingError
from posgate.iso8583.codec import Message, decode_pos
from posgate.iso8583.framing import MAX_FRAME_BYTES, FrameBuffer, split_pos_frame
from posgate.terminal.errors import TerminalConnectionError, TerminalError, TerminalTimeout

__all__ = ["HostConnection", "Response"]

log = logging.getLogger(__name__)

_READ_CHUNK = 65536
_UNMATCHED_MAX = 64


@dataclass(frozen=True)
class Response:
    """A response as read: its frame header, the message bytes from the MTI on, the decoded fields, and
    when it was read (`time.perf_counter()`)."""

    header: bytes
    payload: bytes
    fields: Message
    received: float


def connection_reason(exc: OSError) -> str:
    """One line saying why a connection failed, for the cashier."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the host's certificate does not verify ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {(exc.reason or str(exc)).lower().replace('_', ' ')}"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


class HostConnection:
    """A terminal's connection to the host. `tid`: the terminal's id (answers must carry it in field 41)."""

    def __init__(
        self,
        host: str,
        port: int,
        tid: str,
        timeout_s: float = 10.0,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        tls: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.tid = tid
        self.tls = tls
        self.server_name = server_name
        self.timeout_s = timeout_s
        self._max_frame_bytes = max_frame_bytes
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[tuple[str, str], asyncio.Future[Response]] = {}
        self._unmatched: asyncio.Queue[bytes | None] = asyncio.Queue(_UNMATCHED_MAX)
        self._lost: TerminalConnectionError | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._writer is not None and self._lost is None

    async def connect(self) -> None:
        """Open the connection; `TerminalConnectionError` with a one-line reason if it cannot."""
        try:
            if self.tls is None:
                connecting = asyncio.open_connection(self.host, self.port)
            else:
                connecting = asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.server_name or self.host,
                    ssl_handshake_timeout=self.timeout_s,
                )
            self._reader, self._writer = await asyncio.wait_for(connecting, self.timeout_s)
        except TimeoutError:
            raise TerminalConnectionError(
                f"cannot reach posgate host at {self.address}: timed out after {self.timeout_s:g} s"
            ) from None
        except OSError as exc:
            raise TerminalConnectionError(
                f"cannot reach posgate host at {self.address}: {connection_reason(exc)}"
            ) from None
        self._lost = None
        self._unmatched = asyncio.Queue(_UNMATCHED_MAX)
        self._reader_task = asyncio.create_task(self._read_loop(self._reader), name=f"terminal-{self.tid}")

    async def close(self) -> None:
        """Close the connection; requests still waiting fail with `TerminalConnectionError`."""
        task, writer = self._reader_task, self._writer
        self._reader_task = self._writer = self._reader = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        self._fail_pending(TerminalConnectionError(f"connection to posgate host at {self.address} closed"))

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        frames = FrameBuffer(self._max_frame_bytes)
        reason = "closed by the host"
        if self.tls is not None:  # a host that requires a client certificate closes after the handshake
            reason += " before any answer (over TLS: does it require a client certificate? see --tls-cert)"
        try:
            while data := await reader.read(_READ_CHUNK):
                reason = "closed by the host"
                frames.receive_data(data)
                while (body := frames.next_frame()) is not None:
                    self._dispatch(body)
        except FramingError as exc:
            reason = f"bad frame from the host ({exc})"
        except OSError as exc:
            reason = connection_reason(exc)
        finally:
            self._lost = TerminalConnectionError(
                f"connection to posgate host at {self.address} lost: {reason}"
            )
            self._fail_pending(self._lost)
            self._offer_unmatched(None)

    def _fail_pending(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    def _offer_unmatched(self, body: bytes | None) -> None:
        if self._unmatched.full():
            self._unmatched.get_nowait()  # keep the newest frames
        self._unmatched.put_nowait(body)

    def _dispatch(self, body: bytes) -> None:
        """Hand a frame to the request it answers (same 11, response MTI and 41), else to `send_raw`."""
        received = time.perf_counter()
        try:
            frame = split_pos_frame(body)
            fields = decode_pos(frame.payload)
        except (FramingError, DecodeError) as exc:
            log.warning("terminal %s: undecodable frame from the host: %s", self.tid, exc)
            self._offer_unmatched(body)
            return
        stan, mti = fields.get("11", ""), fields.get("t", "")
        key = (stan, mti)
        if key not in self._pending:  # e.g. an error response with another MTI: match on the STAN alone
            same_stan = [k for k in self._pending if k[0] == stan]
            key = same_stan[0] if len(same_stan) == 1 else key
        future = self._pending.get(key)
        if future is None or fields.get("41") != self.tid:
            log.info("terminal %s: unmatched %s STAN %s from the host", self.tid, mti, stan)
            self._offer_unmatched(body)
            return
        del self._pending[key]
        if not future.done():
            future.set_result(Response(frame.header, frame.payload, fields, received))

    def _writer_or_raise(self) -> asyncio.StreamWriter:
        if self._lost is not None:
            raise self._lost
        if self._writer is None:
            raise TerminalConnectionError(f"not connected to posgate host at {self.address}")
        return self._writer

    async def request(self, frame: bytes, mti: str, stan: str, response_mti: str) -> tuple[Response, float]:
        """Send one framed request (`mti`, `stan`) and wait for its response (`response_mti`, same STAN
        and TID). Returns the response and when the request was written (`time.perf_counter()`).

        Raises `TerminalTimeout` after `timeout_s`, `TerminalConnectionError` if the connection is lost.
        """
        writer = self._writer_or_raise()
        key = (stan, response_mti)
        if key in self._pending:
            raise TerminalError(f"a {mti} with STAN {stan} is already waiting for its response")
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        started = time.perf_counter()
        try:
            writer.write(frame)
            await writer.drain()
            response = await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            raise TerminalTimeout(
                f"no response to {mti} STAN {stan} from {self.address} within {self.timeout_s:g} s"
            ) from None
        except OSError as exc:
            raise await self._lost_because(exc) from None
        finally:
            if self._pending.get(key) is future:
                del self._pending[key]
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: the reader may have failed it while the write failed
            else:
                future.cancel()
        return response, started

    async def _lost_because(self, exc: OSError) -> TerminalConnectionError:
        """The error for a write that failed: the reader's reason when it has one (a TLS alert says more
        than the reset that follows it), else the write's own."""
        task = self._reader_task
        if self._lost is None and task is not None and not task.done():
            await asyncio.wait([task], timeout=0.5)
        if self._lost is not None:
            return self._lost
        return TerminalConnectionError(
            f"connection to posgate host at {self.address} lost: {connection_reason(exc)}"
        )

    async def send_raw(self, frame: bytes) -> bytes | None:
        """Send `frame` as is (length prefix included) and return the next frame body (without its length
        prefix) that answers no pending request, or None on time-out or when the host closes the connection.
        For tests of the host's handling of bad frames."""
        writer = self._writer_or_raise()
        while not self._unmatched.empty():
            self._unmatched.get_nowait()
        writer.write(frame)
        try:
            await writer.drain()
            return await asyncio.wait_for(self._unmatched.get(), self.timeout_s)
        except (TimeoutError, OSError):
            return None
