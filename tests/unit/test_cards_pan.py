"""PAN rules: Luhn, masking, BIN, validation (exact messages)."""

from __future__ import annotations

import pytest

from posgate.cards import is_luhn_valid, luhn_check_digit, mask_pan, pan_bin, validate_pan
from posgate.errors import DecodeError

DEMO_PANS = [
    "6229990000000012",
    "6229990000000020",
    "6229990000000038",
    "6229990000000046",
    "6229990000000053",
    "6228880000000016",
    "6228880000000024",
    "6228880000000032",
]


@pytest.mark.parametrize("pan", [*DEMO_PANS, "4111111111111111", "79927398713", "4222222222222"])
def test_luhn_valid(pan: str) -> None:
    assert is_luhn_valid(pan)
    assert luhn_check_digit(pan[:-1]) == pan[-1]


@pytest.mark.parametrize(
    "pan", ["6229990000000013", "4111111111111112", "", "0", "62299900000000a2", "１２３４"]
)
def test_luhn_invalid(pan: str) -> None:
    assert not is_luhn_valid(pan)


def test_luhn_check_digit_of_every_single_error_differs() -> None:
    base = "622999000000001"
    for i in range(len(base)):
        for d in "0123456789":
            if d != base[i]:
                changed = base[:i] + d + base[i + 1 :]
                assert not is_luhn_valid(changed + "2")


def test_luhn_check_digit_rejects_non_digits() -> None:
    with pytest.raises(DecodeError, match=r"^PAN must contain only digits$"):
        luhn_check_digit("62299900000000x")


@pytest.mark.parametrize(
    ("pan", "masked"),
    [
        ("6229990000000012", "622999******0012"),
        ("4222222222222", "422222***2222"),
        ("6229990000000000012", "622999*********0012"),
        ("622999000000", "************"),
        ("62299900000000001234", "********************"),
        ("62299900000X0012", "****************"),
        ("", ""),
    ],
)
def test_mask_pan(pan: str, masked: str) -> None:
    assert mask_pan(pan) == masked


def test_pan_bin() -> None:
    assert pan_bin("6229990000000012") == "622999"
    assert pan_bin("6229990000000012", 8) == "62299900"
    with pytest.raises(DecodeError, match=r"^PAN is shorter than the 8-digit BIN$"):
        pan_bin("6229990", 8)


@pytest.mark.parametrize(
    ("pan", "message"),
    [
        ("62299900000000 2", "PAN must contain only digits"),
        ("", "PAN must contain only digits"),
        ("622999000012", "PAN must be 13 to 19 digits, got 12"),
        ("62299900000000000012", "PAN must be 13 to 19 digits, got 20"),
        ("6229990000000013", "PAN fails the Luhn check"),
    ],
)
def test_validate_pan_errors(pan: str, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        validate_pan(pan)
    assert str(info.value) == message
    assert info.value.field == 2
    assert info.value.response_code == "30"


@pytest.mark.parametrize("pan", DEMO_PANS)
def test_validate_demo_pans(pan: str) -> None:
    validate_pan(pan)
