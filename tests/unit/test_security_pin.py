"""PIN blocks: encode, translate PIK→ZPK, IBM 3624 offsets and verification at the issuer."""

from __future__ import annotations

import pytest
from psec import des, pinblock

from posgate.errors import SecurityError
from posgate.security import (
    PinBlockFormatError,
    encode_pin_block,
    generate_key,
    pin_offset,
    translate_pin_block,
    verify_pin_block,
)

PAN = "6229990000000012"
BANK_A_ZPK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
BANK_A_PVK = bytes.fromhex("0123456789ABCDEF0123456789ABCDEF")
OFFSET_123456 = "361691"  # fixture-vectors.json


@pytest.fixture
def pik() -> bytes:
    return generate_key()


def test_encode_pin_block_is_format_0_under_pik(pik: bytes) -> None:
    block = encode_pin_block("123456", PAN, pik)
    assert len(block) == 8
    assert pinblock.decode_pinblock_iso_0(des.decrypt_tdes_ecb(pik, block), PAN) == "123456"


def test_translate_then_verify_right_pin(pik: bytes) -> None:
    block = encode_pin_block("123456", PAN, pik)
    translated = translate_pin_block(block, PAN, pik, BANK_A_ZPK)
    assert translated != block
    assert translated == encode_pin_block("123456", PAN, BANK_A_ZPK)
    assert verify_pin_block(translated, PAN, BANK_A_ZPK, BANK_A_PVK, OFFSET_123456) is True


def test_translate_then_verify_wrong_pin(pik: bytes) -> None:
    translated = translate_pin_block(encode_pin_block("123457", PAN, pik), PAN, pik, BANK_A_ZPK)
    assert verify_pin_block(translated, PAN, BANK_A_ZPK, BANK_A_PVK, OFFSET_123456) is False


def test_verify_with_the_other_cards_pin() -> None:
    pan = "6229990000000053"
    block = encode_pin_block("888888", pan, BANK_A_ZPK)
    assert verify_pin_block(block, pan, BANK_A_ZPK, BANK_A_PVK, "744456")
    assert not verify_pin_block(
        encode_pin_block("123456", pan, BANK_A_ZPK), pan, BANK_A_ZPK, BANK_A_PVK, "744456"
    )


def test_translate_with_the_wrong_source_key_is_a_format_error(pik: bytes) -> None:
    block = encode_pin_block("123456", PAN, pik)
    with pytest.raises(PinBlockFormatError) as info:
        translate_pin_block(block, PAN, generate_key(), BANK_A_ZPK)
    assert str(info.value) == "PIN block format error"
    assert isinstance(info.value, SecurityError)
    assert info.value.__context__ is None and info.value.__cause__ is None  # psec's message names PIN digits


def test_translate_with_the_wrong_pan_is_a_format_error(pik: bytes) -> None:
    block = encode_pin_block("123456", PAN, pik)
    with pytest.raises(PinBlockFormatError, match=r"^PIN block format error$"):
        translate_pin_block(block, "6229990000000020", pik, BANK_A_ZPK)


def test_verify_malformed_block_raises_format_error() -> None:
    with pytest.raises(PinBlockFormatError, match=r"^PIN block format error$"):
        verify_pin_block(bytes(8), PAN, BANK_A_ZPK, BANK_A_PVK, OFFSET_123456)


def test_pin_block_length_is_checked(pik: bytes) -> None:
    with pytest.raises(SecurityError, match=r"^PIN block must be 8 bytes$"):
        translate_pin_block(bytes(7), PAN, pik, BANK_A_ZPK)


@pytest.mark.parametrize("pin", ["123", "1234567890123", "12a456", ""])
def test_bad_pin_is_rejected_without_echoing_it(pin: str, pik: bytes) -> None:
    with pytest.raises(SecurityError) as info:
        encode_pin_block(pin, PAN, pik)
    assert str(info.value) == "PIN must be 4 to 12 digits"


def test_pin_offset_matches_fixture() -> None:
    assert pin_offset(BANK_A_PVK, "123456", PAN) == OFFSET_123456
    assert pin_offset(BANK_A_PVK, "123457", PAN) != OFFSET_123456


def test_pin_offset_uses_the_16_rightmost_pan_digits() -> None:
    assert pin_offset(BANK_A_PVK, "123456", "99" + PAN) == OFFSET_123456


def test_a_malformed_key_is_named_by_its_role_never_shown(pik: bytes) -> None:
    block = encode_pin_block("123456", PAN, pik)
    short = bytes(8)
    cases = [
        (lambda: encode_pin_block("123456", PAN, short), "PIK must be 16 or 24 bytes, got 8"),
        (
            lambda: translate_pin_block(block, PAN, short, BANK_A_ZPK),
            "source PIN key must be 16 or 24 bytes, got 8",
        ),
        (
            lambda: translate_pin_block(block, PAN, pik, short),
            "destination PIN key must be 16 or 24 bytes, got 8",
        ),
        (
            lambda: verify_pin_block(block, PAN, short, BANK_A_PVK, OFFSET_123456),
            "ZPK must be 16 or 24 bytes, got 8",
        ),
        (lambda: verify_pin_block(block, PAN, BANK_A_ZPK, bytes(4), OFFSET_123456), "PVK must be"),
        (lambda: pin_offset(bytes(4), "123456", PAN), "PVK must be"),
    ]
    for call, message in cases:
        with pytest.raises(SecurityError) as info:
            call()
        assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize("pan", ["622999000012", "62299900000000000123", "622999000000001X"])
def test_a_pan_of_the_wrong_shape_is_refused_everywhere(pan: str, pik: bytes) -> None:
    block = encode_pin_block("123456", PAN, pik)
    for call in (
        lambda: encode_pin_block("123456", pan, pik),
        lambda: translate_pin_block(block, pan, pik, BANK_A_ZPK),
        lambda: verify_pin_block(block, pan, BANK_A_ZPK, BANK_A_PVK, OFFSET_123456),
        lambda: pin_offset(BANK_A_PVK, "123456", pan),
    ):
        with pytest.raises(SecurityError, match=r"^PAN must be 13 to 19 digits$"):
            call()


@pytest.mark.parametrize(("pin", "pan"), [("1234", "4222222222222"), ("123456789012", "6229990000000000014")])
def test_the_shortest_and_longest_pins_and_pans_work_end_to_end(pin: str, pan: str, pik: bytes) -> None:
    block = translate_pin_block(encode_pin_block(pin, pan, pik), pan, pik, BANK_A_ZPK)
    offset = pin_offset(BANK_A_PVK, pin, pan)
    assert len(offset) == len(pin)
    assert verify_pin_block(block, pan, BANK_A_ZPK, BANK_A_PVK, offset)


def test_a_single_length_des_pvk_is_accepted_for_offsets() -> None:
    pvk = BANK_A_PVK[:8]  # IBM 3624 PVKs are often single-length DES keys
    offset = pin_offset(pvk, "123456", PAN)
    block = encode_pin_block("123456", PAN, BANK_A_ZPK)
    assert verify_pin_block(block, PAN, BANK_A_ZPK, pvk, offset)
