"""`describe`, the engine of `posgate decode`: masking, ordering, framed and unframed input."""

from __future__ import annotations

import doctest

import pytest

from posgate.iso8583 import (
    build_network_frame,
    build_pos_frame,
    codec,
    content,
    describe,
    encode_network,
    encode_pos,
    framing,
    private_fields,
)
from posgate.iso8583 import inspect as inspect_module

PAN = "6229990000000012"
TRACK2 = "6229990000000012D3012101136169110300"
TPDU = bytes.fromhex("6000030000")
HEADER = bytes.fromhex("603210320072")
SALE = {
    "t": "0200",
    "2": PAN,
    "3": "000000",
    "4": "000000001234",
    "11": "000001",
    "35": TRACK2,
    "41": "10000001",
    "52": "3D87C8B8FA17C67C",
}


def test_framed_pos_masks_pan_and_track():
    frame = build_pos_frame(TPDU, HEADER, encode_pos(SALE))
    assert describe(frame.hex(), "pos", framed=True, reveal=False) == {
        "mti": "0200",
        "tpdu": "6000030000",
        "header": "603210320072",
        "fields": {
            "2": "622999******0012",
            "3": "000000",
            "4": "000000001234",
            "11": "000001",
            "35": "622999******0012" + "*" * 20,
            "41": "10000001",
            "52": "3D87C8B8FA17C67C",
        },
    }


def test_reveal_shows_card_data_and_fields_are_in_numeric_order():
    text = " ".join(encode_pos(SALE).hex()[i : i + 8] for i in range(0, len(encode_pos(SALE).hex()), 8))
    result = describe(text.lower(), "pos", framed=False, reveal=True)
    assert "tpdu" not in result and "header" not in result
    assert result["fields"]["2"] == PAN
    assert result["fields"]["35"] == TRACK2
    assert list(result["fields"]) == ["2", "3", "4", "11", "35", "41", "52"]


def test_network_framed_and_unframed():
    msg = {
        "t": "0800",
        "7": "1126101530",
        "11": "000004",
        "70": "301",
        "2": "6229990000000012345",
        "35": "6229990000000012345=301210113616",
    }
    encoded = encode_network(msg)
    for text, framed in ((encoded.hex(), False), (build_network_frame(encoded).hex(), True)):
        result = describe(text, "network", framed=framed, reveal=False)
        assert result == {
            "mti": "0800",
            "fields": {
                "2": "622999*********2345",
                "7": "1126101530",
                "11": "000004",
                "35": "622999*********2345*************",
                "70": "301",
            },
        }


def test_unknown_dialect_is_a_programming_error():
    with pytest.raises(ValueError):
        describe("0800", "visa", framed=False, reveal=False)


@pytest.mark.parametrize(
    "module", [codec, content, framing, inspect_module, private_fields], ids=lambda m: m.__name__
)
def test_doctests(module):
    failed, _ = doctest.testmod(module)
    assert failed == 0
