"""One ISO 8583 connection's request/response protocol, without I/O: matching, pipelining, time-outs.

Like h11 (`receive_data()`, `next_event()`, `send()` returning bytes) and aioquic (timers are inputs:
`handle_timer(now)`), a `Session` holds the state of one connection and never touches a socket or a clock:
the asyncio shell feeds it the bytes it read and the time (`now`, any monotonic clock), writes the bytes
it returns, acts on its events, and keeps one timer armed at `next_deadline()` (`loop.call_at`) that calls
`handle_timer(now)`. It is what the terminal simulator (`terminal.connection`), the host's issuer links
(`host.links`) and the issuer simulator (`issuer.server`) have in common. It lives in `iso8583`, beside the
framing and the codec it composes, because it is the same kind of thing: the protocol, pure, for every
actor; the actors keep only their asyncio shells and their own rules (MACs, faults, the POS policy).

Framing: the session cuts the stream with a `FrameBuffer` and decodes each frame once (`Wire`: the POS
frame's TPDU and header, or the network frame's bare message); the event carries the decoded message.

Matching: a response answers the waiting request whose response MTI and `match_fields` it carries — field
11, and for POS also 41. On the POS wire an error answer with another MTI matches on those fields alone when
exactly one waiting request has them. A response nobody waits for (late: its request timed out; unknown) is
`Unmatched`; so is a request on a session that does not serve.

Pipelining: any number of requests may wait at once, up to `max_in_flight` (None: no limit); one more, or a
second one with the same key, raises `SessionError` and sends nothing. A serving session (`serve=True`)
hands out at most `max_in_flight` requests before their answers (`send_response`, or `finish_request` for
one it will not answer); meanwhile `next_event` hands out no further request and `reading_paused` is True:
the shell stops reading (back-pressure).

Time-outs: a request's deadline is `now + timeout_s` when sent; `handle_timer(now)` turns each one past into
`RequestTimedOut` and forgets it (its answer, if it comes, is `Unmatched`). With `frame_deadline_s`, a frame
must arrive whole within that time of its first byte (`FrameDeadlineExpired`, as a trickle cannot reset it).

Close: a bad length prefix (`BadFrame`) or an expired frame deadline ends the stream: the shell closes the
transport. When the transport is gone (end of stream, a socket error, that close, the shell's own close) the
shell calls `connection_lost(why)`: the frames already received are still handed out, then every request
still waiting fails (`RequestFailed`: it was sent, so the peer may have acted on it) and `send_request`
raises `SessionClosed`.

>>> from posgate.iso8583.codec import encode_network
>>> client = Session(NETWORK_WIRE)
>>> echo = {"t": "0800", "11": "000001", "70": "301"}
>>> request, wire = client.send_request(echo, encode_network(echo), now=0.0, timeout_s=5.0, token="echo")
>>> wire == build_network_frame(encode_network(echo)), request, client.next_deadline()
(True, Pending(0800 stan=000001, deadline=5), 5.0)
>>> client.receive_data(build_network_frame(encode_network({**echo, "t": "0810", "39": "00"})), now=0.25)
>>> event = client.next_event()
>>> type(event).__name__, event.request.token, event.response.fields["39"], event.elapsed_s
('ResponseReceived', 'echo', '00', 0.25)
>>> client.next_event() is None, client.in_flight
(True, 0)
>>> _ = client.send_request({**echo, "11": "000002"}, b"0800...", now=1.0, timeout_s=5.0, token="late")
>>> client.handle_timer(now=6.0)
>>> type(event := client.next_event()).__name__, event.request.token, client.next_deadline()
('RequestTimedOut', 'late', None)
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from typing import Generic, TypeVar

from posgate.errors import FramingError, PosgateError, ProtocolError
from posgate.iso8583.codec import Message, decode_network, decode_pos, response_mti
from posgate.iso8583.framing import (
    MAX_FRAME_BYTES,
    POS_HEADER_LEN,
    TPDU_LEN,
    FrameBuffer,
    build_network_frame,
    build_pos_frame,
    split_pos_frame,
)

__all__ = [
    "NETWORK_WIRE",
    "POS_WIRE",
    "BadFrame",
    "Event",
    "FrameDeadlineExpired",
    "Inbound",
    "Pending",
    "RequestFailed",
    "RequestReceived",
    "RequestTimedOut",
    "ResponseReceived",
    "Session",
    "SessionClosed",
    "SessionError",
    "Undecodable",
    "Unmatched",
    "Wire",
    "is_request_mti",
]

T = TypeVar("T")
_EVEN = frozenset("02468")


class SessionError(PosgateError):
    """A request the session cannot send: a duplicate key, too many in flight, or the connection is gone."""


class SessionClosed(SessionError):
    """The connection is gone (`connection_lost`); `why` is the reason the shell gave."""

    def __init__(self, why: str) -> None:
        super().__init__(f"connection closed: {why}" if why else "connection closed")
        self.why = why


def is_request_mti(mti: str) -> bool:
    """A request MTI has an even third digit (0200, 0800 …); a response (0210) has an odd one.

    >>> is_request_mti("0200"), is_request_mti("0210"), is_request_mti("02"), is_request_mti("0A00")
    (True, False, False, False)
    """
    return len(mti) == 4 and mti.isascii() and mti.isdigit() and int(mti[2]) % 2 == 0


# ---------------------------------------------------------------------------------------------------- wires


@dataclass(slots=True)
class Inbound:
    """A frame received and decoded. `body`: the frame without its length prefix; `tpdu` and `header`: the
    POS frame's (empty on the network wire); `payload`: the message from the MTI on; `fields`: decoded;
    `received_at`: the `now` of the `receive_data` before it was handed out (the shell takes the events
    after each read, so: when the bytes that completed it arrived)."""

    body: bytes
    tpdu: bytes
    header: bytes
    payload: bytes
    fields: Message
    received_at: float

    @property
    def mti(self) -> str:
        return self.fields["t"]


def _split_pos(body: bytes) -> tuple[bytes, bytes, bytes]:
    frame = split_pos_frame(body)
    return frame.tpdu, frame.header, frame.payload


def _split_network(body: bytes) -> tuple[bytes, bytes, bytes]:
    return b"", b"", body


def _frame_pos(envelope: bytes, payload: bytes) -> bytes:
    return build_pos_frame(envelope[:TPDU_LEN], envelope[TPDU_LEN:], payload)


def _frame_network(envelope: bytes, payload: bytes) -> bytes:
    if envelope:
        raise ValueError("a network frame has no envelope (TPDU, header)")
    return build_network_frame(payload)


@dataclass(frozen=True, slots=True)
class Wire:
    """How one dialect travels on a connection: `split` cuts a frame body into TPDU, header and message,
    `decode` reads the message, `frame` builds a frame from an envelope (TPDU + header; empty for the
    network) and a message; a response matches its request by MTI and `match_fields`; `loose_mti`: an
    answer with another MTI may match on `match_fields` alone (POS error answers)."""

    name: str
    split: Callable[[bytes], tuple[bytes, bytes, bytes]]
    decode: Callable[[bytes], Message]
    frame: Callable[[bytes, bytes], bytes]
    match_fields: tuple[str, ...]
    loose_mti: bool = False


#: The terminal–host wire: TPDU and header before the message; answers echo 11 and 41.
POS_WIRE = Wire("pos", _split_pos, decode_pos, _frame_pos, ("11", "41"), loose_mti=True)
#: The acquirer–issuer wire: the bare message; answers echo 11.
NETWORK_WIRE = Wire("network", _split_network, decode_network, _frame_network, ("11",))
#: Bytes of a POS frame's envelope (TPDU and header), which `send_request` takes for the POS wire.
POS_ENVELOPE_LEN = TPDU_LEN + POS_HEADER_LEN


# ---------------------------------------------------------------------------------------------------- events


class Pending(Generic[T]):
    """A request sent and waiting for its answer: its key (response MTI, then the match fields), the
    request's MTI and field 11, the shell's `token` (e.g. the future to resolve), when it was sent, its
    time-out and its deadline (`sent_at + timeout_s`)."""

    __slots__ = ("deadline", "done", "key", "mti", "sent_at", "stan", "timeout_s", "token")

    def __init__(
        self, key: tuple[str, ...], mti: str, stan: str, token: T, sent_at: float, timeout_s: float
    ) -> None:
        self.key, self.mti, self.stan, self.token = key, mti, stan, token
        self.sent_at, self.timeout_s, self.deadline = sent_at, timeout_s, sent_at + timeout_s
        self.done = False

    def __repr__(self) -> str:
        return f"Pending({self.mti} stan={self.stan}, deadline={self.deadline:g})"


@dataclass(slots=True)
class ResponseReceived(Generic[T]):
    """The answer to a waiting request (which is forgotten)."""

    request: Pending[T]
    response: Inbound

    @property
    def elapsed_s(self) -> float:
        """From sending the request to receiving its answer."""
        return self.response.received_at - self.request.sent_at


@dataclass(slots=True)
class RequestReceived:
    """A request from the peer (serving sessions): answer it with `send_response`, or `finish_request`."""

    request: Inbound


@dataclass(slots=True)
class Unmatched:
    """A message nobody waits for: a late answer, an answer to no request of ours, a request we do not
    serve."""

    message: Inbound


@dataclass(slots=True)
class Undecodable:
    """A whole frame whose envelope or message cannot be read; the stream goes on."""

    body: bytes
    error: ProtocolError
    received_at: float


@dataclass(slots=True)
class RequestTimedOut(Generic[T]):
    """No answer before the request's deadline: it is forgotten (a late answer will be `Unmatched`)."""

    request: Pending[T]


@dataclass(slots=True)
class RequestFailed(Generic[T]):
    """The connection went before the answer (`why`: the reason given to `connection_lost`). The request
    was sent: the peer may have acted on it."""

    request: Pending[T]
    why: str


@dataclass(slots=True)
class BadFrame:
    """The length prefix is out of range: the stream cannot be resynchronised. Close the connection."""

    error: FramingError


@dataclass(slots=True)
class FrameDeadlineExpired:
    """A frame begun `deadline_s` ago is still incomplete (`pending_bytes` received). Close the connection."""

    deadline_s: float
    pending_bytes: int


Event = (
    ResponseReceived[T]
    | RequestReceived
    | Unmatched
    | Undecodable
    | RequestTimedOut[T]
    | RequestFailed[T]
    | BadFrame
    | FrameDeadlineExpired
)


# ---------------------------------------------------------------------------------------------------- session


class Session(Generic[T]):
    """One connection's protocol state. `T`: the type of the shell's tokens (what it resolves on an answer).

    `serve`: requests from the peer are handed out (`RequestReceived`); `max_in_flight`: the pipelining limit
    (None: none) — of our requests waiting, or of the peer's requests handed out and not yet answered;
    `frame_deadline_s`: how long a frame may take to arrive whole (None: no limit)."""

    def __init__(
        self,
        wire: Wire,
        *,
        serve: bool = False,
        max_in_flight: int | None = None,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        frame_deadline_s: float | None = None,
    ) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.wire = wire
        self.serve = serve
        self.max_in_flight = max_in_flight
        self.frame_deadline_s = frame_deadline_s
        self._frames = FrameBuffer(max_frame_bytes)
        self._events: deque[Event[T]] = deque()
        self._pending: dict[tuple[str, ...], Pending[T]] = {}
        self._deadlines: list[tuple[float, int, Pending[T]]] = []
        self._order = count()
        self._serving = 0
        self._broken = False
        self._closed_why: str | None = None
        self._now = 0.0

    # -------------------------------------------------------------------------------------- state

    @property
    def in_flight(self) -> int:
        """Our requests waiting for an answer."""
        return len(self._pending)

    @property
    def serving(self) -> int:
        """The peer's requests handed out and not yet answered or finished."""
        return self._serving

    @property
    def closed(self) -> bool:
        """`connection_lost` was called."""
        return self._closed_why is not None

    @property
    def closed_why(self) -> str | None:
        return self._closed_why

    @property
    def reading_paused(self) -> bool:
        """The stream is broken, or as many of the peer's requests as allowed are being served: stop
        reading until `send_response` / `finish_request`."""
        return self._broken or self._at_serving_limit()

    def _at_serving_limit(self) -> bool:
        return self.max_in_flight is not None and self._serving >= self.max_in_flight

    def waiting(self) -> list[Pending[T]]:
        """Our requests waiting for an answer, oldest first."""
        return list(self._pending.values())

    # -------------------------------------------------------------------------------------- sending

    def request_key(self, msg: Message) -> tuple[str, ...]:
        """The key the answer to `msg` will carry: its response MTI, then the match fields."""
        return (response_mti(msg["t"]), *[msg.get(name, "") for name in self.wire.match_fields])

    def send_request(
        self, msg: Message, payload: bytes, now: float, timeout_s: float, token: T, envelope: bytes = b""
    ) -> tuple[Pending[T], bytes]:
        """Register `msg` (its key from its MTI and match fields; `payload`: its encoded bytes) as waiting
        until `now + timeout_s`; return it and the frame to write (`envelope`: the POS TPDU and header).

        Raises `SessionClosed` after `connection_lost`, `SessionError` when a request with the same key is
        waiting or `max_in_flight` are; nothing is registered then."""
        if self._closed_why is not None:
            raise SessionClosed(self._closed_why)
        key = self.request_key(msg)
        if key in self._pending:
            stan = msg.get("11", "")
            raise SessionError(f"a {msg['t']} with STAN {stan} is already waiting for its response")
        if self.max_in_flight is not None and len(self._pending) >= self.max_in_flight:
            raise SessionError(f"{len(self._pending)} requests already waiting (the most in flight)")
        frame = self.wire.frame(envelope, payload)
        pending = Pending(key, msg["t"], msg.get("11", ""), token, now, timeout_s)
        self._pending[key] = pending
        heapq.heappush(self._deadlines, (pending.deadline, next(self._order), pending))
        return pending, frame

    def abandon(self, request: Pending[T]) -> None:
        """Stop waiting for `request` (its sender gave up); an answer that comes is `Unmatched`."""
        if not request.done:
            request.done = True
            if self._pending.get(request.key) is request:
                del self._pending[request.key]

    def send_response(self, request: Inbound, payload: bytes, envelope: bytes = b"") -> bytes:
        """The frame answering `request` (handed out by `RequestReceived`), which frees its slot."""
        self.finish_request(request)
        return self.wire.frame(envelope, payload)

    def finish_request(self, request: Inbound) -> None:
        """`request` will not be answered (or was answered another way): free its slot."""
        if self._serving > 0:
            self._serving -= 1

    # -------------------------------------------------------------------------------------- receiving

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes read from the connection at `now`; take the events with `next_event`."""
        if not self._broken:
            self._frames.receive_data(data, now)
        self._now = now

    def next_event(self) -> Event[T] | None:
        """The next event, or None until more bytes, time or an answer slot (`reading_paused`) come."""
        if self._events:
            return self._events.popleft()
        return self._frame_event()

    def _frame_event(self) -> Event[T] | None:
        if self._broken or self._at_serving_limit():
            return None
        try:
            body = self._frames.next_frame()
        except FramingError as exc:
            self._broken = True
            return BadFrame(exc)
        if body is None:
            return None
        received_at = self._now
        try:
            tpdu, header, payload = self.wire.split(body)
            fields = self.wire.decode(payload)
        except ProtocolError as exc:
            return Undecodable(body, exc, received_at)
        message = Inbound(body, tpdu, header, payload, fields, received_at)
        if fields["t"][2] in _EVEN:  # a request (the codec let only the dialect's MTIs through)
            if not self.serve:
                return Unmatched(message)
            self._serving += 1
            return RequestReceived(message)
        pending = self._match(fields)
        if pending is None:
            return Unmatched(message)
        pending.done = True
        del self._pending[pending.key]
        return ResponseReceived(pending, message)

    def _match(self, fields: Message) -> Pending[T] | None:
        match = tuple([fields.get(name, "") for name in self.wire.match_fields])
        pending = self._pending.get((fields["t"], *match))
        if pending is None and self.wire.loose_mti and self._pending:
            # an error answer with another MTI: match on the fields alone when only one request has them
            same = [p for p in self._pending.values() if p.key[1:] == match]
            pending = same[0] if len(same) == 1 else None
        return pending

    # -------------------------------------------------------------------------------------- time

    def next_deadline(self) -> float | None:
        """When `handle_timer` must run next: the earliest request deadline or frame deadline; None: no
        timer needed."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][2].done:
            heapq.heappop(deadlines)
        soonest = deadlines[0][0] if deadlines else None
        frame_due = self._frame_due()
        if frame_due is not None and (soonest is None or frame_due < soonest):
            return frame_due
        return soonest

    def _frame_due(self) -> float | None:
        if self.frame_deadline_s is None or self._broken:
            return None
        started = self._frames.incomplete_since
        return None if started is None else started + self.frame_deadline_s

    def handle_timer(self, now: float) -> None:
        """Expire what is due at `now`: requests past their deadline (`RequestTimedOut`), an incomplete
        frame past the frame deadline (`FrameDeadlineExpired`)."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            pending = heapq.heappop(deadlines)[2]
            if not pending.done:
                pending.done = True
                del self._pending[pending.key]
                self._events.append(RequestTimedOut(pending))
        frame_due = self._frame_due()
        if frame_due is not None and frame_due <= now:
            assert self.frame_deadline_s is not None
            self._broken = True
            self._events.append(FrameDeadlineExpired(self.frame_deadline_s, self._frames.pending_bytes))

    # -------------------------------------------------------------------------------------- close

    def connection_lost(self, why: str) -> None:
        """The transport is gone. Frames already received are handed out first; then every request still
        waiting fails (`RequestFailed(why)`), and `send_request` raises `SessionClosed(why)`. Idempotent."""
        if self._closed_why is not None:
            return
        while (event := self._frame_event()) is not None:
            self._events.append(event)
        self._closed_why = why
        self._broken = True
        pending, self._pending = self._pending, {}
        self._deadlines.clear()
        for request in pending.values():
            request.done = True
            self._events.append(RequestFailed(request, why))
