"""The network dialect is pyiso8583's `default_ascii`: an issuer using the bare library interoperates."""

from __future__ import annotations

import copy

import iso8583
import iso8583.specs
import psec
import pytest

from posgate.errors import DecodeError
from posgate.iso8583 import (
    NETWORK_MTIS,
    NETWORK_SPEC,
    Message,
    build_network_frame,
    decode_network,
    encode_network,
    encode_network_with_mac,
    network_mac_payload,
    response_mti,
)
from posgate.security.network_mac import network_mac, verify_network_mac

ZAK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")

AUTHORIZATION: Message = {
    "t": "0100",
    "2": "6229990000000012",
    "3": "030000",
    "4": "000000010000",
    "7": "1126101530",
    "11": "000001",
    "12": "101530",
    "13": "1126",
    "14": "3012",
    "22": "051",
    "23": "001",
    "25": "06",
    "32": "00010000",
    "35": "6229990000000012=3012101136169110300",
    "37": "000000000001",
    "41": "10000001",
    "42": "123456789012345",
    "49": "156",
    "52": "3D87C8B8FA17C67C",
    "55": "9F2608A40C02DEFB441C8A",
}
FINANCIAL_RESPONSE: Message = {
    "t": "0210",
    "2": "6229990000000012",
    "3": "000000",
    "4": "000000001234",
    "7": "1126101530",
    "11": "000002",
    "37": "000000000002",
    "38": "654321",
    "39": "00",
    "41": "10000001",
    "42": "123456789012345",
    "49": "156",
    "54": "1002156C000000123456",
    "55": "910AD9468E8D054FEA293030",
}
REVERSAL: Message = {
    "t": "0420",
    "2": "6229990000000012",
    "3": "000000",
    "4": "000000001234",
    "7": "1126101540",
    "11": "000003",
    "32": "00010000",
    "37": "000000000002",
    "39": "98",
    "41": "10000001",
    "42": "123456789012345",
    "49": "156",
    "90": "020000000211261015300000001000000000000000",
}
ECHO: Message = {"t": "0800", "7": "1126101530", "11": "000004", "70": "301"}
SIGN_ON_RESPONSE: Message = {"t": "0810", "7": "1126101530", "11": "000005", "39": "00", "70": "001"}

MESSAGES = {
    "0100": AUTHORIZATION,
    "0210": FINANCIAL_RESPONSE,
    "0420": REVERSAL,
    "0800": ECHO,
    "0810": SIGN_ON_RESPONSE,
}


def test_network_spec_is_pyiso8583_default_ascii_and_a_copy():
    assert iso8583.specs.default_ascii == NETWORK_SPEC
    assert NETWORK_SPEC is not iso8583.specs.default_ascii
    assert NETWORK_SPEC["64"] is not iso8583.specs.default_ascii["64"]
    assert NETWORK_SPEC["52"]["max_len"] == NETWORK_SPEC["64"]["max_len"] == 16  # 8 bytes as hex
    assert NETWORK_SPEC["55"]["max_len"] == 510  # 255 bytes as hex
    assert NETWORK_SPEC["90"]["max_len"] == 4 + 6 + 10 + 11 + 11


@pytest.mark.parametrize("msg", MESSAGES.values(), ids=MESSAGES.keys())
def test_round_trip(msg: Message):
    before = dict(msg)
    encoded = encode_network(msg)
    assert msg == before
    assert decode_network(encoded) == msg


@pytest.mark.parametrize("msg", MESSAGES.values(), ids=MESSAGES.keys())
def test_bare_pyiso8583_encodes_what_we_decode(msg: Message):
    raw, _ = iso8583.encode(copy.deepcopy(msg), iso8583.specs.default_ascii)
    assert decode_network(bytes(raw)) == msg
    assert encode_network(msg) == bytes(raw)


@pytest.mark.parametrize("msg", MESSAGES.values(), ids=MESSAGES.keys())
def test_bare_pyiso8583_decodes_what_we_encode(msg: Message):
    decoded, _ = iso8583.decode(encode_network(msg), iso8583.specs.default_ascii)
    assert {k: v for k, v in decoded.items() if k not in ("p", "1")} == msg


def test_echo_carries_a_secondary_bitmap_for_field_70():
    encoded = encode_network(ECHO)
    assert encoded[:4] == b"0800"
    assert encoded[4:20] == b"8220000000000000"  # bits 1 (secondary bitmap), 7 and 11
    assert encoded[20:36] == b"0400000000000000"


@pytest.mark.parametrize("request_mti", sorted(NETWORK_MTIS))
def test_every_exchange_and_its_response(request_mti: str):
    assert response_mti(request_mti) == NETWORK_MTIS[request_mti]
    for mti in (request_mti, NETWORK_MTIS[request_mti]):
        msg = {"t": mti, "11": "000001"}
        assert decode_network(encode_network(msg)) == msg


def test_mac_covers_mti_to_end_of_field_63_as_16_hex_characters():
    encoded = encode_network_with_mac(AUTHORIZATION, lambda data: network_mac(ZAK, data))
    msg = decode_network(encoded)
    payload = network_mac_payload(encoded)
    assert encoded == payload + msg["64"].encode("ascii")
    assert payload[20:] == encode_network(AUTHORIZATION)[20:]  # same fields, bitmap differs by bit 64
    assert msg["64"] == network_mac(ZAK, payload).hex().upper()
    assert verify_network_mac(ZAK, payload, bytes.fromhex(msg["64"]))


def test_mac_is_field_128_and_covers_field_90_when_the_message_has_a_secondary_bitmap():
    """network-8583.md: the MAC is the last field — 128 when there is a secondary bitmap, 64 then absent —
    over every byte before it, bitmaps included. (It was field 64, before field 90: 90 was not covered.)"""
    encoded = encode_network_with_mac(REVERSAL, lambda data: network_mac(ZAK, data))
    msg = decode_network(encoded)
    assert "64" not in msg and msg["90"] == REVERSAL["90"]
    assert network_mac_payload(encoded) == encoded[:-16]
    assert encoded.endswith(msg["128"].encode("ascii"))
    # what an issuer written with bare pyiso8583 and psec sees: bit 64 clear, bits 90 and 128 set
    raw, _ = iso8583.decode(encoded, iso8583.specs.default_ascii)
    assert "64" not in raw and raw["1"][-1] == "1" and raw["90"] == REVERSAL["90"]
    retail_mac = psec.mac.generate_retail_mac(ZAK[:8], ZAK[8:], encoded[:-16], padding=1)
    assert raw["128"] == retail_mac.hex().upper()


def test_a_change_to_field_90_breaks_the_mac():
    encoded = encode_network_with_mac(REVERSAL, lambda data: network_mac(ZAK, data))
    other = (REVERSAL["90"][:4] + "000003" + REVERSAL["90"][10:]).encode("ascii")  # another STAN
    tampered = encoded.replace(REVERSAL["90"].encode("ascii"), other)
    assert tampered != encoded
    mac = bytes.fromhex(decode_network(tampered)["128"])
    assert not verify_network_mac(ZAK, network_mac_payload(tampered), mac)


def test_a_mac_in_field_64_followed_by_field_90_is_not_a_mac():
    old_layout = encode_network({**REVERSAL, "64": network_mac(ZAK, b"").hex().upper()})
    with pytest.raises(DecodeError) as caught:
        network_mac_payload(old_layout)
    assert (caught.value.field, caught.value.pos) == (128, 4)
    assert str(caught.value) == (
        "field 128: no MAC as the last field of the message (64 without a secondary bitmap, else 128)"
        " at byte 4"
    )


def test_a_message_with_both_mac_fields_has_no_mac():
    both = encode_network({**ECHO, "64": "0" * 16, "128": "0" * 16})
    with pytest.raises(DecodeError):
        network_mac_payload(both)


def test_network_frame_is_a_2_byte_length_and_the_message():
    encoded = encode_network(ECHO)
    assert build_network_frame(encoded) == len(encoded).to_bytes(2, "big") + encoded
