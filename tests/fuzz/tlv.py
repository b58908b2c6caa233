"""Fuzz target: field 55, EMV BER-TLV (`decode_tlv`, `encode_tlv`, the ARQC input built from the tags, and the
terminal's check of an ARPC in a response's field 55).

Input: the bytes of a field 55.
Contract: `decode_tlv` returns `{tag: value}` or raises `DecodeError` (field 55, a position inside the input);
the decoded tags re-encode and decode to the same tags; `arqc_data` builds the ARQC input or raises
`SecurityError`; the terminal's `arpc_verdict` on the hex of the input returns True, False or None and never
raises.
"""

from __future__ import annotations

from pathlib import Path

from posgate.cards.tlv import decode_tlv, encode_tlv
from posgate.errors import DecodeError, SecurityError
from posgate.security.emv import arqc_data
from posgate.terminal.chip import IccRequest, arpc_verdict
from tests.fuzz._harness import check_refusal, fuzz

_ICC = IccRequest(tags={}, arqc=bytes(8), session_key=bytes(range(16)), atc=1)


def one_input(data: bytes) -> None:
    assert arpc_verdict(_ICC, data.hex().upper(), "00") in (True, False, None)
    try:
        tags = decode_tlv(data)
    except DecodeError as error:
        check_refusal(error, len(data), fields=[55])
        return
    assert all(isinstance(t, str) and isinstance(v, bytes) for t, v in tags.items()), tags
    assert decode_tlv(encode_tlv(tags)) == tags
    try:
        arqc_data(tags)
    except SecurityError as error:
        check_refusal(error)


if __name__ == "__main__":
    fuzz(Path(__file__).stem, one_input)
