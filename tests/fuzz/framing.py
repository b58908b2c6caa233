"""Fuzz target: the TCP framing (`FrameBuffer`, `split_pos_frame`, `build_pos_frame`, the response parts).

Input: byte 0 chooses how the stream is cut into reads (1-16 bytes each, or all at once) and a small maximum
frame size (so the over-length refusal is reached); the rest is the byte stream a POS connection receives.
Contract: however the stream is cut, `FrameBuffer` yields the same frames, then either waits for more bytes
or raises the same `FramingError` (field `length`, byte 0), and keeps raising it; every frame body either
splits into TPDU, header and message or raises `FramingError`; a split frame rebuilds to its exact bytes;
the response TPDU and header never raise on a split frame.
"""

from __future__ import annotations

from pathlib import Path

from posgate.errors import FramingError
from posgate.iso8583.framing import (
    LENGTH_PREFIX_LEN,
    MAX_FRAME_BYTES,
    FrameBuffer,
    build_pos_frame,
    response_header,
    response_tpdu,
    split_pos_frame,
)
from tests.fuzz._harness import check_refusal, fuzz


def _frames(stream: bytes, chunk: int, max_frame: int) -> tuple[list[bytes], FramingError | None, int]:
    buffer = FrameBuffer(max_frame)
    frames: list[bytes] = []
    error: FramingError | None = None
    for start in range(0, len(stream), chunk) if stream else [0]:
        buffer.receive_data(stream[start : start + chunk])
        try:
            while (body := buffer.next_frame()) is not None:
                frames.append(body)
        except FramingError as exc:
            error = exc
            break
    if error is not None:
        try:
            buffer.next_frame()
        except FramingError as again:
            assert str(again) == str(error)
        else:
            raise AssertionError("FrameBuffer forgot its FramingError")
    return frames, error, buffer.pending_bytes


def one_input(data: bytes) -> None:
    if not data:
        return
    control, stream = data[0], data[1:]
    chunk = (control & 0x0F) + 1 if control & 0x10 else max(len(stream), 1)
    max_frame = MAX_FRAME_BYTES if control & 0x20 else 16 + (control >> 6) * 64
    frames, error, pending = _frames(stream, chunk, max_frame)
    whole_frames, whole_error, whole_pending = _frames(stream, max(len(stream), 1), max_frame)
    assert frames == whole_frames
    assert (error is None) == (whole_error is None)
    if error is None:
        assert pending == whole_pending
        assert sum(LENGTH_PREFIX_LEN + len(f) for f in frames) + pending == len(stream)
    else:
        check_refusal(error, len(stream), fields=["length"])
        assert str(error) == str(whole_error)
    for body in frames:
        assert 0 < len(body) <= max_frame
        try:
            frame = split_pos_frame(body)
        except FramingError as exc:
            check_refusal(exc, len(body), fields=["frame", "tpdu"])
            continue
        rebuilt = build_pos_frame(frame.tpdu, frame.header, frame.payload)
        assert rebuilt == len(body).to_bytes(2, "big") + body
        response_tpdu(frame.tpdu)
        for requirement in (0, 3):
            assert len(response_header(frame.header, requirement)) == len(frame.header)


if __name__ == "__main__":
    fuzz(Path(__file__).stem, one_input)
