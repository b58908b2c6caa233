"""TCP framing of both dialects, without sockets: the 2-byte length prefix, the POS TPDU and header.

POS frame:     `LEN(2, big-endian, counts what follows) | TPDU(5) | HEADER(6) | message`
network frame: `LEN(2, big-endian) | message`

`FrameBuffer` cuts a byte stream into frame bodies the way h11 cuts HTTP: the shell feeds whatever the socket
gave with `receive_data()` and calls `next_frame()` until it returns None (more bytes needed). A length
of zero or over `max_frame_bytes` raises `FramingError`; the stream cannot be resynchronised: close it.

>>> buf = FrameBuffer()
>>> buf.receive_data(b"\\x00\\x02hi\\x00\\x01")
>>> buf.next_frame(), buf.next_frame(), buf.pending_bytes
(b'hi', None, 2)

The shell passes the time with each read (`receive_data(data, now)`): `incomplete_since` is then when the
first byte of the frame still being received arrived, so a server can hold every frame to a whole-frame
deadline that a trickle of single bytes cannot reset (an idle timer can be):

>>> buf = FrameBuffer()
>>> buf.receive_data(b"\\x00\\x03a", now=10.0)
>>> buf.receive_data(b"b", now=12.5)
>>> buf.incomplete_since
10.0
>>> buf.receive_data(b"c\\x00", now=13.0)
>>> buf.next_frame(), buf.next_frame(), buf.incomplete_since
(b'abc', None, 13.0)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from posgate.errors import EncodeError, FramingError
from posgate.iso8583.content import message

LENGTH_PREFIX_LEN = 2
TPDU_LEN = 5
POS_HEADER_LEN = 6
TPDU_ID = 0x60
MAX_FRAME_BYTES = 2048
_MTI_LEN = 2
_MAX_LENGTH = 0xFFFF


@dataclass(frozen=True)
class PosFrame:
    """A POS frame body cut into its parts; `payload` is the message from the MTI on."""

    tpdu: bytes
    header: bytes
    payload: bytes


def split_pos_frame(body: bytes) -> PosFrame:
    """Cut a POS frame body (everything after the length prefix) into TPDU, header and message.

    >>> split_pos_frame(bytes.fromhex("6000030000" "603210320072" "0800")).tpdu.hex()
    '6000030000'
    """
    body = bytes(body)
    minimum = TPDU_LEN + POS_HEADER_LEN + _MTI_LEN
    if len(body) < minimum:
        bad = f"body is {len(body)} bytes, expected at least {minimum} (TPDU, header, MTI)"
        raise FramingError(message("frame", bad, 0), "frame", 0)
    if body[0] != TPDU_ID:
        raise FramingError(message("tpdu", f"expected id 0x60, got 0x{body[0]:02X}", 0), "tpdu", 0)
    payload_start = TPDU_LEN + POS_HEADER_LEN
    return PosFrame(body[:TPDU_LEN], body[TPDU_LEN:payload_start], body[payload_start:])


def _length_prefix(size: int) -> bytes:
    if size > _MAX_LENGTH:
        bad = f"frame body is {size} bytes, at most {_MAX_LENGTH} fit"
        raise EncodeError(message("length", bad, 0), "length", 0)
    return size.to_bytes(LENGTH_PREFIX_LEN, "big")


def _check_size(part: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise EncodeError(message(part, f"expected {size} bytes, got {len(value)}", None), part)


def build_pos_frame(tpdu: bytes, header: bytes, payload: bytes) -> bytes:
    """The complete POS frame, length prefix included.

    >>> build_pos_frame(bytes.fromhex("6000000003"), bytes.fromhex("603210320072"), b"\\x08\\x10").hex()
    '000d60000000036032103200720810'
    """
    _check_size("tpdu", tpdu, TPDU_LEN)
    _check_size("header", header, POS_HEADER_LEN)
    body = bytes(tpdu) + bytes(header) + bytes(payload)
    return _length_prefix(len(body)) + body


def build_network_frame(payload: bytes) -> bytes:
    """The complete network frame: length prefix and message.

    >>> build_network_frame(b"0800")
    b'\\x00\\x040800'
    """
    return _length_prefix(len(payload)) + bytes(payload)


def response_tpdu(tpdu: bytes) -> bytes:
    """The response TPDU: destination and source NII swapped.

    >>> response_tpdu(bytes.fromhex("6000030000")).hex()
    '6000000003'
    """
    _check_size("tpdu", tpdu, TPDU_LEN)
    tpdu = bytes(tpdu)
    return tpdu[:1] + tpdu[3:5] + tpdu[1:3]


def response_header(header: bytes, processing_requirement: int = 0) -> bytes:
    """The request header, with the processing-requirement nibble (low nibble of byte index 2) set:
    0 nothing, 3 sign in again.

    >>> response_header(bytes.fromhex("603210320072"), 3).hex()
    '603213320072'
    """
    _check_size("header", header, POS_HEADER_LEN)
    if not 0 <= processing_requirement <= 0xF:
        bad = f"processing requirement must be 0-15, got {processing_requirement}"
        raise EncodeError(message("header", bad, 2), "header", 2)
    out = bytearray(header)
    out[2] = (out[2] & 0xF0) | processing_requirement
    return bytes(out)


class FrameBuffer:
    """Reassembles frame bodies from a TCP byte stream (both dialects use a 2-byte big-endian length)."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_frame_bytes
        self._error: FramingError | None = None
        #: per chunk still (partly) in the buffer: [bytes of it left, when it arrived]
        self._arrivals: deque[list[float]] = deque()

    @property
    def pending_bytes(self) -> int:
        """Bytes received and not yet returned as a frame (a partial frame, or frames not yet taken)."""
        return len(self._buffer)

    @property
    def incomplete_since(self) -> float | None:
        """When the first byte of the frame at the head of the buffer arrived (the `now` given with it),
        if that frame is incomplete; None when the buffer is empty or holds a whole frame to take."""
        if not self._buffer:
            return None
        if len(self._buffer) >= LENGTH_PREFIX_LEN:
            length = int.from_bytes(self._buffer[:LENGTH_PREFIX_LEN], "big")
            if len(self._buffer) >= LENGTH_PREFIX_LEN + length:
                return None
        return self._arrivals[0][1]

    def receive_data(self, data: bytes, now: float = 0.0) -> None:
        """Add bytes read from the connection at time `now` (any monotonic clock; only differences count);
        an empty `data` (end of stream) changes nothing."""
        if data:
            self._buffer += data
            self._arrivals.append([len(data), now])

    def _consume(self, count: int) -> None:
        del self._buffer[:count]
        while count:
            chunk = self._arrivals[0]
            taken = min(count, int(chunk[0]))
            chunk[0] -= taken
            count -= taken
            if not chunk[0]:
                self._arrivals.popleft()

    def next_frame(self) -> bytes | None:
        """The next complete frame body without its length prefix, or None until more bytes arrive.

        After a FramingError every call raises it again: the stream is lost, close the connection.
        """
        if self._error is not None:
            raise self._error
        if len(self._buffer) < LENGTH_PREFIX_LEN:
            return None
        length = int.from_bytes(self._buffer[:LENGTH_PREFIX_LEN], "big")
        if length == 0 or length > self._max:
            bad = f"frame length {length} exceeds the maximum {self._max}" if length else "frame length is 0"
            self._error = FramingError(message("length", bad, 0), "length", 0)
            raise self._error
        end = LENGTH_PREFIX_LEN + length
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[LENGTH_PREFIX_LEN:end])
        self._consume(end)
        return body
