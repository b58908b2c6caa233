"""Fuzz target: the POS codec (`decode_pos`, `salvage_pos`, `mac_payload`, then encode → decode).

Input: the bytes of a POS message from the MTI on (what `split_pos_frame` leaves as payload).
Contract: `decode_pos` returns a Message or raises `DecodeError` naming the field and a byte position inside
the input; `salvage_pos` never raises and, when the message decodes, returns the same Message; a decoded
Message re-encodes, and the re-encoded bytes decode to the same Message (and equal the input, unless the input
carried a secondary bitmap with no field above 64, which the encoder does not write).

Run: `python -m tests.fuzz.pos_codec -runs=100000 scratch/ tests/fuzz/corpus/pos_codec/`
"""

from __future__ import annotations

from pathlib import Path

from posgate.errors import DecodeError
from posgate.iso8583.codec import decode_pos, encode_pos, mac_payload, salvage_pos
from tests.fuzz._harness import check_refusal, fuzz


def one_input(data: bytes) -> None:
    salvaged = salvage_pos(data)
    assert isinstance(salvaged, dict), salvaged
    try:
        msg = decode_pos(data)
    except DecodeError as error:
        check_refusal(error, len(data))
        return
    assert salvaged == msg, (salvaged, msg)
    encoded = encode_pos(msg)
    assert decode_pos(encoded) == msg
    secondary_unused = len(data) > 2 and data[2] & 0x80 and not any(int(k) > 64 for k in msg if k != "t")
    assert encoded == data or secondary_unused, (encoded.hex(), data.hex())
    try:
        covered = mac_payload(data)
    except DecodeError as error:
        check_refusal(error, len(data))
        assert "64" not in msg
        return
    assert "64" in msg and covered == data[: len(covered)] and len(data) - len(covered) == 8


if __name__ == "__main__":
    fuzz(Path(__file__).stem, one_input)
