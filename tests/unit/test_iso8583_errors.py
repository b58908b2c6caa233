"""Every bad input gets one exact line naming the field and the byte, and never shows card data."""

from __future__ import annotations

import pytest

from posgate.errors import DecodeError, EncodeError, FramingError
from posgate.iso8583 import (
    FrameBuffer,
    build_pos_frame,
    decode_network,
    decode_pos,
    describe,
    encode_pos,
    encode_pos_with_mac,
    mac_payload,
    response_header,
    salvage_pos,
    split_pos_frame,
)

# The public sale of pos-8583.md, from the MTI on. Fields start at: 3 @10, 4 @13, 11 @19, 22 @22, 25 @24,
# 41 @25, 42 @33, 49 @48, 60 @51 (data @53), 62 @63 (data @65), 64 @108; 116 bytes in all.
SALE = bytes.fromhex(
    "02003020048000C08015000000000000001234000002030099303030303030303139353237313831383232313738373531353600"
    "192600000100060000000000435F01123238343431323334353637383930313233345F03063136303033365F0406323030383236"
    "5C0230314233413039324145"
)
PAN = "6229990000000012"
TPDU = bytes.fromhex("6000030000")
HEADER = bytes.fromhex("603210320072")


def patched(data: bytes, index: int, value: int) -> bytes:
    out = bytearray(data)
    out[index] = value
    return bytes(out)


def raises(exc: type[Exception], fn, *args) -> Exception:
    with pytest.raises(exc) as info:
        fn(*args)
    return info.value


def test_non_digit_in_field_4():
    err = raises(DecodeError, decode_pos, patched(SALE, 16, 0x0A))
    assert str(err) == "field 4: expected 12 digits, got '0000000A1234' at byte 13"
    assert (err.field, err.pos, err.response_code) == (4, 13, "30")
    err = raises(EncodeError, encode_pos, {"t": "0200", "4": "ABC"})
    assert str(err) == "field 4: expected 12 digits, got 'ABC' at byte 10"
    assert (err.field, err.pos, err.response_code) == (4, 10, "96")


def test_truncated_message():
    err = raises(DecodeError, decode_pos, SALE[:-3])
    assert str(err) == "field 64: truncated, expected 8 bytes, got 5 at byte 108"
    assert (err.field, err.pos) == (64, 108)
    err = raises(DecodeError, decode_pos, SALE[:56])
    assert str(err) == "field 60: truncated, expected 19 digits, got 6 at byte 53"
    assert (err.field, err.pos) == (60, 53)
    err = raises(DecodeError, decode_pos, SALE[:52])
    assert str(err) == "field 60: truncated length prefix, expected 2 bytes, got 1 at byte 51"
    err = raises(DecodeError, decode_pos, SALE[:5])
    assert str(err) == "bitmap: truncated, expected 8 bytes, got 3 at byte 2"
    assert (err.field, err.pos) == ("bitmap", 2)
    err = raises(DecodeError, decode_pos, SALE[:1])
    assert str(err) == "MTI: truncated, expected 2 bytes, got 1 at byte 0"


def test_bitmap_claims_a_field_with_no_data():
    err = raises(DecodeError, decode_pos, SALE[:-8])
    assert str(err) == "field 64: set in the bitmap but the message ends at byte 108"
    assert (err.field, err.pos) == (64, 108)
    err = raises(DecodeError, decode_pos, SALE[:63])
    assert str(err) == "field 62: set in the bitmap but the message ends at byte 63"


def test_bytes_after_the_last_field():
    err = raises(DecodeError, decode_pos, SALE + b"\x00\x00")
    assert str(err) == "bitmap: 2 bytes after the last field (field 64) at byte 116"
    assert (err.field, err.pos) == ("bitmap", 116)


def test_unknown_mti():
    err = raises(DecodeError, decode_pos, b"\x07\x00" + SALE[2:])
    assert str(err) == "MTI: unknown message type '0700' for the POS dialect at byte 0"
    assert (err.field, err.pos) == ("t", 0)
    err = raises(DecodeError, decode_network, b"0400" + b"0" * 16)
    assert str(err) == "MTI: unknown message type '0400' for the network dialect at byte 0"
    err = raises(EncodeError, encode_pos, {"t": "02X0"})
    assert str(err) == "MTI: expected 4 digits, got '02X0' at byte 0"
    assert encode_pos({"t": "0710", "39": "30"})[:2] == b"\x07\x10"  # answering an unknown MTI with 30
    err = raises(EncodeError, encode_pos, {"3": "000000"})
    assert str(err) == "MTI: missing at byte 0"


def test_field_not_in_the_dialect():
    with_field_5 = patched(encode_pos({"t": "0200", "3": "000000"}), 2, 0x28)
    err = raises(DecodeError, decode_pos, with_field_5)
    assert str(err) == "field 5: set in the bitmap but not defined in the POS dialect at byte 2"
    assert (err.field, err.pos) == (5, 2)
    err = raises(EncodeError, encode_pos, {"t": "0200", "5": "000000000001"})
    assert str(err) == "field 5: not defined in the POS dialect at byte 2"


def test_bad_pad_length_and_bcd():
    err = raises(DecodeError, decode_pos, patched(SALE, 23, 0x01))
    assert str(err) == "field 22: expected the pad nibble 0 at byte 22"
    pan_msg = encode_pos({"t": "0200", "2": PAN})
    err = raises(DecodeError, decode_pos, patched(pan_msg, 10, 0x25))
    assert str(err) == "field 2: length 25 exceeds the maximum 19 digits at byte 10"
    err = raises(DecodeError, decode_pos, patched(pan_msg, 10, 0x1A))
    assert str(err) == "field 2: length prefix is not BCD at byte 10"


def test_card_data_and_pin_blocks_are_never_quoted():
    err = raises(DecodeError, decode_pos, patched(encode_pos({"t": "0200", "2": PAN}), 11, 0xA2))
    assert str(err) == "field 2: expected up to 19 digits, got 16 characters (not shown) at byte 11"
    err = raises(EncodeError, encode_pos, {"t": "0200", "2": PAN + "X"})
    assert PAN not in str(err) and "622999" not in str(err)
    err = raises(EncodeError, encode_pos, {"t": "0200", "35": PAN + "=3012101"})
    assert str(err) == (
        "field 35: expected up to 37 digits with a 'D' separator, got 24 characters (not shown) at byte 11"
    )
    err = raises(EncodeError, encode_pos, {"t": "0200", "52": "3D87C8B8FA17C67"})
    assert str(err) == "field 52: expected 8 bytes as hex digits, got 15 characters (not shown) at byte 10"
    err = raises(EncodeError, encode_pos, {"t": "0200", "62": "0123456789ABCDEFG"})
    assert "0123" not in str(err)


def test_fixed_text_length_and_types_on_encode():
    err = raises(EncodeError, encode_pos, {"t": "0200", "41": "1000001"})
    assert str(err) == "field 41: expected 8 characters, got '1000001' at byte 10"
    err = raises(EncodeError, encode_pos, {"t": "0200", "41": 10000001})
    assert str(err) == "field 41: expected a str, got int at byte 10"
    err = raises(EncodeError, encode_pos, {"t": "0200", "3": "000000", "4": "00000000123"})
    assert (str(err), err.pos) == ("field 4: expected 12 digits, got '00000000123' at byte 13", 13)


def test_network_content():
    err = raises(DecodeError, decode_network, b"02004000000000000000" + b"16622999000000001X")
    assert str(err) == "field 2: expected up to 19 digits, got 16 characters (not shown) at byte 22"
    err = raises(DecodeError, decode_network, b"0200G000000000000000")
    assert str(err) == "bitmap: expected hex digits at byte 4"


def test_mac_errors():
    err = raises(EncodeError, encode_pos_with_mac, {"t": "0200", "3": "000000"}, lambda data: b"1234")
    assert str(err) == "field 64: the MAC function returned 4 bytes, expected 8 at byte 13"
    err = raises(DecodeError, mac_payload, encode_pos({"t": "0200", "3": "000000"}))
    assert str(err) == "field 64: not in the bitmap, the message carries no MAC at byte 2"


def test_salvage_keeps_what_could_be_read_for_a_format_error_response():
    assert salvage_pos(SALE[:40]) == {
        "t": "0200",
        "3": "000000",
        "4": "000000001234",
        "11": "000002",
        "22": "030",
        "25": "99",
        "41": "00000001",
    }
    assert salvage_pos(patched(SALE, 16, 0x0A))["41"] == "00000001"
    assert "4" not in salvage_pos(patched(SALE, 16, 0x0A))
    assert salvage_pos(b"\x07") == {}


# ---------------------------------------------------------------------------------------------- framing


def test_frame_length_over_the_maximum():
    buf = FrameBuffer()
    buf.receive_data(b"\x08\x01" + b"\x00" * 10)
    err = raises(FramingError, buf.next_frame)
    assert str(err) == "length: frame length 2049 exceeds the maximum 2048 at byte 0"
    assert (err.field, err.pos, err.response_code) == ("length", 0, "30")
    assert raises(FramingError, buf.next_frame) is err  # the stream is lost for good
    small = FrameBuffer(max_frame_bytes=16)
    small.receive_data(b"\x00\x11")
    err = raises(FramingError, small.next_frame)
    assert str(err) == "length: frame length 17 exceeds the maximum 16 at byte 0"


def test_frame_length_zero():
    buf = FrameBuffer()
    buf.receive_data(b"\x00\x00\x00\x01x")
    assert str(raises(FramingError, buf.next_frame)) == "length: frame length is 0 at byte 0"


def test_frame_fed_byte_by_byte():
    frame = build_pos_frame(TPDU, HEADER, SALE)
    buf = FrameBuffer()
    for byte in frame[:-1]:
        buf.receive_data(bytes([byte]))
        assert buf.next_frame() is None
    assert buf.pending_bytes == len(frame) - 1
    buf.receive_data(frame[-1:])
    assert buf.next_frame() == frame[2:]
    assert buf.next_frame() is None
    assert buf.pending_bytes == 0


def test_two_pipelined_frames_in_one_chunk():
    first = build_pos_frame(TPDU, HEADER, SALE)
    second = build_pos_frame(TPDU, HEADER, b"\x08\x00" + bytes(8))
    buf = FrameBuffer()
    buf.receive_data(first + second + second[:3])
    assert buf.next_frame() == first[2:]
    assert buf.next_frame() == second[2:]
    assert buf.next_frame() is None
    assert buf.pending_bytes == 3
    buf.receive_data(second[3:])
    assert split_pos_frame(buf.next_frame()).payload == b"\x08\x00" + bytes(8)


def test_pos_frame_errors():
    err = raises(FramingError, split_pos_frame, bytes.fromhex("6000030000603210320072"))
    assert str(err) == "frame: body is 11 bytes, expected at least 13 (TPDU, header, MTI) at byte 0"
    err = raises(FramingError, split_pos_frame, bytes.fromhex("61000300006032103200720200"))
    assert str(err) == "TPDU: expected id 0x60, got 0x61 at byte 0"
    assert err.field == "tpdu"
    err = raises(EncodeError, build_pos_frame, b"\x60\x00", bytes(6), b"")
    assert str(err) == "TPDU: expected 5 bytes, got 2"
    err = raises(EncodeError, response_header, bytes(6), 16)
    assert str(err) == "header: processing requirement must be 0-15, got 16 at byte 2"


# ---------------------------------------------------------------------------------------------- describe


def test_describe_bad_hex():
    err = raises(DecodeError, describe, "0200 30zz", "pos", False, False)
    assert str(err) == "hex: expected hex digits, got 'z' at byte 3"
    assert err.field == "hex"
    assert str(raises(DecodeError, describe, "020", "pos", False, False)) == (
        "hex: odd number of hex digits (3) at byte 1"
    )


def test_describe_positions_count_from_the_start_of_the_frame():
    frame = build_pos_frame(TPDU, HEADER, patched(SALE, 16, 0x0A))
    err = raises(DecodeError, describe, frame.hex(), "pos", True, False)
    assert str(err) == "field 4: expected 12 digits, got '0000000A1234' at byte 26"
    assert (err.field, err.pos) == (4, 26)
    err = raises(FramingError, describe, frame.hex()[:-2], "pos", True, False)
    assert str(err) == "length: prefix says 127 bytes, 126 follow at byte 0"
