"""Fuzz target: the network codec (`decode_network`, `salvage_network`, `network_mac_payload`, then
encode → decode).

Input: the bytes of a network message from the MTI on (what the network frame carries after its length).
Contract: `decode_network` returns a Message or raises `DecodeError` naming the field and a byte position
inside the input; `salvage_network` never raises and, when the message decodes, returns the same Message; a
decoded Message re-encodes, and the re-encoded bytes decode to the same Message (and equal the input, up to
the case of hex digits in the bitmaps and binary fields, and a secondary bitmap with no field above 64, which
the encoder does not write).

Run: `python -m tests.fuzz.network_codec -runs=100000 scratch/ tests/fuzz/corpus/network_codec/`
"""

from __future__ import annotations

from pathlib import Path

from posgate.errors import DecodeError
from posgate.iso8583.codec import (
    DIALECTS,
    decode,
    decode_network,
    encode_network,
    network_mac_payload,
    salvage_network,
)
from posgate.iso8583.content import kind_of
from tests.fuzz._harness import check_refusal, fuzz


def _hex_upper(data: bytes, offsets: dict[str, int]) -> bytes:
    """The input with its bitmaps and binary fields in uppercase hex, as the encoder writes them (the decoder
    accepts lowercase hex and gives uppercase: the spec says uppercase, the MAC covers the bytes as sent)."""
    dialect = DIALECTS["network"]
    out = bytearray(
        data[:4] + data[4:20].upper() + (data[20:36].upper() if data[4:5] in b"89ABCDEFabcdef" else b"")
    )
    out += data[len(out) :]
    for key, start in offsets.items():
        fspec = dialect.spec[key]
        if kind_of(dialect.field_types, key, fspec) == "b":
            begin = start + fspec["len_type"]
            size = int(data[start:begin]) if fspec["len_type"] else fspec["max_len"]
            out[begin : begin + size] = data[begin : begin + size].upper()
    return bytes(out)


def one_input(data: bytes) -> None:
    salvaged = salvage_network(data)
    assert isinstance(salvaged, dict), salvaged
    try:
        msg, offsets = decode(data, DIALECTS["network"])
    except DecodeError as error:
        check_refusal(error, len(data))
        return
    assert salvaged == msg, (salvaged, msg)
    encoded = encode_network(msg)
    assert decode_network(encoded) == msg
    secondary_unused = data[4:5] in b"89ABCDEFabcdef" and not any(int(k) > 64 for k in msg if k != "t")
    assert encoded == _hex_upper(data, offsets) or secondary_unused, (encoded, data)
    try:
        covered = network_mac_payload(data)
    except DecodeError as error:  # no MAC as the last field (64, or 128 after a secondary bitmap)
        check_refusal(error, len(data))
        return
    mac_field = "128" if "128" in msg else "64"
    assert mac_field in msg and covered == data[:-16] and msg[mac_field] == data[-16:].decode().upper(), (
        covered
    )


if __name__ == "__main__":
    fuzz(Path(__file__).stem, one_input)
