"""Unified social credit codes (GB 32100-2015), the 18-character business licence number: charset and
check character. Pure.

>>> parse_uscc("91350100M000100Y43")
'91350100M000100Y43'
"""

from __future__ import annotations

from posgate.merchants.errors import FieldError

CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def check_char(first17: str) -> str:
    """The check character of the first 17 characters.

    >>> check_char("91350100M000100Y4")
    '3'
    """
    total = sum(CHARSET.index(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    return CHARSET[(31 - total % 31) % 31]


def parse_uscc(text: str, field: str = "licence_number") -> str:
    """Validate length, charset and check character; `FieldError` naming `field` otherwise."""
    value = text.strip().upper()
    if len(value) != 18:
        raise FieldError(field, f"must be 18 characters, got {len(value)}")
    for position, char in enumerate(value, start=1):
        if char not in CHARSET:
            raise FieldError(field, f"character {position} ({char!r}) is not allowed (no I, O, S, V, Z)")
    expected = check_char(value[:17])
    if value[17] != expected:
        raise FieldError(field, f"check character is {value[17]}, expected {expected}")
    return value
