"""`FrameBuffer.incomplete_since`: when the frame still being received began to arrive, across chunks and
after frames are taken, so a server can hold each frame to a deadline a trickle cannot reset."""

from __future__ import annotations

import pytest

from posgate.errors import FramingError
from posgate.iso8583.framing import FrameBuffer


def test_a_trickle_keeps_the_time_of_the_first_byte() -> None:
    buf = FrameBuffer()
    frame = b"\x00\x05hello"
    for n, byte in enumerate(frame[:-1]):
        buf.receive_data(bytes([byte]), now=float(n))
        assert buf.next_frame() is None
        assert buf.incomplete_since == 0.0
    buf.receive_data(frame[-1:], now=99.0)
    assert buf.incomplete_since is None  # whole: nothing incomplete, the frame waits to be taken
    assert buf.next_frame() == b"hello"
    assert buf.incomplete_since is None and buf.pending_bytes == 0


def test_the_next_frame_is_timed_from_the_chunk_its_first_byte_came_in() -> None:
    buf = FrameBuffer()
    buf.receive_data(b"\x00\x02ab\x00\x03c", now=1.0)  # one frame and the start of another
    buf.receive_data(b"d", now=2.0)
    assert buf.next_frame() == b"ab"
    assert buf.incomplete_since == 1.0  # "c" came with the first chunk
    buf.receive_data(b"e\x00", now=3.0)
    assert buf.next_frame() == b"cde"
    assert buf.incomplete_since == 3.0  # the half length prefix came at 3.0
    buf.receive_data(b"\x01z", now=4.0)
    assert buf.next_frame() == b"z"
    assert buf.incomplete_since is None


def test_an_oversized_length_still_raises() -> None:
    buf = FrameBuffer(max_frame_bytes=16)
    buf.receive_data(b"\x00\x11", now=1.0)
    with pytest.raises(FramingError, match="frame length 17 exceeds the maximum 16"):
        buf.next_frame()
