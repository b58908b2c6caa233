"""EMV BER-TLV wrapper for field 55."""

from __future__ import annotations

import pytest

from posgate.cards import decode_tlv, encode_tlv
from posgate.errors import DecodeError, EncodeError


def test_round_trip_keeps_order() -> None:
    tags = {"9F26": bytes.fromhex("A40C02DEFB441C8A"), "9F36": b"\x00\x01", "95": bytes(5), "9C": b"\x00"}
    data = encode_tlv(tags)
    assert data.hex().upper() == "9F2608A40C02DEFB441C8A9F36020001950500000000009C0100"
    assert decode_tlv(data) == tags
    assert list(decode_tlv(data)) == list(tags)


def test_long_value_uses_multi_byte_length() -> None:
    data = encode_tlv({"9F10": bytes(200)})
    assert data[:4] == bytes.fromhex("9F1081C8")
    assert decode_tlv(data) == {"9F10": bytes(200)}


def test_constructed_tags_are_flattened() -> None:
    assert decode_tlv(bytes.fromhex("9C0101E0055F2A020208")) == {"9C": b"\x01", "5F2A": b"\x02\x08"}


def test_repeated_tag_last_one_wins() -> None:
    assert decode_tlv(bytes.fromhex("9C01019C0102")) == {"9C": b"\x02"}


def test_decode_error_carries_field_and_offset() -> None:
    with pytest.raises(DecodeError) as info:
        decode_tlv(bytes.fromhex("9F2608A40C"))
    assert str(info.value) == "field 55: Tag value malformed, expecting 8 byte(s): tag '9F26', offset 3."
    assert info.value.field == 55
    assert info.value.pos == 3


def test_encode_errors() -> None:
    with pytest.raises(EncodeError) as info:
        encode_tlv({"XY": b"\x00"})
    assert str(info.value) == "field 55: Invalid tag format, expecting hexchar string: tag 'XY'."
    assert info.value.field == 55
    with pytest.raises(EncodeError, match=r"^field 55: tag '9C' value must be bytes, not str$"):
        encode_tlv({"9C": "00"})  # type: ignore[dict-item]
