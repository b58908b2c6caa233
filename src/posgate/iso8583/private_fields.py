"""The POS dialect's structured private fields: 60 (message context) and 61 (original transaction).

Field 60: 60.1 n2 message type code · 60.2 n6 batch · 60.3 n3 network management code · 60.4 n1 read
capability · 60.5 n1 IC condition; terminals in the field append further sub-fields, kept verbatim in `rest`.
Field 61: 61.1 n6 original batch · 61.2 n6 original STAN · 61.3 n4 original date MMDD (refunds,
completions); anything after is kept in `rest`.

Parsing a bad value raises `DecodeError` (answer `30`); building one raises `EncodeError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from posgate.errors import DecodeError, EncodeError
from posgate.iso8583.content import shown


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _require_digits(field: int, value: str) -> None:
    """`DecodeError` whose `pos` is the first character that is not an ASCII digit (0 for an empty value)."""
    if _is_digits(value):
        return
    pos = next((i for i, c in enumerate(value) if not ("0" <= c <= "9")), 0)
    raise DecodeError(f"field {field}: expected digits, got {shown(field, value)}", field, pos)


def _check_parts(field: int, parts: list[tuple[str, str, int]]) -> None:
    """Each (name, value, width) must be `width` digits; once one is empty, all later ones must be too."""
    ended = ""
    for name, value, width in parts:
        if value == "":
            ended = ended or name
            continue
        if ended:
            raise EncodeError(f"field {field}: {name} given without {ended}", field=field)
        if len(value) != width or not _is_digits(value):
            raise EncodeError(
                f"field {field}: {name} must be {width} digits, got {shown(field, value)}", field=field
            )


@dataclass(frozen=True)
class Field60:
    """Field 60 of the POS dialect. Optional sub-fields are "" when the terminal did not send them.

    >>> Field60("22", "000001", "000", "5", "0").encode()
    '2200000100050'
    """

    type_code: str
    batch: str
    nmc: str
    read_capability: str = ""
    ic_condition: str = ""
    rest: str = ""

    def __post_init__(self) -> None:
        _check_parts(60, [("60.1 type code", self.type_code, 2), ("60.2 batch", self.batch, 6)])
        _check_parts(
            60,
            [
                ("60.3 network management code", self.nmc, 3),
                ("60.4 read capability", self.read_capability, 1),
                ("60.5 IC condition", self.ic_condition, 1),
            ],
        )
        if self.type_code == "" or self.batch == "":
            raise EncodeError("field 60: 60.1 type code and 60.2 batch are required", field=60)
        if self.rest and (not _is_digits(self.rest) or not self.ic_condition):
            raise EncodeError("field 60: extra sub-fields must be digits after 60.5", field=60)

    def encode(self) -> str:
        """The digits of field 60 as a Message carries them."""
        return self.type_code + self.batch + self.nmc + self.read_capability + self.ic_condition + self.rest


def parse_field60(value: str) -> Field60:
    """Split field 60 into its sub-fields; at least 60.1 and 60.2 (8 digits), extra digits kept in `rest`.

    >>> parse_field60("2600000100060000000")
    Field60(type_code='26', batch='000001', nmc='000', read_capability='6', ic_condition='0', rest='000000')
    >>> parse_field60("00000001003")
    Field60(type_code='00', batch='000001', nmc='003', read_capability='', ic_condition='', rest='')
    """
    _require_digits(60, value)
    if len(value) < 8 or 8 < len(value) < 11:
        raise DecodeError(
            f"field 60: expected 8 or at least 11 digits (60.1, 60.2, 60.3), got {len(value)}",
            field=60,
            pos=len(value),
        )
    return Field60(value[0:2], value[2:8], value[8:11], value[11:12], value[12:13], value[13:])


@dataclass(frozen=True)
class Field61:
    """Field 61 of the POS dialect: the original transaction a void, refund or completion refers to.

    >>> Field61("000001", "000123", "1126").encode()
    '0000010001231126'
    """

    batch: str
    stan: str
    date: str = ""
    rest: str = ""

    def __post_init__(self) -> None:
        _check_parts(61, [("61.1 batch", self.batch, 6), ("61.2 STAN", self.stan, 6)])
        _check_parts(61, [("61.3 date", self.date, 4)])
        if self.batch == "" or self.stan == "":
            raise EncodeError("field 61: 61.1 batch and 61.2 STAN are required", field=61)
        if self.rest and (not _is_digits(self.rest) or not self.date):
            raise EncodeError("field 61: extra sub-fields must be digits after 61.3", field=61)

    def encode(self) -> str:
        """The digits of field 61 as a Message carries them."""
        return self.batch + self.stan + self.date + self.rest


def parse_field61(value: str) -> Field61:
    """Split field 61: batch and STAN (12 digits), optionally the date (16), extra digits kept in `rest`.

    >>> parse_field61("000001000123")
    Field61(batch='000001', stan='000123', date='', rest='')
    """
    _require_digits(61, value)
    if len(value) != 12 and len(value) < 16:
        raise DecodeError(
            f"field 61: expected 12 or at least 16 digits (61.1, 61.2, 61.3), got {len(value)}",
            field=61,
            pos=len(value),
        )
    return Field61(value[0:6], value[6:12], value[12:16], value[16:])
