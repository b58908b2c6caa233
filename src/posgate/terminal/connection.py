"""The terminal simulator's connection to the acquirer host (asyncio shell): one TCP connection (TLS when
given a context), requests pipelined on it.

A thin shell over the sans-IO `iso8583.session.Session` (POS wire): the session matches each response to
the request waiting for it — by field 11 (STAN), the response MTI and field 41 (TID) — so several tasks may
have requests in flight at once and the host may answer out of order; it times requests out (this shell
keeps one `loop.call_at` timer armed at the session's next deadline) and fails those still waiting when the
connection goes. Frames that match nothing (late answers, answers to `send_raw`) go to a small queue that
`send_raw` reads. It knows nothing of MACs, keys or the transactions: `client` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import ssl

from posgate.iso8583.codec import Message
from posgate.iso8583.framing import MAX_FRAME_BYTES
from posgate.iso8583.session import (
    POS_WIRE,
    BadFrame,
    Inbound,
    RequestFailed,
    RequestTimedOut,
    ResponseReceived,
    Session,
    SessionClosed,
    SessionError,
    Undecodable,
    Unmatched,
)
from posgate.terminal.errors import TerminalConnectionError, TerminalError, TerminalTimeout

__all__ = ["HostConnection", "connection_reason"]

log = logging.getLogger(__name__)

_READ_CHUNK = 65536
_UNMATCHED_MAX = 64
#: The session of one connection; its tokens are the futures the requests wait on.
_Session = Session[asyncio.Future[Inbound]]


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
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._session: _Session | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
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
            reader, self._writer = await asyncio.wait_for(connecting, self.timeout_s)
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
        self._cancel_timer()
        self._session = Session(POS_WIRE, max_frame_bytes=self._max_frame_bytes)
        self._reader_task = asyncio.create_task(
            self._read_loop(reader, self._session), name=f"terminal-{self.tid}"
        )

    async def close(self) -> None:
        """Close the connection; requests still waiting fail with `TerminalConnectionError`."""
        task, writer, session = self._reader_task, self._writer, self._session
        self._reader_task = self._writer = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if session is not None and not session.closed:
            self._lost = TerminalConnectionError(f"connection to posgate host at {self.address} closed")
            session.connection_lost("closed")
            self._handle_events(session)

    # ------------------------------------------------------------------------------------------ reading

    async def _read_loop(self, reader: asyncio.StreamReader, session: _Session) -> None:
        loop = asyncio.get_running_loop()
        reason = "closed by the host"
        if self.tls is not None:  # a host that requires a client certificate closes after the handshake
            reason += " before any answer (over TLS: does it require a client certificate? see --tls-cert)"
        try:
            while data := await reader.read(_READ_CHUNK):
                reason = "closed by the host"
                session.receive_data(data, loop.time())
                bad = self._handle_events(session)
                if bad is not None:
                    reason = f"bad frame from the host ({bad.error})"
                    break
        except OSError as exc:
            reason = connection_reason(exc)
        finally:
            if not session.closed:
                self._lost = TerminalConnectionError(
                    f"connection to posgate host at {self.address} lost: {reason}"
                )
                session.connection_lost(reason)
                self._handle_events(session)
            self._offer_unmatched(None)

    def _handle_events(self, session: _Session) -> BadFrame | None:
        """Act on the session's events: answers to their requests, late and stray frames to `send_raw`'s
        queue, time-outs and failures as exceptions; re-arm the timer. Returns a `BadFrame` if one came."""
        bad = None
        while (event := session.next_event()) is not None:
            if isinstance(event, ResponseReceived):
                if not event.request.token.done():
                    event.request.token.set_result(event.response)
            elif isinstance(event, Unmatched):
                fields = event.message.fields
                log.info(
                    "terminal %s: unmatched %s STAN %s from the host", self.tid, fields["t"], fields.get("11")
                )
                self._offer_unmatched(event.message.body)
            elif isinstance(event, Undecodable):
                log.warning("terminal %s: undecodable frame from the host: %s", self.tid, event.error)
                self._offer_unmatched(event.body)
            elif isinstance(event, RequestTimedOut):
                request = event.request
                if not request.token.done():
                    request.token.set_exception(
                        TerminalTimeout(
                            f"no response to {request.mti} STAN {request.stan} from {self.address}"
                            f" within {request.timeout_s:g} s"
                        )
                    )
            elif isinstance(event, RequestFailed):
                if not event.request.token.done():
                    event.request.token.set_exception(self._lost_error(event.why))
            elif isinstance(event, BadFrame):
                bad = event
        self._arm(session)
        return bad

    def _lost_error(self, why: str) -> TerminalConnectionError:
        if self._lost is not None:
            return self._lost
        return TerminalConnectionError(f"connection to posgate host at {self.address} lost: {why}")

    def _offer_unmatched(self, body: bytes | None) -> None:
        if self._unmatched.full():
            self._unmatched.get_nowait()  # keep the newest frames
        self._unmatched.put_nowait(body)

    # ------------------------------------------------------------------------------------------ time

    def _arm(self, session: _Session) -> None:
        """Keep one timer at or before the session's next deadline. It is moved only when a deadline comes
        earlier than the one armed: requests share a time-out, so their deadlines come in order and one
        timer serves them all; a timer that finds nothing due arms the next deadline."""
        if session is not self._session:
            return
        deadline = session.next_deadline()
        if session.closed:
            self._cancel_timer()
        elif deadline is not None and (self._timer_at is None or deadline < self._timer_at):
            self._cancel_timer()
            self._timer_at = deadline
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer, session, deadline)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None

    def _on_timer(self, session: _Session, deadline: float) -> None:
        self._timer = self._timer_at = None
        session.handle_timer(max(asyncio.get_running_loop().time(), deadline))
        self._handle_events(session)

    # ------------------------------------------------------------------------------------------ sending

    def _writer_or_raise(self) -> tuple[asyncio.StreamWriter, _Session]:
        if self._lost is not None:
            raise self._lost
        if self._writer is None or self._session is None:
            raise TerminalConnectionError(f"not connected to posgate host at {self.address}")
        return self._writer, self._session

    async def request(self, msg: Message, payload: bytes, envelope: bytes) -> tuple[Inbound, float]:
        """Send one request (`msg` encoded as `payload`, after the TPDU and header `envelope`) and wait for
        its response (the response MTI, same STAN and TID). Returns the response and the seconds it took.

        Raises `TerminalTimeout` after `timeout_s`, `TerminalConnectionError` if the connection is lost.
        """
        writer, session = self._writer_or_raise()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Inbound] = loop.create_future()
        try:
            request, frame = session.send_request(msg, payload, loop.time(), self.timeout_s, future, envelope)
        except SessionClosed as exc:
            raise self._lost_error(exc.why) from None
        except SessionError as exc:
            raise TerminalError(str(exc)) from None
        self._arm(session)
        try:
            writer.write(frame)
            await writer.drain()
            response = await future
        except OSError as exc:
            raise await self._lost_because(exc) from None
        finally:
            session.abandon(request)
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: the reader may have failed it while the write failed
            else:
                future.cancel()
        return response, response.received_at - request.sent_at

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
        writer, _ = self._writer_or_raise()
        while not self._unmatched.empty():
            self._unmatched.get_nowait()
        writer.write(frame)
        try:
            await writer.drain()
            return await asyncio.wait_for(self._unmatched.get(), self.timeout_s)
        except (TimeoutError, OSError):
            return None
