"""Resident identity card numbers (GB 11643-1999): the check character, the birth date and the
applicant's age on the application date. Pure functions; `today` is a parameter.

>>> parse_id_number("11010519491231002X").birth_date
datetime.date(1949, 12, 31)
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from posgate.merchants.errors import FieldError

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
MIN_AGE = 18
MAX_AGE = 65
_SHAPE = re.compile(r"\d{17}[\dX]")


@dataclass(frozen=True)
class IdNumber:
    value: str
    birth_date: dt.date

    @property
    def masked(self) -> str:
        """First 6 (the region) and last 4 characters kept.

        >>> IdNumber("11010519491231002X", dt.date(1949, 12, 31)).masked
        '110105********002X'
        """
        return self.value[:6] + "*" * 8 + self.value[-4:]


def check_char(first17: str) -> str:
    """The check character of the first 17 digits.

    >>> check_char("11010519491231002")
    'X'
    """
    return CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


def parse_id_number(text: str, field: str = "id_number") -> IdNumber:
    """Validate shape, birth date and check character; `FieldError` naming `field` otherwise.

    >>> parse_id_number("110105194912310021")
    Traceback (most recent call last):
    ...
    posgate.merchants.errors.FieldError: id_number: check character is 1, expected X
    """
    value = text.strip().upper()
    if not _SHAPE.fullmatch(value):
        raise FieldError(field, "must be 17 digits and a check digit or X (18 characters)")
    try:
        birth = dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise FieldError(field, "birth date (characters 7-14) is not a real date") from None
    expected = check_char(value[:17])
    if value[17] != expected:
        raise FieldError(field, f"check character is {value[17]}, expected {expected}")
    return IdNumber(value, birth)


def age_on(birth: dt.date, today: dt.date) -> int:
    """Completed years on `today`.

    >>> age_on(dt.date(2000, 3, 1), dt.date(2018, 2, 28)), age_on(dt.date(2000, 3, 1), dt.date(2018, 3, 1))
    (17, 18)
    """
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def check_applicant_age(id_number: IdNumber, today: dt.date, field: str = "id_number") -> int:
    """The applicant's age; `FieldError` unless it is 18 to 65 on `today`."""
    age = age_on(id_number.birth_date, today)
    if age < MIN_AGE:
        raise FieldError(field, f"applicant is {age}, must be at least {MIN_AGE}")
    if age > MAX_AGE:
        raise FieldError(field, f"applicant is {age}, must be at most {MAX_AGE}")
    return age
