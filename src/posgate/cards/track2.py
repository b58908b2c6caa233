"""Track 2 (ISO/IEC 7813): parse, encode, and the demo issuer's discretionary-data layout.

A track 2 is `PAN` `D`/`=` `expiry YYMM` `service code` `discretionary data`, at most 37 characters.
This module owns that structure and the demo fixture's discretionary layout (`1` · PIN offset(6) · CVV(3) ·
`00`, see `shared/spec/demo-fixture.md`). `repr()` of a `Track2` shows the masked PAN and service code only.
"""

from __future__ import annotations

from dataclasses import dataclass

from posgate.cards.pan import PAN_MAX_DIGITS, PAN_MIN_DIGITS, mask_pan
from posgate.errors import DecodeError, EncodeError

TRACK2_MAX_CHARS = 37
_SEPARATORS = "D="


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


@dataclass(frozen=True)
class Track2:
    """A parsed track 2. Every field is a string of digits."""

    pan: str
    expiry: str
    service_code: str
    discretionary: str

    def __repr__(self) -> str:
        return (
            f"Track2(pan={mask_pan(self.pan)!r}, expiry='****', "
            f"service_code={self.service_code!r}, discretionary='***')"
        )

    def encode(self) -> str:
        """The track with `D` as separator, as field 35 carries it.

        >>> Track2("6229990000000012", "3012", "101", "136169110300").encode()
        '6229990000000012D3012101136169110300'
        """
        return f"{self.pan}D{self.expiry}{self.service_code}{self.discretionary}"


def parse_track2(text: str) -> Track2:
    """Split a track 2 into its fields; `DecodeError` (field 35, `pos` = character index) if malformed.

    The separator may be `D` (field 35 in BCD) or `=` (as read from the stripe); start and end sentinels
    (`;` … `?`) are accepted and dropped.

    >>> parse_track2("6229990000000012=3012101136169110300").service_code
    '101'
    >>> parse_track2("6229990000000012")
    Traceback (most recent call last):
    ...
    posgate.errors.DecodeError: track 2 has no separator ('D' or '=')
    """
    if text.startswith(";"):
        text = text[1:]
    if text.endswith("?"):
        text = text[:-1]
    if len(text) > TRACK2_MAX_CHARS:
        raise DecodeError(f"track 2 is {len(text)} characters, at most 37 allowed", field=35)
    sep = next((i for i, ch in enumerate(text.upper()) if ch in _SEPARATORS), -1)
    if sep < 0:
        raise DecodeError("track 2 has no separator ('D' or '=')", field=35)
    pan = text[:sep]
    if not (_digits(pan) and PAN_MIN_DIGITS <= len(pan) <= PAN_MAX_DIGITS):
        raise DecodeError("track 2 PAN must be 13 to 19 digits", field=35, pos=0)
    expiry = text[sep + 1 : sep + 5]
    if not (_digits(expiry) and len(expiry) == 4):
        raise DecodeError("track 2 expiry must be 4 digits (YYMM)", field=35, pos=sep + 1)
    service_code = text[sep + 5 : sep + 8]
    if not (_digits(service_code) and len(service_code) == 3):
        raise DecodeError("track 2 service code must be 3 digits", field=35, pos=sep + 5)
    discretionary = text[sep + 8 :]
    if discretionary and not _digits(discretionary):
        raise DecodeError("track 2 discretionary data must be digits", field=35, pos=sep + 8)
    return Track2(pan, expiry, service_code, discretionary)


def build_demo_track2(pan: str, expiry: str, service_code: str, pin_offset: str, cvv: str) -> str:
    """The demo fixture's track 2: PAN `D` expiry(4) service code(3) `1` PIN offset(6) CVV(3) `00`.

    >>> build_demo_track2("6229990000000012", "3012", "101", "361691", "103")
    '6229990000000012D3012101136169110300'
    """
    if not (_digits(pan) and PAN_MIN_DIGITS <= len(pan) <= PAN_MAX_DIGITS):
        raise EncodeError("track 2 PAN must be 13 to 19 digits", field=35)
    if not (_digits(expiry) and len(expiry) == 4):
        raise EncodeError("track 2 expiry must be 4 digits (YYMM)", field=35)
    if not (_digits(service_code) and len(service_code) == 3):
        raise EncodeError("track 2 service code must be 3 digits", field=35)
    if not (_digits(pin_offset) and len(pin_offset) == 6):
        raise EncodeError("track 2 PIN offset must be 6 digits", field=35)
    if not (_digits(cvv) and len(cvv) == 3):
        raise EncodeError("track 2 CVV must be 3 digits", field=35)
    return Track2(pan, expiry, service_code, f"1{pin_offset}{cvv}00").encode()


def _demo_discretionary(track: Track2) -> str:
    if len(track.discretionary) < 10:
        raise DecodeError("track 2 discretionary data is too short for the demo layout", field=35)
    return track.discretionary


def track2_pin_offset(track: Track2) -> str:
    """The IBM 3624 PIN offset stored in the demo layout (discretionary characters 2–7).

    >>> track2_pin_offset(parse_track2("6229990000000012D3012101136169110300"))
    '361691'
    """
    return _demo_discretionary(track)[1:7]


def track2_cvv(track: Track2) -> str:
    """The CVV stored in the demo layout (discretionary characters 8–10).

    >>> track2_cvv(parse_track2("6229990000000012D3012101136169110300"))
    '103'
    """
    return _demo_discretionary(track)[7:10]
