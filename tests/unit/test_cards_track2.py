"""Track 2: parse, encode, the demo discretionary layout, and exact error messages."""

from __future__ import annotations

import pytest

from posgate.cards import Track2, build_demo_track2, parse_track2, track2_cvv, track2_pin_offset
from posgate.errors import DecodeError, EncodeError

TRACK = "6229990000000012D3012101136169110300"


def test_parse_with_d_separator() -> None:
    track = parse_track2(TRACK)
    assert track == Track2("6229990000000012", "3012", "101", "136169110300")
    assert track.encode() == TRACK


def test_parse_with_equals_and_sentinels() -> None:
    assert parse_track2(";6229990000000012=3012101136169110300?") == parse_track2(TRACK)
    assert parse_track2("6229990000000012=3012101136169110300").encode() == TRACK


def test_parse_without_discretionary_data() -> None:
    assert parse_track2("6229990000000012D3012101") == Track2("6229990000000012", "3012", "101", "")


def test_demo_layout_round_trip() -> None:
    assert build_demo_track2("6229990000000012", "3012", "101", "361691", "103") == TRACK
    track = parse_track2(TRACK)
    assert track2_pin_offset(track) == "361691"
    assert track2_cvv(track) == "103"


def test_demo_layout_needs_the_discretionary_data() -> None:
    with pytest.raises(DecodeError) as info:
        track2_cvv(parse_track2("6229990000000012D3012101"))
    assert str(info.value) == "track 2 discretionary data is too short for the demo layout"
    assert info.value.field == 35


@pytest.mark.parametrize(
    ("text", "message", "pos"),
    [
        ("6229990000000012" + "D3012101" + "1" * 14, "track 2 is 38 characters, at most 37 allowed", None),
        ("6229990000000012", "track 2 has no separator ('D' or '=')", None),
        ("", "track 2 has no separator ('D' or '=')", None),
        ("622999000012D3012101", "track 2 PAN must be 13 to 19 digits", 0),
        ("62299900000000X2D3012101", "track 2 PAN must be 13 to 19 digits", 0),
        ("6229990000000012D30", "track 2 expiry must be 4 digits (YYMM)", 17),
        ("6229990000000012D30A2101", "track 2 expiry must be 4 digits (YYMM)", 17),
        ("6229990000000012D301210", "track 2 service code must be 3 digits", 21),
        ("6229990000000012D3012101136169F", "track 2 discretionary data must be digits", 24),
    ],
)
def test_parse_errors(text: str, message: str, pos: int | None) -> None:
    with pytest.raises(DecodeError) as info:
        parse_track2(text)
    assert str(info.value) == message
    assert info.value.field == 35
    assert info.value.pos == pos


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("622999000012", "3012", "101", "361691", "103"), "track 2 PAN must be 13 to 19 digits"),
        (("6229990000000012", "312", "101", "361691", "103"), "track 2 expiry must be 4 digits (YYMM)"),
        (("6229990000000012", "3012", "10", "361691", "103"), "track 2 service code must be 3 digits"),
        (("6229990000000012", "3012", "101", "36169", "103"), "track 2 PIN offset must be 6 digits"),
        (("6229990000000012", "3012", "101", "361691", "1O3"), "track 2 CVV must be 3 digits"),
    ],
)
def test_build_errors(args: tuple[str, str, str, str, str], message: str) -> None:
    with pytest.raises(EncodeError) as info:
        build_demo_track2(*args)
    assert str(info.value) == message
    assert info.value.field == 35


def test_repr_masks_pan_and_hides_the_rest() -> None:
    track = parse_track2(TRACK)
    text = repr(track)
    assert text == "Track2(pan='622999******0012', expiry='****', service_code='101', discretionary='***')"
    assert str(track) == text
    for secret in ("6229990000000012", "3012", "361691", "136169110300"):
        assert secret not in text
