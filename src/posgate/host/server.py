"""The POS-facing asyncio server: frames in, pipeline, frames out. A thin shell.

Per connection: a FrameBuffer cuts frames; each frame is handled in its own task so pipelined requests
proceed concurrently; every answer carries the request's 11 and 41. A frame that cannot be read at all, or
whose length is out of range, closes that connection only; an undecodable message whose MTI and 11/41 can be
salvaged gets an answer with 39 = 30.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from zoneinfo import ZoneInfo

from posgate.errors import FramingError, ProtocolError
from posgate.host.context import Message, TxnContext
from posgate.host.pipeline import classify, finishing_steps, pipelines
from posgate.host.runner import run_pipeline
from posgate.host.steps.base import HostServices
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
from posgate.store.acquirer import TerminalRecord

log = logging.getLogger("posgate.host")

MACED_RESPONSES = ("0110", "0210", "0230", "0410", "0510")


class PosServer:
    """Accepts terminal connections on the POS port."""

    def __init__(self, services: HostServices, timezone: str = "Asia/Shanghai") -> None:
        self.services = services
        self.pipelines = pipelines(services)
        self.finishing = finishing_steps(services)
        self.zone = ZoneInfo(timezone)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, port, backlog=1024)
        bound = self._server.sockets[0].getsockname()
        return bound[0], bound[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        buffer = FrameBuffer(self.services.settings.max_frame_bytes)
        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), self.services.settings.idle_timeout_s)
                if not data:
                    break
                buffer.receive_data(data)
                while (body := buffer.next_frame()) is not None:
                    handler = asyncio.create_task(self._handle_frame(body, writer))
                    pending.add(handler)
                    handler.add_done_callback(pending.discard)
        except FramingError as exc:
            log.warning("closing connection from %s: %s", peer, exc)
        except (TimeoutError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._connections.discard(task)

    async def _handle_frame(self, body: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            frame = split_pos_frame(body)
        except FramingError as exc:
            log.warning("unreadable frame: %s; closing the connection", exc)
            writer.close()
            return
        try:
            request = decode_pos(frame.payload)
        except ProtocolError as exc:
            self._answer_format_error(frame, exc, writer)
            return
        try:
            answer = await self.handle(frame, request)
        except Exception:  # a bug must not leave the terminal without an answer
            log.exception(
                "could not answer %s stan=%s tid=%s", request.get("t"), request.get("11"), request.get("41")
            )
            fields = {"t": response_mti(request["t"]), "11": request.get("11", ""), "39": "96"}
            if "41" in request:
                fields["41"] = request["41"]
            answer = build_pos_frame(
                response_tpdu(frame.tpdu), response_header(frame.header), encode_pos(fields)
            )
        if not writer.is_closing():
            writer.write(answer)

    async def handle(self, frame: PosFrame, request: Message) -> bytes:
        """One decoded request → the framed answer."""
        now = self.services.clock()
        ctx = TxnContext(
            frame=frame,
            request=request,
            received_at=now,
            local_now=now.astimezone(self.zone).replace(tzinfo=None),
            kind=classify(request),
        )
        await run_pipeline(self.pipelines[ctx.kind], self.finishing, ctx)
        fields = ctx.replay if ctx.replay is not None else ctx.notes.get("response_fields")
        if fields is None:  # ComposeResponse itself failed
            fields = {"t": response_mti(request["t"]), "11": ctx.stan, "41": ctx.tid, "39": "96"}
        log.info(
            "%s %s tid=%s stan=%s rc=%s%s trace=[%s]",
            request["t"],
            ctx.kind.value,
            ctx.tid,
            ctx.stan,
            fields.get("39"),
            " (duplicate)" if ctx.replay is not None else "",
            ctx.trace_text(),
        )
        payload = self._encode(fields, ctx)
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

    def _answer_format_error(self, frame: PosFrame, exc: ProtocolError, writer: asyncio.StreamWriter) -> None:
        salvaged = salvage_pos(frame.payload)
        mti = salvaged.get("t", "")
        is_request = len(mti) == 4 and mti.isdigit() and int(mti[2]) % 2 == 0
        if not (is_request and "11" in salvaged and "41" in salvaged):
            log.warning("undecodable request (%s) without MTI/11/41; closing the connection", exc)
            writer.close()
            return
        log.warning("format error in %s stan=%s tid=%s: %s", mti, salvaged["11"], salvaged["41"], exc)
        fields = {"t": response_mti(mti), "11": salvaged["11"], "39": "30", "41": salvaged["41"]}
        writer.write(
            build_pos_frame(response_tpdu(frame.tpdu), response_header(frame.header), encode_pos(fields))
        )


def _mac_algorithm(terminal: TerminalRecord | None) -> MacAlgorithm:
    return MacAlgorithm.parse(terminal.mac_algorithm) if terminal is not None else MacAlgorithm.CUP_ECB


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
