"""Primary account numbers: Luhn check digit, masking for display and logs, BIN, validation.

This module owns the rules about a PAN as a string of digits. It holds no keys and imports nothing from
`posgate.security`; PAN encryption at rest lives in `posgate.security.at_rest`.
"""

from __future__ import annotations

from posgate.errors import DecodeError

PAN_MIN_DIGITS = 13
PAN_MAX_DIGITS = 19


def _luhn_sum(digits: str, double_first: bool) -> int:
    """Sum of the Luhn-weighted digits, walking `digits` from the right."""
    total = 0
    double = double_first
    for ch in reversed(digits):
        d = ord(ch) - 48
        if double:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        double = not double
    return total


def luhn_check_digit(partial: str) -> str:
    """The Luhn check digit to append to `partial` (a PAN without its last digit).

    >>> luhn_check_digit("622999000000001")
    '2'
    >>> luhn_check_digit("12a")
    Traceback (most recent call last):
    ...
    posgate.errors.DecodeError: PAN must contain only digits
    """
    if not partial.isascii() or not partial.isdigit():
        raise DecodeError("PAN must contain only digits", field=2)
    return str((10 - _luhn_sum(partial, double_first=True) % 10) % 10)


def is_luhn_valid(pan: str) -> bool:
    """True when the last digit of `pan` is its Luhn check digit; False for anything that is not digits.

    >>> [is_luhn_valid(pan) for pan in ("6229990000000012", "6229990000000013", "62299900000000x2")]
    [True, False, False]
    """
    if len(pan) < 2 or not pan.isascii() or not pan.isdigit():
        return False
    return _luhn_sum(pan, double_first=False) % 10 == 0


def mask_pan(pan: str) -> str:
    """The PAN for display: first 6 and last 4 digits kept, the rest as `*` (PCI DSS 3.4).

    Never raises, so it is safe in logs and reprs: anything that is not 13–19 digits is masked entirely.

    >>> mask_pan("6229990000000012")
    '622999******0012'
    >>> mask_pan("4111111111111")
    '411111***1111'
    >>> mask_pan("12345")
    '*****'
    """
    if PAN_MIN_DIGITS <= len(pan) <= PAN_MAX_DIGITS and pan.isascii() and pan.isdigit():
        return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]
    return "*" * len(pan)


def pan_bin(pan: str, length: int = 6) -> str:
    """The bank identification number: the first `length` digits (6 or 8 in practice).

    >>> pan_bin("6229990000000012")
    '622999'
    >>> pan_bin("6229990000000012", 8)
    '62299900'
    """
    if not pan.isascii() or not pan.isdigit():
        raise DecodeError("PAN must contain only digits", field=2)
    if len(pan) < length:
        raise DecodeError(f"PAN is shorter than the {length}-digit BIN", field=2)
    return pan[:length]


def validate_pan(pan: str) -> None:
    """Raise `DecodeError` (field 2) unless `pan` is 13–19 digits with a valid Luhn check digit.

    >>> validate_pan("6229990000000012")
    >>> validate_pan("6229990000000013")
    Traceback (most recent call last):
    ...
    posgate.errors.DecodeError: PAN fails the Luhn check
    """
    if not pan.isascii() or not pan.isdigit():
        raise DecodeError("PAN must contain only digits", field=2)
    if not PAN_MIN_DIGITS <= len(pan) <= PAN_MAX_DIGITS:
        raise DecodeError(f"PAN must be 13 to 19 digits, got {len(pan)}", field=2)
    if not is_luhn_valid(pan):
        raise DecodeError("PAN fails the Luhn check", field=2)
