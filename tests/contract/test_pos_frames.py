"""The POS dialect byte for byte: the public frame of pos-8583.md, and a round trip of every message type."""

from __future__ import annotations

import pytest

from posgate.iso8583 import (
    POS_MTIS,
    Field60,
    Field61,
    Message,
    build_pos_frame,
    decode_pos,
    encode_pos,
    encode_pos_with_mac,
    mac_payload,
    parse_field60,
    parse_field61,
    response_header,
    response_mti,
    response_tpdu,
    split_pos_frame,
)
from posgate.security.pos_mac import cup_ecb_mac

PUBLIC_FRAME = bytes.fromhex(
    "007F600003000060321032007202003020048000C08015000000000000001234000002030099303030303030303139353237"
    "313831383232313738373531353600192600000100060000000000435F01123238343431323334353637383930313233345F"
    "03063136303033365F04063230303832365C0230314233413039324145"
)
PUBLIC_MAK = bytes.fromhex("0723C80DB5F4CD3D0723C80DB5F4CD3D")

PAN_19 = "6229990000000012345"
TRACK2 = "6229990000000012D3012101136169110300"


def test_public_frame_splits_into_tpdu_header_and_message():
    assert int.from_bytes(PUBLIC_FRAME[:2], "big") == len(PUBLIC_FRAME) - 2
    frame = split_pos_frame(PUBLIC_FRAME[2:])
    assert frame.tpdu == bytes.fromhex("6000030000")
    assert frame.header == bytes.fromhex("603210320072")
    assert frame.payload[:2] == b"\x02\x00"


def test_public_frame_decodes_to_its_fields():
    msg = decode_pos(split_pos_frame(PUBLIC_FRAME[2:]).payload)
    assert msg == {
        "t": "0200",
        "3": "000000",
        "4": "000000001234",
        "11": "000002",
        "22": "030",
        "25": "99",
        "41": "00000001",
        "42": "952718182217875",
        "49": "156",
        "60": "2600000100060000000",
        "62": "5F01123238343431323334353637383930313233345F03063136303033365F04063230303832365C023031",
        "64": "4233413039324145",  # ASCII "B3A092AE"
    }
    assert bytes.fromhex(msg["64"]) == b"B3A092AE"
    assert parse_field60(msg["60"]) == Field60("26", "000001", "000", "6", "0", "000000")


def test_public_frame_reencodes_to_the_same_bytes():
    frame = split_pos_frame(PUBLIC_FRAME[2:])
    payload = encode_pos(decode_pos(frame.payload))
    assert payload == frame.payload
    assert build_pos_frame(frame.tpdu, frame.header, payload) == PUBLIC_FRAME


def test_public_frame_mac_covers_mti_up_to_field_64():
    payload = split_pos_frame(PUBLIC_FRAME[2:]).payload
    assert mac_payload(payload) == payload[:-8]
    assert cup_ecb_mac(PUBLIC_MAK, mac_payload(payload)) == b"B3A092AE"


def test_encode_with_mac_reproduces_the_public_frame():
    frame = split_pos_frame(PUBLIC_FRAME[2:])
    msg = decode_pos(frame.payload)
    del msg["64"]
    seen: list[bytes] = []

    def mac_fn(data: bytes) -> bytes:
        seen.append(data)
        return cup_ecb_mac(PUBLIC_MAK, data)

    assert encode_pos_with_mac(msg, mac_fn) == frame.payload
    assert seen == [frame.payload[:-8]]
    assert "64" not in msg  # the caller's dict is left alone


def test_response_tpdu_and_header():
    frame = split_pos_frame(PUBLIC_FRAME[2:])
    assert response_tpdu(frame.tpdu) == bytes.fromhex("6000000003")
    assert response_header(frame.header) == bytes.fromhex("603210320072")
    assert response_header(frame.header, 3) == bytes.fromhex("603213320072")


SIGN_IN: Message = {
    "t": "0800",
    "11": "000001",
    "41": "10000001",
    "42": "123456789012345",
    "60": "00000001003",
    "63": "01 ",
}
SIGN_IN_RESPONSE: Message = {
    "t": "0810",
    "11": "000001",
    "12": "101530",
    "13": "1126",
    "32": "00010000",
    "37": "000000000001",
    "39": "00",
    "41": "10000001",
    "42": "123456789012345",
    "60": "00000001003",
    "62": "0123456789ABCDEF0123456789ABCDEF89ABCDEFFEDCBA9876543210FEDCBA987654321001234567",
}
ECHO_RESPONSE: Message = {
    "t": "0830",
    "11": "000002",
    "39": "00",
    "41": "10000001",
    "42": "123456789012345",
    "60": "00000001301",
}
SALE: Message = {
    "t": "0200",
    "2": "6229990000000012",
    "3": "000000",
    "4": "000000001234",
    "11": "000003",
    "14": "3012",
    "22": "051",
    "23": "001",
    "25": "00",
    "26": "12",
    "35": TRACK2,
    "41": "10000001",
    "42": "123456789012345",
    "49": "156",
    "52": "3D87C8B8FA17C67C",
    "53": "2600000000000000",
    "55": "9F2608A40C02DEFB441C8A9F2701809F360200015F340101",
    "60": "22000001000501",
    "64": "0000000000000000",
}
SALE_RESPONSE: Message = {
    "t": "0210",
    "2": "6229990000000012",
    "3": "000000",
    "4": "000000001234",
    "11": "000003",
    "12": "101530",
    "13": "1126",
    "14": "3012",
    "15": "1126",
    "25": "00",
    "32": "00010000",
    "37": "000000000003",
    "38": "123456",
    "39": "00",
    "41": "10000001",
    "42": "123456789012345",
    "44": "0100000 0200000",
    "49": "156",
    "55": "910A0102030405060708303000",
    "60": "22000001000",
    "63": "CUP",
    "64": "0000000000000000",
}
BALANCE_RESPONSE: Message = {
    "t": "0210",
    "3": "310000",
    "11": "000004",
    "39": "00",
    "41": "10000001",
    "42": "123456789012345",
    "54": "1002156C000000123456",
    "60": "01000001000",
}
VOID: Message = {
    "t": "0200",
    "2": "6229990000000012",
    "3": "200000",
    "4": "000000001234",
    "11": "000005",
    "22": "021",
    "25": "00",
    "35": TRACK2,
    "37": "000000000003",
    "41": "10000001",
    "42": "123456789012345",
    "49": "156",
    "60": "23000001000",
    "61": "000001000003",
    "64": "0000000000000000",
}
REFUND: Message = {
    "t": "0220",
    "2": "6229990000000012",
    "3": "200000",
    "4": "000000000500",
    "11": "000006",
    "22": "021",
    "25": "00",
    "37": "000000000003",
    "41": "10000001",
    "42": "123456789012345",
    "49": "156",
    "60": "25000001000",
    "61": "0000010000031126",
    "64": "0000000000000000",
}
PRE_AUTH: Message = {
    "t": "0100",
    "2": PAN_19,
    "3": "030000",
    "4": "000000010000",
    "11": "000007",
    "22": "011",
    "25": "06",
    "41": "10000001",
    "42": "123456789012345",
    "49": "156",
    "59": "31.2304,121.4737",
    "60": "10000001000",
    "64": "0000000000000000",
}
REVERSAL: Message = {
    "t": "0400",
    "2": "6229990000000012",
    "3": "000000",
    "4": "000000001234",
    "11": "000003",
    "22": "021",
    "25": "00",
    "39": "98",
    "41": "10000001",
    "42": "123456789012345",
    "49": "156",
    "60": "22000001000",
    "64": "0000000000000000",
}
SETTLEMENT: Message = {
    "t": "0500",
    "11": "000008",
    "41": "10000001",
    "42": "123456789012345",
    "49": "156",
    "48": "00000000123400100000000050000100000000000000000000000000000000",
    "60": "00000001201",
    "63": "001",
}
BATCH_UPLOAD: Message = {
    "t": "0320",
    "11": "000009",
    "41": "10000001",
    "42": "123456789012345",
    "48": "0100006229990000000012000000001234",
    "60": "00000001201",
}
BATCH_END: Message = {
    "t": "0320",
    "11": "000010",
    "41": "10000001",
    "42": "123456789012345",
    "48": "0001",
    "60": "00000001207",
}
TRACK3: Message = {
    "t": "0200",
    "3": "000000",
    "4": "000000000001",
    "11": "000011",
    "32": "12345",
    "36": "996229990000000012D156156000000000000000000000011414144912DD000000000000D00000000000000",
    "41": "10000001",
    "42": "123456789012345",
}

MESSAGES = {
    "sign-in 0800": SIGN_IN,
    "sign-in response 0810": SIGN_IN_RESPONSE,
    "echo response 0830": ECHO_RESPONSE,
    "sale 0200": SALE,
    "sale response 0210": SALE_RESPONSE,
    "balance response 0210": BALANCE_RESPONSE,
    "void 0200": VOID,
    "refund 0220": REFUND,
    "pre-authorization 0100": PRE_AUTH,
    "reversal 0400": REVERSAL,
    "settlement 0500": SETTLEMENT,
    "batch upload 0320": BATCH_UPLOAD,
    "batch end 0320": BATCH_END,
    "track 3": TRACK3,
}


@pytest.mark.parametrize("msg", MESSAGES.values(), ids=MESSAGES.keys())
def test_every_message_type_round_trips(msg: Message):
    copy = dict(msg)
    encoded = encode_pos(msg)
    assert msg == copy  # encode does not mutate its input
    assert decode_pos(encoded) == msg
    assert encode_pos(decode_pos(encoded)) == encoded


@pytest.mark.parametrize("request_mti", sorted(POS_MTIS))
def test_every_mti_of_the_messages_table_and_its_response(request_mti: str):
    assert response_mti(request_mti) == POS_MTIS[request_mti]
    for mti in (request_mti, POS_MTIS[request_mti]):
        msg = {"t": mti, "11": "000001", "41": "10000001"}
        assert decode_pos(encode_pos(msg)) == msg


def test_sign_in_response_carries_40_bytes_of_keys():
    encoded = encode_pos(SIGN_IN_RESPONSE)
    assert len(bytes.fromhex(SIGN_IN_RESPONSE["62"])) == 40
    assert b"\x00\x40" + bytes.fromhex(SIGN_IN_RESPONSE["62"]) in encoded


def field_bytes(field: str, value: str) -> bytes:
    """The encoded field alone: the message minus MTI (2) and primary bitmap (8)."""
    return encode_pos({"t": "0200", field: value})[10:]


def test_odd_length_pan_is_left_aligned_and_padded_with_0():
    assert field_bytes("2", PAN_19) == bytes.fromhex("1962299900000000123450")
    assert field_bytes("2", "6229990000000012") == bytes.fromhex("166229990000000012")


def test_field_22_is_left_aligned_and_field_23_right_aligned():
    assert field_bytes("22", "021") == bytes.fromhex("0210")
    assert field_bytes("23", "001") == bytes.fromhex("0001")


def test_track_2_writes_the_separator_as_nibble_d():
    assert field_bytes("35", TRACK2) == bytes.fromhex("36" + TRACK2)
    odd_track = PAN_19 + "D30121011361691103"
    assert len(odd_track) == 37
    assert field_bytes("35", odd_track) == bytes.fromhex("37" + odd_track + "0")
    assert decode_pos(encode_pos({"t": "0200", "35": odd_track}))["35"] == odd_track


def test_ll_fields_count_digits_and_lll_binary_fields_count_bytes():
    assert field_bytes("60", "22000001000") == bytes.fromhex("0011220000010000")
    assert field_bytes("48", "0001") == bytes.fromhex("00040001")
    assert field_bytes("55", "9F2701") == bytes.fromhex("00039F2701")
    assert field_bytes("54", "1002156C000000123456") == bytes.fromhex("0020") + b"1002156C000000123456"
    assert field_bytes("44", "ACQ") == bytes.fromhex("03") + b"ACQ"
    assert field_bytes("4", "000000001234") == bytes.fromhex("000000001234")


def test_binary_fields_accept_lowercase_hex_and_decode_uppercase():
    assert decode_pos(encode_pos({"t": "0200", "52": "3d87c8b8fa17c67c"}))["52"] == "3D87C8B8FA17C67C"


def test_field_60_and_61_helpers():
    assert parse_field60("00000001003") == Field60("00", "000001", "003")
    assert parse_field60("22000001").nmc == ""
    assert Field60("22", "000001", "000", "5", "0", "0000").encode() == "22000001000500000"
    assert parse_field61("000001000003") == Field61("000001", "000003")
    assert parse_field61("0000010000031126") == Field61("000001", "000003", "1126")
    assert parse_field61("000001000003112699").rest == "99"
    for value in ("00000001003", "2600000100060000000", "22000001"):
        assert parse_field60(value).encode() == value
