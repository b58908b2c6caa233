"""Issuer links: one persistent TCP connection per issuer speaking the network dialect.

Each link signs on (0800, 70 = 001) when it connects, echoes (70 = 301) every `echo_interval_s`, reconnects
with exponential back-off, MACs requests and verifies replies when the route says so. A link that is down
refuses at once (`IssuerUnavailable` → 91); a request with no answer in time raises `IssuerTimeout` (→ 98
and a queued reversal), and so does one still waiting when the link closes ("link closed before the
answer": it was sent, so the issuer may have acted on it).

Matching replies to requests (by response MTI and field 11), the time-outs and what fails when the link
closes are the sans-IO `iso8583.session.Session`'s, one per connection (network wire): this shell reads,
feeds it bytes and `loop.time()`, keeps one `loop.call_at` timer at its next deadline and turns its events
into answers and exceptions. Two requests with the same MTI and STAN at once are a bug (STANs are unique
per link): the second raises `SessionError`.

A route whose `mac` setting does not match the issuer is named in one log line: at sign-on, from the MAC
of the 0810 (absent, or not verifying under the ZAK, while `mac = true`; present while `mac = false`), and
for good at the first financial reply without a MAC while `mac = true` (every transaction then gets 96).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl as ssl_module
from collections.abc import Callable
from typing import Protocol

from posgate.errors import IssuerReplyUnverified, IssuerTimeout, IssuerUnavailable, PosgateError
from posgate.iso8583.codec import encode_network, encode_network_with_mac, split_network_mac
from posgate.iso8583.network_dialect import NETWORK_MAC_FIELDS
from posgate.iso8583.session import (
    NETWORK_WIRE,
    BadFrame,
    Inbound,
    RequestFailed,
    RequestTimedOut,
    ResponseReceived,
    Session,
    SessionClosed,
    Undecodable,
    Unmatched,
)
from posgate.security.keys import kcv
from posgate.security.network_mac import network_mac, verify_network_mac
from posgate.store.acquirer import RouteRecord

log = logging.getLogger("posgate.host.link")

Message = dict[str, str]
#: The session of one connection; its tokens are the futures the requests wait on.
_Session = Session[asyncio.Future[Message]]
_MAX_FRAME_BYTES = 8192


class StanSource(Protocol):
    """Where a link's network STANs come from (`host.stans.StanAllocator`)."""

    async def next(self, issuer_name: str) -> str: ...


class IssuerLink:
    """The host's connection to one issuer."""

    def __init__(
        self,
        route: RouteRecord,
        acquirer_id: str,
        stans: StanSource,
        ssl: ssl_module.SSLContext | None = None,
        connect_timeout_s: float = 2.0,
        echo_interval_s: float = 30.0,
        reconnect_max_s: float = 10.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.route = route
        self.acquirer_id = acquirer_id
        self.connect_timeout_s = connect_timeout_s
        self.echo_interval_s = echo_interval_s
        self.reconnect_max_s = reconnect_max_s
        self.clock = clock
        self.up = asyncio.Event()
        self.on_up: list[Callable[[], None]] = []
        #: called with the seconds from writing a request to its reply (the operations port's histogram)
        self.observe_round_trip: Callable[[float], None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._session: _Session | None = None  # the current connection's
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.stans = stans
        self.ssl = ssl
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._told_replies_lack_mac = False
        self._told_sign_on_mac = False

    @property
    def name(self) -> str:
        return self.route.name

    @property
    def is_up(self) -> bool:
        return self.up.is_set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._maintain(), name=f"link-{self.name}")

    async def stop(self) -> None:
        self._closing = True
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._drop_connection()

    # -- requests ----------

    async def request(self, msg: Message, timeout_s: float) -> Message:
        """Send one request and wait for its reply; refuse at once when the link is down."""
        if not self.is_up:
            raise IssuerUnavailable(f"issuer {self.name} link is down")
        return await self._send(msg, timeout_s)

    async def _send(self, msg: Message, timeout_s: float) -> Message:
        writer, session = self._writer, self._session
        if writer is None or session is None:
            raise IssuerUnavailable(f"issuer {self.name} link is down")
        if session.closed:  # the issuer closed it: nothing sent, nothing to reverse
            raise IssuerUnavailable(f"issuer {self.name} link closed: {session.closed_why}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()
        try:
            request, frame = session.send_request(msg, self._encode(msg), loop.time(), timeout_s, future)
        except SessionClosed as exc:
            raise IssuerUnavailable(f"issuer {self.name} link closed: {exc.why}") from None
        self._arm(session)
        sent_at = loop.time()
        try:
            writer.write(frame)
            reply = await future
            if self.observe_round_trip is not None:
                self.observe_round_trip(loop.time() - sent_at)
            return reply
        finally:
            session.abandon(request)

    def _encode(self, msg: Message) -> bytes:
        zak = self.route.zak
        if self.route.mac_enabled and zak is not None and msg["t"][:2] != "08":
            return encode_network_with_mac(msg, lambda data: network_mac(zak, data))
        return encode_network(msg)

    # -- connection upkeep ----------

    async def _maintain(self) -> None:
        backoff = 0.2
        while not self._closing:
            try:
                reader, writer = await asyncio.wait_for(self._connect(), self.connect_timeout_s)
            except ssl_module.SSLError as exc:
                log.warning(
                    "issuer %s: TLS handshake with %s:%s failed: %s",
                    self.name,
                    self.route.host,
                    self.route.port,
                    exc,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.reconnect_max_s)
                continue
            except (OSError, TimeoutError) as exc:
                log.info(
                    "issuer %s unreachable at %s:%s: %s", self.name, self.route.host, self.route.port, exc
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.reconnect_max_s)
                continue
            self._writer, self._session = writer, Session(NETWORK_WIRE, max_frame_bytes=_MAX_FRAME_BYTES)
            reader_task = asyncio.create_task(self._read(reader, self._session))
            try:
                await self._sign_on()
                backoff = 0.2
                self.up.set()
                log.info("issuer %s link up", self.name)
                for callback in self.on_up:
                    callback()
                await self._echo_until_broken(reader_task)
            except (IssuerTimeout, IssuerUnavailable, OSError, PosgateError) as exc:
                log.warning("issuer %s link broken: %s", self.name, exc)
            else:
                log.warning("issuer %s closed the link", self.name)
            finally:
                self.up.clear()
                reader_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader_task
                self._drop_connection()
            if not self._closing:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.reconnect_max_s)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """TCP, or TLS when the route says so: the issuer's certificate must name `server_name` (else
        the route's host)."""
        if self.ssl is None:
            return await asyncio.open_connection(self.route.host, self.route.port)
        assert self.route.tls is not None
        return await asyncio.open_connection(
            self.route.host,
            self.route.port,
            ssl=self.ssl,
            server_hostname=self.route.tls.server_name or self.route.host,
            ssl_handshake_timeout=self.connect_timeout_s,
        )

    async def _sign_on(self) -> None:
        reply = await self._admin("001")
        if reply.get("39") != "00":
            raise IssuerUnavailable(f"issuer {self.name} refused sign-on with {reply.get('39')}")

    async def _echo_until_broken(self, reader_task: asyncio.Task[None]) -> None:
        while not reader_task.done():
            done, _ = await asyncio.wait({reader_task}, timeout=self.echo_interval_s)
            if done:
                return
            await self._admin("301")

    async def _admin(self, code: str) -> Message:
        stan = await self.stans.next(self.name)
        msg = {"t": "0800", "7": self.clock().strftime("%m%d%H%M%S"), "11": stan, "70": code}
        return await self._send(msg, self.connect_timeout_s)

    async def _read(self, reader: asyncio.StreamReader, session: _Session) -> None:
        """Deliver replies until the issuer closes the link; then what was waiting for an answer (a sign-on
        included) fails at once, saying why."""
        loop = asyncio.get_running_loop()
        answered = False
        why = "closed by the issuer"
        try:
            while data := await reader.read(65536):
                answered = True
                session.receive_data(data, loop.time())
                bad = self._handle_events(session)
                if bad is not None:
                    why = f"bad frame from the issuer ({bad.error})"
                    log.warning("issuer %s sent a bad frame, closing the link: %s", self.name, bad.error)
                    break
        except OSError as exc:  # ssl.SSLError, ConnectionResetError …
            why = str(exc) or type(exc).__name__
        else:
            tls = self.route.tls
            if not answered and tls is not None and tls.cert_file is None:
                # asyncio reads a TLS 1.3 "certificate required" alert as a plain end of stream
                why += " before any answer: if it wants a client certificate, set tls.cert and tls.key"
        session.connection_lost(why)
        self._handle_events(session)

    def _handle_events(self, session: _Session) -> BadFrame | None:
        """Act on the session's events: replies (MAC-checked) to their requests, time-outs and a closed
        link as `IssuerTimeout`; re-arm the timer. Returns a `BadFrame` if one came."""
        bad = None
        while (event := session.next_event()) is not None:
            if isinstance(event, ResponseReceived):
                reply, verified = self._checked(event.response)
                token = event.request.token
                if not token.done() and verified:
                    token.set_result(reply)
                elif not token.done():
                    token.set_exception(
                        IssuerReplyUnverified(
                            f"issuer {self.name} reply {reply['t']}/{reply.get('11')} failed MAC verification"
                        )
                    )
            elif isinstance(event, Unmatched):
                msg, _ = self._checked(event.message)
                log.info("issuer %s: late or unmatched reply %s/%s", self.name, msg["t"], msg.get("11"))
            elif isinstance(event, Undecodable):
                log.warning("issuer %s sent an undecodable message: %s", self.name, event.error)
            elif isinstance(event, RequestTimedOut):
                request = event.request
                if not request.token.done():
                    request.token.set_exception(
                        IssuerTimeout(
                            f"issuer {self.name} did not answer {request.mti} in {request.timeout_s}s"
                        )
                    )
            elif isinstance(event, RequestFailed):
                if not event.request.token.done():  # it was sent: the issuer may have acted on it
                    because = f": {event.why}" if event.why else ""
                    event.request.token.set_exception(
                        IssuerTimeout(f"issuer {self.name} link closed before the answer{because}")
                    )
            elif isinstance(event, BadFrame):
                bad = event
        self._arm(session)
        return bad

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

    def _checked(self, reply: Inbound) -> tuple[Message, bool]:
        """The reply's fields and whether its MAC verified as the route says (a financial reply whose MAC
        does not verify is not trusted); the first sign-on answer tells whether the route's `mac` setting
        fits."""
        msg, body = reply.fields, reply.body
        if msg["t"] == "0810" and msg.get("70") == "001" and not self._told_sign_on_mac:
            self._diagnose_sign_on_mac(body, msg)
        elif self.route.mac_enabled and msg["t"][:2] != "08":
            mac = self._reply_mac(body, msg)
            if mac == "absent" and not self._told_replies_lack_mac:
                self._told_replies_lack_mac = True
                log.error(
                    "issuer %s sends replies without a MAC but its route has mac = true: every transaction"
                    " gets 96 until you set mac = false for issuer %s ([[issuers]] in posgate.toml or"
                    " POSGATE_ISSUERS) or the issuer MACs its replies with the ZAK",
                    self.name,
                    self.name,
                )
            if mac != "good":
                log.warning(
                    "issuer %s reply %s/%s failed MAC verification", self.name, msg["t"], msg.get("11")
                )
                return msg, False
        return msg, True

    def _reply_mac(self, body: bytes, msg: Message) -> str:
        """`absent` (no MAC field), `good`, or `bad` (misplaced, or not verifying under the ZAK)."""
        if not any(field in msg for field in NETWORK_MAC_FIELDS):
            return "absent"
        parts = split_network_mac(msg, body)
        if parts is None or self.route.zak is None:
            return "bad"
        covered, mac = parts
        return "good" if verify_network_mac(self.route.zak, covered, mac) else "bad"

    def _diagnose_sign_on_mac(self, body: bytes, msg: Message) -> None:
        """Say at sign-on, in one line, when the route's `mac` setting and the issuer seem not to agree.
        The host does not MAC 0800s, so an issuer may leave its 0810 unMACed: only the 0810 is judged."""
        mac = self._reply_mac(body, msg)
        name = self.name
        self._told_sign_on_mac = mac != ("good" if self.route.mac_enabled else "absent")
        if self.route.mac_enabled and mac == "absent":
            log.warning(
                "issuer %s answered sign-on without a MAC but its route has mac = true: if it MACs no"
                " replies, every transaction will get 96; then set mac = false for issuer %s ([[issuers]]"
                " in posgate.toml or POSGATE_ISSUERS)",
                name,
                name,
            )
        elif self.route.mac_enabled and mac == "bad" and self.route.zak is not None:
            log.error(
                "issuer %s: the MAC of its sign-on answer does not verify under the ZAK configured for it"
                " (KCV %s): every transaction will get 96 until zak for issuer %s matches the issuer's",
                name,
                kcv(self.route.zak),
                name,
            )
        elif not self.route.mac_enabled and mac != "absent":
            log.warning(
                "issuer %s MACs its sign-on answer but its route has mac = false: if it expects MACs on"
                " requests, set mac = true and zak for issuer %s ([[issuers]] in posgate.toml or"
                " POSGATE_ISSUERS)",
                name,
                name,
            )

    def _drop_connection(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        session = self._session
        if session is not None:
            session.connection_lost("")  # what the reader did not fail yet
            self._handle_events(session)
        self._cancel_timer()


class IssuerLinks:
    """All links, by issuer name."""

    def __init__(self, links: list[IssuerLink]) -> None:
        self.by_name = {link.name: link for link in links}

    def get(self, name: str) -> IssuerLink:
        return self.by_name[name]

    def start(self) -> None:
        for link in self.by_name.values():
            link.start()

    async def stop(self) -> None:
        for link in self.by_name.values():
            await link.stop()

    async def wait_up(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(
                asyncio.gather(*(link.up.wait() for link in self.by_name.values())), timeout_s
            )
            return True
        except TimeoutError:
            return False
