"""`mask_card_data` and the errors built on it: every PAN of 13 to 19 digits and every track 2 is masked
(first six and last four kept) wherever it sits in the text; shorter numbers (STANs, RRNs, amounts) and
digits inside hex (key blocks, MACs) are left alone. (A run of 13–19 digits is masked whatever it is — a
MID, an all-digit MAC: masking too much is safe.)"""

from __future__ import annotations

import logging

import pytest

from posgate.errors import (
    ConfigError,
    DecodeError,
    IssuerTimeout,
    PosgateError,
    ProtocolError,
    SecurityError,
    mask_card_data,
)
from posgate.logs import MaskingFormatter

# one PAN of each length the card schemes use, Luhn-valid or not: masking does not care
PANS = {
    13: "4222222222222",
    14: "36227206271667",
    15: "378282246310005",
    16: "6229990000000012",
    17: "62299900000000123",
    18: "622999000000001234",
    19: "6229990000000000014",
}


@pytest.mark.parametrize("length", sorted(PANS))
def test_a_pan_of_any_length_keeps_only_its_first_six_and_last_four(length: int) -> None:
    pan = PANS[length]
    masked = pan[:6] + "*" * (length - 10) + pan[-4:]
    assert mask_card_data(pan) == masked
    assert mask_card_data(f"card {pan} declined") == f"card {masked} declined"
    assert mask_card_data(f"pan={pan},") == f"pan={masked},"
    assert mask_card_data(f"{pan}\n{pan}") == f"{masked}\n{masked}"


@pytest.mark.parametrize("length", sorted(PANS))
def test_a_pan_padded_with_zeros_to_20_digits_or_more_is_masked(length: int) -> None:
    """An `n 20` field (or BCD filler) holds the PAN with zeros before or after it: a run too long to be a
    PAN itself, which was left clear."""
    pan = PANS[length]
    masked = pan[:6] + "*" * (length - 10) + pan[-4:]
    for left, right in ((20 - length, 0), (0, 20 - length), (1, 20 - length - 1), (24 - length, 4)):
        if left < 0 or right < 0 or left + length + right < 20:
            continue
        padded = "0" * left + pan + "0" * right
        text = mask_card_data(f"field 2 {padded} refused")
        assert pan not in text
        assert text == f"field 2 {'0' * left}{masked}{'0' * right} refused"
    assert str(DecodeError(f"field 2: {pan:0>20}", field=2)) == f"field 2: {masked:0>20}"


@pytest.mark.parametrize("length", sorted(PANS))
def test_a_track_2_of_any_pan_length_is_masked_with_its_discretionary_data(length: int) -> None:
    pan = PANS[length]
    for separator in ("D", "=", "d"):
        track = f"{pan}{separator}30121011361691103"
        assert mask_card_data(f"track {track} read") == f"track {pan[:6]}******{pan[-4:]}D*** read"


@pytest.mark.parametrize(
    "text",
    [
        "stan 000042 rrn 000000000042",  # 6 and 12 digits
        "amount 000000001234",
        "batch 000001 tid 10000001",
        "kcv 08D7B4FB mac 8D7B4FB1C2E3A4F5",
        "key block B0096K0TD00N0000AB6229990000000012",  # hex run: not a PAN on its own
        "12 digits 622999000001",
        "20 zeros and a STAN 00000000000000001234",  # 4 significant digits: no PAN
        "62 digits of totals " + "0" * 62,
    ],
)
def test_what_is_not_card_data_is_left_alone(text: str) -> None:
    assert mask_card_data(text) == text


def test_every_error_masks_what_it_is_given() -> None:
    pan, track = PANS[13], PANS[16] + "D30121011361691103"
    for error in (
        PosgateError(f"pan {pan}"),
        ConfigError(f"pan {pan}"),
        ProtocolError(f"pan {pan}", field=2, pos=9),
        DecodeError(f"pan {pan}", field=2, pos=9),
        SecurityError(f"pan {pan}"),
        IssuerTimeout(f"pan {pan}"),
    ):
        assert str(error) == "pan 422222***2222"
        assert pan not in repr(error) and "422222***2222" in repr(error)
    assert repr(DecodeError(f"pan {pan}")) == "DecodeError('pan 422222***2222')"
    assert repr(ConfigError("no")) == "ConfigError('no')"
    assert str(DecodeError(f"field 35: {track}", field=35)) == "field 35: 622999******0012D***"


def test_the_log_formatter_masks_what_the_message_and_its_arguments_carry() -> None:
    record = logging.LogRecord(
        "posgate", logging.INFO, __file__, 1, "card %s, pan %s", (PANS[13], PANS[19]), None
    )
    line = MaskingFormatter("%(message)s").format(record)
    assert line == "card 422222***2222, pan 622999*********0014"


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("posgate", logging.ERROR, __file__, 1, "card %s", (PANS[16],), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_a_traceback_a_cached_traceback_and_a_stack_are_masked_and_indented() -> None:
    formatter = MaskingFormatter("%(asctime)s %(message)s", datefmt="%Y")
    try:
        raise ValueError(f"bad card {PANS[13]}")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    for record in (
        _record(exc_info=exc_info),
        _record(exc_text=f"Traceback\nValueError: bad card {PANS[13]}"),
        _record(stack_info=f"Stack (most recent call last):\n  card {PANS[13]}"),
    ):
        lines = formatter.format(record).split("\n")
        year = formatter.formatTime(record, "%Y")
        assert lines[0] == f"{year} card 622999******0012"
        assert len(lines) > 1 and all(line.startswith((" ", "\t")) for line in lines[1:])
        assert PANS[13] not in "\n".join(lines) and "422222***2222" in "\n".join(lines)
