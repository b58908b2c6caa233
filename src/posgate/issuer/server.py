"""The issuer simulator's asyncio shell: one TCP server per simulated bank, speaking the network dialect.

Per connection a sans-IO `iso8583.session.Session` (network wire, serving) cuts the frames, decodes each
message once and holds every frame to its deadline; this shell reads, feeds it bytes and `loop.time()`,
and answers each request on its own task, so pipelined requests are served concurrently (answers may come
out of order; each carries its request's field 11). 0800 sign-on / sign-off / echo are answered here;
financial requests (0100, 0200, 0220) and reversals (0420) go to `authorizer` as one unit of work each
through `Store.run`.

When the bank has `mac_enabled`, a financial request or reversal must carry a good MAC (an 0800's is
checked when present) — else `A0`, nothing applied — and every response is MACed. The MAC is the last field
(64, or 128 in a message with a secondary bitmap, such as a 0420 with field 90) and covers every byte
before it: a MAC anywhere else (a field 64 followed by field 90) is no MAC.
With a TLS context (`issuer_sim_tls_*`), every bank listens with TLS, asking for the acquirer's certificate
when the context says so.

An undecodable message is answered `30` when its MTI and field 11 can be read, else its connection is
closed; a bad frame length closes the connection, and so does a frame still incomplete `frame_deadline_s`
after its first byte (a trickle cannot hold a connection); a bank takes at most `max_connections`
connections. Nothing crashes the server, and no log line carries fields 2, 35, 52 or 55.

Fault injection, for testing the acquirer's time-outs and outages (`set_fault`):
- `none`: normal service;
- `drop_requests`: financial requests and reversals are read and ignored: not applied, not answered;
- `drop_replies`: they are applied but not answered (the acquirer must time out and reverse);
- `close`: the link is down: stop listening and close every connection (`set_online(bank, False)`);
  any other fault, or `set_online(bank, True)`, listens again on the same port.
0800 network management is answered under every fault but `close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl as ssl_module
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy.orm import Session

from posgate.cards.pan import mask_pan
from posgate.errors import ConfigError, DecodeError, EncodeError, ProtocolError
from posgate.iso8583.codec import (
    Message,
    encode_network,
    encode_network_with_mac,
    salvage_network,
    split_network_mac,
)
from posgate.iso8583.framing import MAX_FRAME_BYTES
from posgate.iso8583.network_dialect import NETWORK_MAC_FIELDS, NETWORK_MTIS
from posgate.iso8583.reasons import Reason, network_code
from posgate.iso8583.session import (
    NETWORK_WIRE,
    BadFrame,
    FrameDeadlineExpired,
    Inbound,
    RequestReceived,
    Undecodable,
    Unmatched,
)
from posgate.iso8583.session import Session as WireSession
from posgate.issuer import authorizer, books
from posgate.issuer.authorizer import BankKeys
from posgate.issuer.messages import (
    NETWORK_MANAGEMENT_CODES,
    build_response,
    read_financial,
    read_reversal,
)
from posgate.security.at_rest import CardVault
from posgate.security.network_mac import network_mac, verify_network_mac
from posgate.store.keys import get_keys
from posgate.store.runtime import Store

log = logging.getLogger("posgate.issuer")

FAULTS = ("none", "drop_requests", "drop_replies", "close")
NETWORK_MANAGEMENT_MTI = "0800"
REVERSAL_MTI = "0420"
FINANCIAL_MTIS = frozenset({"0100", "0200", "0220", REVERSAL_MTI})
_READ_CHUNK = 65536


@dataclass(eq=False)
class _Connection:
    writer: asyncio.StreamWriter
    session: WireSession[None]
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


@dataclass(eq=False)
class _Bank:
    """One simulated bank as served: its settings, keys, listener and open connections."""

    name: str
    port: int
    kind: str
    mac_enabled: bool
    keys: BankKeys = field(repr=False)
    fault: str = "none"
    server: asyncio.Server | None = None
    connections: set[_Connection] = field(default_factory=set)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)
    requests: set[asyncio.Task[None]] = field(default_factory=set)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class IssuerSimulator:
    """Serves every simulated bank of the store (`SimBank` rows) on its own TCP port."""

    def __init__(
        self,
        store: Store,
        vault: CardVault,
        host: str = "127.0.0.1",
        clock: Callable[[], dt.datetime] | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        ssl: ssl_module.SSLContext | None = None,
        frame_deadline_s: float = 10.0,
        max_connections: int = 64,
    ) -> None:
        """`frame_deadline_s`: a frame must arrive whole within this time of its first byte, else its
        connection is closed; `max_connections`: per bank, one more is closed at once."""
        self.store = store
        self.ssl = ssl
        self.vault = vault
        self.host = host
        self.clock = clock or _utc_now
        self.max_frame_bytes = max_frame_bytes
        self.frame_deadline_s = frame_deadline_s
        self.max_connections = max_connections
        #: bank name -> the port it listens on (the bound one when started on port 0)
        self.ports: dict[str, int] = {}
        self._banks: dict[str, _Bank] = {}
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self, banks: list[str] | None = None, ports: dict[str, int] | None = None) -> None:
        """Listen for every bank of the store (or only `banks`), each on its configured port unless `ports`
        overrides it (0: any free port; see `self.ports`). Unknown names raise `ConfigError`."""
        loaded = await self.store.run(self._load_banks)
        known = {bank.name: bank for bank in loaded}
        for name in [*(banks or []), *(ports or {})]:
            if name not in known:
                raise ConfigError(f"issuer simulator: no simulated bank named {name!r} in the store")
        for bank in loaded:
            if banks is not None and bank.name not in banks:
                continue
            if ports and bank.name in ports:
                bank.port = ports[bank.name]
            self._banks[bank.name] = bank
            await self._listen(bank)

    async def bank_names(self) -> list[str]:
        """The names of the simulated banks in the store (whether served or not), in creation order."""
        return await self.store.run(lambda session: [bank.name for bank in books.list_banks(session)])

    async def stop(self) -> None:
        """Stop listening, close every connection and wait for their handlers."""
        for task in list(self._background):
            task.cancel()
        for bank in self._banks.values():
            self._go_offline(bank)
        handlers = [task for bank in self._banks.values() for task in bank.handlers]
        handlers += [task for bank in self._banks.values() for task in bank.requests]
        handlers += list(self._background)
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=5)
            for task in pending:
                task.cancel()
        for bank in self._banks.values():
            if bank.server is not None:
                await bank.server.wait_closed()
                bank.server = None

    def _load_banks(self, session: Session) -> list[_Bank]:
        return [
            _Bank(
                name=row.name,
                port=row.port,
                kind=row.kind,
                mac_enabled=row.mac_enabled,
                keys=BankKeys.from_purposes(
                    get_keys(session, self.vault, "sim_bank", row.name, actor="issuer", use="simulated bank")
                ),
            )
            for row in books.list_banks(session)
        ]

    async def _listen(self, bank: _Bank) -> None:
        port = self.ports.get(bank.name, bank.port)
        bank.server = await asyncio.start_server(partial(self._serve, bank), self.host, port, ssl=self.ssl)
        self.ports[bank.name] = bank.server.sockets[0].getsockname()[1]
        tls = " (TLS)" if self.ssl is not None else ""
        log.info("issuer %s listening on %s:%d%s", bank.name, self.host, self.ports[bank.name], tls)

    def _go_offline(self, bank: _Bank) -> None:
        if bank.server is not None:
            bank.server.close()
        for connection in list(bank.connections):
            connection.writer.close()

    # ------------------------------------------------------------------------------------------ faults

    def _bank(self, name: str) -> _Bank:
        try:
            return self._banks[name]
        except KeyError:
            raise ConfigError(f"issuer simulator: bank {name!r} is not being served") from None

    def fault(self, bank: str) -> str:
        """The fault in force for `bank`."""
        return self._bank(bank).fault

    def set_fault(self, bank: str, fault: str) -> None:
        """Inject a fault (`FAULTS`); leaving `close` listens again (in the background, on the same port)."""
        if fault not in FAULTS:
            expected = ", ".join(FAULTS)
            raise ConfigError(f"issuer simulator: unknown fault {fault!r}, expected one of {expected}")
        target = self._bank(bank)
        was = target.fault
        target.fault = fault
        log.warning("issuer %s: fault %s", bank, fault)
        if fault == "close":
            self._go_offline(target)
        elif was == "close":
            task = asyncio.get_running_loop().create_task(self._reopen_in_background(target))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def set_online(self, bank: str, online: bool) -> None:
        """Bring the link down (as fault `close`) or up again, listening on the same port as before."""
        target = self._bank(bank)
        if not online:
            self.set_fault(bank, "close")
            if target.server is not None:
                await target.server.wait_closed()
            return
        if target.fault == "close":
            target.fault = "none"
        await self._reopen(target)

    async def _reopen(self, bank: _Bank) -> None:
        if bank.server is not None and bank.server.is_serving():
            return
        if bank.server is not None:
            await bank.server.wait_closed()
        await self._listen(bank)

    async def _reopen_in_background(self, bank: _Bank) -> None:
        try:
            await self._reopen(bank)
        except OSError as exc:
            log.error(
                "issuer %s: cannot listen again on port %s: %s", bank.name, self.ports.get(bank.name), exc
            )

    # ------------------------------------------------------------------------------------------ connections

    async def _serve(self, bank: _Bank, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(bank.connections) >= self.max_connections:
            log.warning("issuer %s: refused a connection: %d open already", bank.name, len(bank.connections))
            writer.close()
            return
        session: WireSession[None] = WireSession(
            NETWORK_WIRE,
            serve=True,
            max_frame_bytes=self.max_frame_bytes,
            frame_deadline_s=self.frame_deadline_s,
        )
        connection = _Connection(writer, session)
        me = asyncio.current_task()
        if me is not None:
            bank.handlers.add(me)
        bank.connections.add(connection)
        peer = writer.get_extra_info("peername")
        loop = asyncio.get_running_loop()
        try:
            while True:
                deadline = session.next_deadline()
                try:
                    async with asyncio.timeout_at(deadline):
                        data = await reader.read(_READ_CHUNK)
                except TimeoutError:
                    assert deadline is not None
                    session.handle_timer(max(loop.time(), deadline))
                else:
                    if not data:
                        break
                    session.receive_data(data, loop.time())
                if not self._handle_events(bank, connection, peer):
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            if connection.tasks and not writer.is_closing():
                await asyncio.wait(list(connection.tasks), timeout=30)
            bank.connections.discard(connection)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if me is not None:
                bank.handlers.discard(me)

    def _handle_events(self, bank: _Bank, connection: _Connection, peer: object) -> bool:
        """Act on the session's events: each request (or undecodable message) answered on its own task.
        False when the connection must close (a bad frame length, a frame past its deadline)."""
        while (event := connection.session.next_event()) is not None:
            if isinstance(event, RequestReceived):
                self._start(bank, connection, self._handle_request(bank, connection, event.request))
            elif isinstance(event, Undecodable):
                self._start(
                    bank, connection, self._answer_undecodable(bank, connection, event.body, event.error)
                )
            elif isinstance(event, Unmatched):
                fields = event.message.fields
                log.warning(
                    "issuer %s: ignoring a %s (not a request) stan=%s",
                    bank.name,
                    fields["t"],
                    fields.get("11"),
                )
            elif isinstance(event, BadFrame):
                log.warning("issuer %s: bad frame from %s, closing: %s", bank.name, peer, event.error)
                return False
            elif isinstance(event, FrameDeadlineExpired):
                log.warning(
                    "issuer %s: a frame from %s was incomplete after %g s, closing",
                    bank.name,
                    peer,
                    event.deadline_s,
                )
                return False
        return True

    def _start(self, bank: _Bank, connection: _Connection, work: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(work)
        connection.tasks.add(task)
        bank.requests.add(task)
        task.add_done_callback(connection.tasks.discard)
        task.add_done_callback(bank.requests.discard)

    async def _handle_request(self, bank: _Bank, connection: _Connection, request: Inbound) -> None:
        msg = request.fields
        try:
            response = await self._respond(bank, msg, request.body)
        except Exception:
            log.exception("issuer %s: failed on %s stan=%s", bank.name, msg.get("t"), msg.get("11"))
            response = self._error_response(msg, network_code(Reason.SYSTEM_ERROR))
        if response is None:
            connection.session.finish_request(request)
        else:
            await self._send(bank, connection, response, request)

    async def _answer_undecodable(
        self, bank: _Bank, connection: _Connection, frame: bytes, exc: ProtocolError
    ) -> None:
        salvaged = salvage_network(frame)
        log.warning(
            "issuer %s: undecodable %s stan=%s: %s", bank.name, salvaged.get("t"), salvaged.get("11"), exc
        )
        response = self._error_response(salvaged, network_code(Reason.FORMAT_ERROR))
        if response is None:
            connection.writer.close()
            return
        await self._send(bank, connection, response)

    @staticmethod
    def _error_response(msg: Message, code: str) -> Message | None:
        """A bare response with field 39 = `code`, or None when MTI or field 11 is unreadable."""
        mti = msg.get("t", "")
        if "11" not in msg or mti not in NETWORK_MTIS:
            return None
        safe = {key: value for key, value in msg.items() if key in ("t", "3", "4", "7", "11", "32", "37")}
        return build_response(safe, code)

    async def _send(
        self, bank: _Bank, connection: _Connection, response: Message, request: Inbound | None = None
    ) -> None:
        """Write `response` (MACed when the bank MACs), the answer to `request` (None: to an undecodable
        message, which took no slot of the session)."""
        session = connection.session
        try:
            if bank.mac_enabled and bank.keys.zak is not None:
                zak = bank.keys.zak
                payload = encode_network_with_mac(response, lambda data: network_mac(zak, data))
            else:
                payload = encode_network(response)
        except EncodeError as exc:
            log.error("issuer %s: cannot encode the %s response: %s", bank.name, response.get("t"), exc)
            if request is not None:
                session.finish_request(request)
            return
        frame = (
            session.wire.frame(b"", payload) if request is None else session.send_response(request, payload)
        )
        writer = connection.writer
        if writer.is_closing():
            return
        async with connection.write_lock:
            writer.write(frame)
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()

    # ------------------------------------------------------------------------------------------ messages

    def _mac_ok(self, bank: _Bank, msg: Message, frame: bytes, required: bool) -> bool:
        if not any(field in msg for field in NETWORK_MAC_FIELDS):
            return not required
        parts = split_network_mac(msg, frame)
        if bank.keys.zak is None or parts is None:
            return False
        covered, mac = parts
        return verify_network_mac(bank.keys.zak, covered, mac)

    async def _respond(self, bank: _Bank, msg: Message, frame: bytes) -> Message | None:
        mti = msg["t"]
        if mti != NETWORK_MANAGEMENT_MTI and mti not in FINANCIAL_MTIS:
            log.warning("issuer %s: ignoring a %s (not a request) stan=%s", bank.name, mti, msg.get("11"))
            return None
        financial = mti in FINANCIAL_MTIS
        if financial and bank.fault == "drop_requests":
            log.info("issuer %s: fault drop_requests: dropped %s stan=%s", bank.name, mti, msg.get("11"))
            return None
        if bank.mac_enabled and not self._mac_ok(bank, msg, frame, required=financial):
            log.warning("issuer %s: bad or missing MAC on %s stan=%s", bank.name, mti, msg.get("11"))
            return build_response(msg, network_code(Reason.MAC_ERROR))
        try:
            if mti == NETWORK_MANAGEMENT_MTI:
                response = self._network_management(bank, msg)
            elif mti == REVERSAL_MTI:
                response = await self._reversal(bank, msg)
            else:
                response = await self._financial(bank, msg)
        except DecodeError as exc:
            log.warning("issuer %s: %s stan=%s rejected: %s", bank.name, mti, msg.get("11"), exc)
            response = build_response(msg, network_code(Reason.FORMAT_ERROR))
        if financial and bank.fault == "drop_replies":
            log.info("issuer %s: fault drop_replies: no answer to %s stan=%s", bank.name, mti, msg.get("11"))
            return None
        return response

    def _network_management(self, bank: _Bank, msg: Message) -> Message:
        code = msg.get("70", "")
        what = NETWORK_MANAGEMENT_CODES.get(code)
        log.info("issuer %s: 0800 %s stan=%s", bank.name, what or f"unknown code {code!r}", msg.get("11"))
        response_code = network_code(Reason.APPROVED if what else Reason.FORMAT_ERROR)
        return build_response(msg, response_code, {"70": code} if code else None)

    async def _reversal(self, bank: _Bank, msg: Message) -> Message:
        original = read_reversal(msg)
        now = self.clock().astimezone(dt.UTC).replace(tzinfo=None)
        amount_fen = int(msg["4"]) if "4" in msg else 0
        work = partial(
            authorizer.reverse,
            bank=bank.name,
            original=original,
            processing_code=msg.get("3", "000000"),
            amount_fen=amount_fen,
            now=now,
        )
        outcome = await self.store.run(work)
        log.info(
            "issuer %s: 0420 stan=%s of %s stan=%s: %s",
            bank.name,
            msg.get("11"),
            original.mti,
            original.stan,
            outcome.value,
        )
        return build_response(msg, network_code(Reason.APPROVED))

    async def _financial(self, bank: _Bank, msg: Message) -> Message:
        request = read_financial(msg)
        today_yymm = self.clock().strftime("%y%m")
        work = partial(
            authorizer.authorize,
            vault=self.vault,
            bank=bank.name,
            keys=bank.keys,
            request=request,
            today_yymm=today_yymm,
        )
        answer = await self.store.run(work)
        log.info(
            "issuer %s: %s %s stan=%s pan=%s amount_fen=%d -> %s",
            bank.name,
            request.mti,
            request.processing_code,
            request.stan,
            mask_pan(request.pan),
            request.amount_fen,
            answer.response_code,
        )
        return build_response(msg, answer.response_code, answer.fields())
