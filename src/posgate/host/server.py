"""The POS-facing asyncio server: frames in, pipeline, frames out. A thin shell.

Per connection: a FrameBuffer cuts frames; each frame is handled in its own task so pipelined requests
proceed concurrently; every answer carries the request's 11 and 41. A frame that cannot be read at all, or
whose length is out of range, closes that connection only; an undecodable message whose MTI and 11/41 can be
salvaged gets an answer with 39 = 30; a message with a response MTI (0210 …) cannot be answered and closes
the connection.

Limits (all settings, see docs/configuration.md), so that no peer can starve the others:
- connections: at most `pos_max_connections` in all and `pos_max_connections_per_source` from one address
  (IPv6: one /64); one more is closed at once, before any TLS handshake;
- pipelining: at most `pos_max_in_flight` requests of one connection, and `pos_max_in_flight_per_source` of
  all the connections from one source, are handled at once. While they are, the connection is not read
  (back-pressure: beyond the stream's small buffer the rest waits in the peer's socket, TCP slows it down);
  an answer holds its slots until the peer has taken it, so a peer that does not read stops being read;
- time: a frame must arrive whole within `pos_frame_deadline_s` of its first byte (a trickle cannot reset
  that), an answer must be taken by the peer within the same time, a TLS handshake must end within it,
  and a connection silent for `idle_timeout_s` is closed;
- size: a length prefix over `max_frame_bytes` closes the connection.
Warnings about one peer's connections are rate-limited per source (`WarningBudget`).

With `pos_tls_cert` the port speaks TLS (see `security.pos_tls`), with client certificates as
`pos_tls_client_auth` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl
import time
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from posgate.errors import EncodeError, FramingError, ProtocolError
from posgate.host.admission import Admission, WarningBudget, source_of
from posgate.host.context import Message, TxnContext
from posgate.host.pipeline import classify, finishing_steps, pipelines
from posgate.host.runner import run_pipeline
from posgate.host.services import HostServices
from posgate.iso8583.codec import decode_pos, encode_pos, encode_pos_with_mac, response_mti, salvage_pos
from posgate.iso8583.framing import (
    FrameBuffer,
    PosFrame,
    build_pos_frame,
    response_header,
    response_tpdu,
    split_pos_frame,
)
from posgate.security.pos_mac import MacAlgorithm, pos_mac
from posgate.security.pos_tls import peer_subject
from posgate.store.acquirer import TerminalRecord

log = logging.getLogger("posgate.host")

MACED_RESPONSES = ("0110", "0210", "0230", "0410", "0510")
#: Bytes asked of the socket per read, and the stream's buffer limit: a few frames, not megabytes.
_READ_CHUNK = 16384


def is_request_mti(mti: str) -> bool:
    """A request MTI has an even third digit (0200, 0800 …); a response (0210) has an odd one.

    >>> is_request_mti("0200"), is_request_mti("0210"), is_request_mti("02"), is_request_mti("0A00")
    (True, False, False, False)
    """
    return len(mti) == 4 and mti.isascii() and mti.isdigit() and int(mti[2]) % 2 == 0


@dataclass(eq=False)
class _Connection:
    """One terminal connection: its stream writer, where it comes from, its requests being handled."""

    writer: asyncio.StreamWriter
    peer: str
    handlers: set[asyncio.Task[None]] = field(default_factory=set)
    #: why the read in progress would time out (for the log line)
    timeout_reason: str = "timed out"

    def close(self) -> None:
        self.writer.close()

    @property
    def closing(self) -> bool:
        return self.writer.is_closing()


class PosServer:
    """Accepts terminal connections on the POS port."""

    def __init__(
        self, services: HostServices, timezone: str = "Asia/Shanghai", tls: ssl.SSLContext | None = None
    ) -> None:
        self.services = services
        ports = services.ports()
        self.pipelines = pipelines(ports)
        self.finishing = finishing_steps(ports)
        self.zone = ZoneInfo(timezone)
        self.tls = tls
        settings = services.settings
        self.admission = Admission(settings.pos_max_connections, settings.pos_max_connections_per_source)
        self._warnings = WarningBudget()
        #: requests in flight per source (all its connections together), created with its first connection
        self._source_slots: dict[str, asyncio.Semaphore] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        if services.metrics is not None:
            services.metrics.connections.set_function(lambda: len(self._connections))

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, port, backlog=1024, limit=_READ_CHUNK)
        bound = self._server.sockets[0].getsockname()
        settings = self.services.settings
        if self.tls is None:
            security = "plain TCP"
        else:
            security = f"TLS, client certificates {settings.pos_tls_client_auth}"
        log.info(
            "POS port %s:%d: %s; at most %d connections (%d per source), %d requests in flight per connection"
            " (%d per source)",
            bound[0],
            bound[1],
            security,
            settings.pos_max_connections,
            settings.pos_max_connections_per_source,
            settings.pos_max_in_flight,
            settings.pos_max_in_flight_per_source,
        )
        return bound[0], bound[1]

    async def stop(self) -> None:
        """Stop listening and reading; requests being handled are answered (within twice the issuer
        time-out) before the connections close."""
        if self._server is not None:
            self._server.close()
            connections = list(self._connections)
            for task in connections:
                task.cancel()
            if connections:
                await asyncio.wait(connections, timeout=self.services.settings.issuer_timeout_s * 3)
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    # ------------------------------------------------------------------------------------------ connections

    def _warn(self, peer: str, text: str, *args: object) -> None:
        """A warning about one peer's connection, within that peer's budget."""
        held_back = self._warnings.allow(peer, asyncio.get_running_loop().time())
        if held_back is None:
            return
        if held_back:
            text += " (%d similar warnings about this source held back)"
            args = (*args, held_back)
        log.warning(text, *args)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if peername else "unknown"
        refusal = self.admission.admit(peer)
        if refusal is not None:
            self._warn(peer, "refused a connection from %s: %s", peer, refusal)
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        connection = _Connection(writer, peer)
        settings = self.services.settings
        try:
            # no await before the handshake starts: the peer's first bytes must reach the TLS layer
            if self.tls is not None and not await self._handshake(connection):
                return
            await self._read_frames(reader, connection)
        except FramingError as exc:
            self._warn(peer, "closing connection from %s: %s", peer, exc)
        except TimeoutError:
            self._warn(peer, "closing connection from %s: %s", peer, connection.timeout_reason)
        except (OSError, asyncio.CancelledError):  # reset, TLS failure, `stop()`: nothing to report
            pass
        except Exception:  # a bug: logged once, this connection only; never an unretrieved task exception
            log.exception("closing connection from %s after an unexpected error", peer)
        finally:
            try:  # requests being handled still get their answers
                if connection.handlers:
                    await asyncio.wait(list(connection.handlers), timeout=settings.issuer_timeout_s * 2)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            except asyncio.CancelledError:  # `stop()` while closing: end quietly, never as a cancelled task
                writer.transport.abort()
            finally:
                self._connections.discard(task)
                self.admission.release(peer)
                if source_of(peer) not in self.admission.per_source:
                    self._source_slots.pop(source_of(peer), None)

    async def _handshake(self, connection: _Connection) -> bool:
        assert self.tls is not None
        try:
            await connection.writer.start_tls(
                self.tls, ssl_handshake_timeout=self.services.settings.pos_frame_deadline_s
            )
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
            self._warn(connection.peer, "TLS handshake with %s failed: %s", connection.peer, exc)
            return False
        subject = peer_subject(connection.writer.get_extra_info("ssl_object"))
        if subject is not None:
            log.info("TLS connection from %s, terminal certificate %s", connection.peer, subject)
        return True

    async def _read_frames(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        """Read, cut and dispatch frames until the peer closes or a limit closes the connection.

        A frame is handled once it has a slot of its connection (`pos_max_in_flight`) and one of its source
        (`pos_max_in_flight_per_source`, shared by all the connections from that address): until then
        nothing more is read. The idle and frame clocks count only time the host was reading: while it
        waited for a slot the peer could not be heard, so the clocks start again when reading resumes."""
        settings = self.services.settings
        loop = asyncio.get_running_loop()
        frames = FrameBuffer(settings.max_frame_bytes)
        own = asyncio.Semaphore(settings.pos_max_in_flight)
        key = source_of(connection.peer)
        shared = self._source_slots.setdefault(key, asyncio.Semaphore(settings.pos_max_in_flight_per_source))
        last_byte = resumed = loop.time()

        def release_slots(_: asyncio.Task[None]) -> None:
            own.release()
            shared.release()

        while True:
            while (body := frames.next_frame()) is not None:
                waited = own.locked() or shared.locked()
                await own.acquire()
                try:
                    await shared.acquire()
                except BaseException:
                    own.release()
                    raise
                if waited:
                    resumed = loop.time()
                if connection.closing:
                    own.release()
                    shared.release()
                    return
                handler = asyncio.create_task(self._handle_frame(body, connection))
                connection.handlers.add(handler)
                handler.add_done_callback(connection.handlers.discard)
                handler.add_done_callback(release_slots)
            if connection.closing:
                return
            deadline = max(last_byte, resumed) + settings.idle_timeout_s
            reason = f"nothing received for {settings.idle_timeout_s:g} s (idle_timeout_s)"
            started = frames.incomplete_since
            if started is not None:
                frame_deadline = max(started, resumed) + settings.pos_frame_deadline_s
                if frame_deadline < deadline:
                    deadline = frame_deadline
                    reason = (
                        f"a frame begun {settings.pos_frame_deadline_s:g} s ago is still incomplete "
                        f"({frames.pending_bytes} B received; pos_frame_deadline_s)"
                    )
            connection.timeout_reason = reason
            async with asyncio.timeout_at(deadline):
                data = await reader.read(_READ_CHUNK)
            if not data:
                return
            last_byte = loop.time()
            frames.receive_data(data, last_byte)

    async def _handle_frame(self, body: bytes, connection: _Connection) -> None:
        """One frame body → its answer written, or the connection closed. Never raises: a bug is logged
        once and closes this connection only."""
        try:
            answer = await self._answer(body, connection)
            if answer is not None:
                await self._send(answer, connection)
        except Exception:
            log.exception("closing connection from %s: could not handle a frame", connection.peer)
            connection.close()

    async def _answer(self, body: bytes, connection: _Connection) -> bytes | None:
        try:
            frame = split_pos_frame(body)
        except FramingError as exc:
            self._warn(
                connection.peer, "unreadable frame from %s: %s; closing the connection", connection.peer, exc
            )
            connection.close()
            return None
        try:
            request = decode_pos(frame.payload)
        except ProtocolError as exc:
            return self._answer_format_error(frame, exc, connection)
        if not is_request_mti(request["t"]):
            self._warn(
                connection.peer,
                "%s is not a request (stan=%s tid=%s) from %s: no answer is possible; closing the connection",
                request["t"],
                request.get("11"),
                request.get("41"),
                connection.peer,
            )
            connection.close()
            return None
        try:
            return await self.handle(frame, request)
        except Exception:  # a bug must not leave the terminal without an answer
            log.exception(
                "could not answer %s stan=%s tid=%s", request.get("t"), request.get("11"), request.get("41")
            )
            fields = {"t": response_mti(request["t"]), "11": request.get("11", ""), "39": "96"}
            if self.services.metrics is not None:
                self.services.metrics.count("failed", "96")
            if "41" in request:
                fields["41"] = request["41"]
            return build_pos_frame(
                response_tpdu(frame.tpdu), response_header(frame.header), encode_pos(fields)
            )

    async def _send(self, answer: bytes, connection: _Connection) -> None:
        """Write an answer; it keeps its request's slot until the peer has taken it (or the deadline)."""
        if connection.closing:
            return
        connection.writer.write(answer)
        deadline_s = self.services.settings.pos_frame_deadline_s
        try:
            async with asyncio.timeout(deadline_s):
                await connection.writer.drain()
        except TimeoutError:
            self._warn(
                connection.peer,
                "closing connection from %s: it took no answer for %g s (pos_frame_deadline_s)",
                connection.peer,
                deadline_s,
            )
            connection.writer.transport.abort()
        except ConnectionError:
            connection.close()

    async def handle(self, frame: PosFrame, request: Message) -> bytes:
        """One decoded request → the framed answer."""
        started = time.perf_counter()
        now = self.services.clock()
        ctx = TxnContext(
            frame=frame,
            request=request,
            received_at=now,
            local_now=now.astimezone(self.zone).replace(tzinfo=None),
            kind=classify(request),
        )
        await run_pipeline(self.pipelines[ctx.kind], self.finishing, ctx)
        fields = ctx.replay if ctx.replay is not None else ctx.response
        if fields is None:  # ComposeResponse itself failed
            fields = {"t": response_mti(request["t"]), "11": ctx.stan, "41": ctx.tid, "39": "96"}
        log.info(
            "%s %s tid=%s stan=%s rc=%s%s%s trace=[%s]",
            request["t"],
            ctx.kind.value,
            ctx.tid,
            ctx.stan,
            fields.get("39"),
            " (duplicate)" if ctx.replay is not None else "",
            f" ({ctx.detail!r})" if ctx.detail else "",
            ctx.trace_text(),
        )
        payload = self._encode(fields, ctx)
        if self.services.metrics is not None:
            steps = ((t.step, t.micros) for t in ctx.trace)
            self.services.metrics.answered(
                ctx.kind.value, fields.get("39", ""), time.perf_counter() - started, steps
            )
        return build_pos_frame(
            response_tpdu(frame.tpdu),
            response_header(frame.header, ctx.result.processing_requirement),
            payload,
        )

    @staticmethod
    def _encode(fields: Message, ctx: TxnContext) -> bytes:
        """MACed with the terminal's algorithm under the keys its request verified under."""
        keys, terminal = ctx.keys, ctx.terminal
        if fields.get("39") == "00" and fields["t"] in MACED_RESPONSES and keys is not None:
            algorithm = _mac_algorithm(terminal)
            return encode_pos_with_mac(fields, lambda data: pos_mac(algorithm, keys.mak, data))
        return encode_pos(fields)

    def _answer_format_error(
        self, frame: PosFrame, exc: ProtocolError, connection: _Connection
    ) -> bytes | None:
        """The `30` answer to an undecodable request whose MTI, 11 and 41 can be read; else close."""
        salvaged = salvage_pos(frame.payload)
        mti = salvaged.get("t", "")
        if not (is_request_mti(mti) and "11" in salvaged and "41" in salvaged):
            self._warn(
                connection.peer,
                "undecodable request (%s) without MTI/11/41 from %s; closing the connection",
                exc,
                connection.peer,
            )
            connection.close()
            return None
        self._warn(
            connection.peer, "format error in %s stan=%s tid=%s: %s", mti, salvaged["11"], salvaged["41"], exc
        )
        fields = {"t": response_mti(mti), "11": salvaged["11"], "39": "30", "41": salvaged["41"]}
        try:
            payload = encode_pos(fields)
        except EncodeError as error:  # e.g. a request MTI whose response the dialect does not define
            self._warn(connection.peer, "cannot answer %s with 30 (%s); closing the connection", mti, error)
            connection.close()
            return None
        if self.services.metrics is not None:
            self.services.metrics.count("malformed", "30")
        return build_pos_frame(response_tpdu(frame.tpdu), response_header(frame.header), payload)


def _mac_algorithm(terminal: TerminalRecord | None) -> MacAlgorithm:
    return MacAlgorithm.parse(terminal.mac_algorithm) if terminal is not None else MacAlgorithm.CUP_ECB


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
