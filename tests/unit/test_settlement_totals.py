"""POS settlement totals as the wire carries them (`store.batches`, pos-8583.md "Settlement"): field 48's
31-digit halves written and read digit for digit, each total at its bounds, the batch upload records, and the
batch number that follows a settled batch. The store's side: tests/integration/test_batch_settlement.py."""

from __future__ import annotations

import pytest

from posgate.errors import DecodeError, EncodeError
from posgate.store.batches import Totals, UploadRecord, next_batch, parse_totals, parse_upload_records


def test_each_total_has_its_own_digits_in_field_48() -> None:
    totals = Totals(debit_fen=123456789012, debit_count=345, credit_fen=678901234567, credit_count=890)
    assert totals.field48_part("7") == "123456789012" + "345" + "678901234567" + "890" + "7"
    assert Totals().field48_part() == "0" * 31
    assert parse_totals("000000000001" + "002" + "000000000003" + "004" + "5") == Totals(1, 2, 3, 4)
    assert parse_totals(totals.field48_part("1")) == totals


@pytest.mark.parametrize(
    ("totals", "message"),
    [
        (Totals(debit_fen=-1), "field 48: debit amount -1 does not fit n12 (0 to 999999999999)"),
        (Totals(debit_count=-1), "field 48: debit count -1 does not fit n3 (0 to 999)"),
        (Totals(credit_fen=-1), "field 48: credit amount -1 does not fit n12 (0 to 999999999999)"),
        (Totals(credit_count=-1), "field 48: credit count -1 does not fit n3 (0 to 999)"),
        (Totals(credit_count=1000), "field 48: credit count 1000 does not fit n3 (0 to 999)"),
    ],
)
def test_a_total_that_does_not_fit_its_digits_is_refused_by_name(totals: Totals, message: str) -> None:
    with pytest.raises(EncodeError) as raised:
        totals.field48_part("1")
    assert (str(raised.value), raised.value.field) == (message, 48)


def test_the_largest_totals_fit_and_one_fen_more_does_not() -> None:
    assert Totals(credit_fen=999_999_999_999).field48_part("0") == "0" * 15 + "9" * 12 + "0" * 4
    with pytest.raises(EncodeError, match=r"^field 48: credit amount 100000\*\*\*0000 does not fit n12"):
        Totals(credit_fen=10**12).field48_part("0")


@pytest.mark.parametrize("code", ["", "10", "a", "/", ":"])
def test_the_settlement_code_is_one_digit(code: str) -> None:
    with pytest.raises(EncodeError) as raised:
        Totals().field48_part(code)
    assert str(raised.value) == f"field 48: settlement code must be one digit, got {code!r}"
    assert raised.value.field == 48  # the error names the field it is about


@pytest.mark.parametrize("code", ["0", "9"])
def test_codes_0_to_9_are_written_last(code: str) -> None:
    assert Totals().field48_part(code) == "0" * 30 + code


@pytest.mark.parametrize(
    ("part", "message", "pos"),
    [
        ("0" * 30, "field 48: expected 31 digits of settlement totals, got 30 at byte 30", 30),
        ("", "field 48: expected 31 digits of settlement totals, got 0 at byte 0", 0),
        ("/" + "0" * 30, "field 48: settlement totals must be digits at byte 0", 0),
        ("0" * 30 + ":", "field 48: settlement totals must be digits at byte 30", 30),
    ],
)
def test_totals_that_are_not_31_digits_are_refused_at_their_byte(part: str, message: str, pos: int) -> None:
    with pytest.raises(DecodeError) as raised:
        parse_totals(part)
    assert (str(raised.value), raised.value.field, raised.value.pos) == (message, 48, pos)


@pytest.mark.parametrize(
    ("batch", "following"),
    [
        ("000000", "000001"),
        ("000001", "000002"),
        ("000099", "000100"),
        ("999998", "999999"),
        ("999999", "000001"),
    ],
)
def test_the_batch_after_a_settled_one(batch: str, following: str) -> None:
    assert next_batch(batch) == following


def _record(org: str, stan: str, pan: str, amount_fen: int) -> str:
    return org + stan + pan.rjust(20, "0") + f"{amount_fen:012d}"


def test_upload_records_are_read_field_by_field() -> None:
    first = _record("01", "000123", "6229990000000012", 4567)
    second = _record("03", "999999", "6228880000000016123", 999_999_999_999)
    assert parse_upload_records("02" + first + second) == [
        UploadRecord("01", "000123", "6229990000000012", 4567),
        UploadRecord("03", "999999", "6228880000000016123", 999_999_999_999),
    ]
    assert parse_upload_records("01" + _record("00", "000001", "", 1)) == [
        UploadRecord("00", "000001", "", 1)
    ]
    # all 20 digits of the PAN field are read: none is taken for padding unless it is a leading zero
    assert parse_upload_records("01" + _record("00", "000001", "12345678901234567890", 1)) == [
        UploadRecord("00", "000001", "12345678901234567890", 1)
    ]


@pytest.mark.parametrize(
    ("field48", "message", "pos"),
    [
        ("0", "field 48: expected the n2 record count, got 1 digits", 0),
        ("8", "field 48: expected the n2 record count, got 1 digits", 0),
        ("/1" + "0" * 40, "field 48: batch upload records must be digits at byte 0", 0),
        ("01" + "0" * 39 + ":", "field 48: batch upload records must be digits at byte 41", 41),
        ("08" + "0" * 40, "field 48: 8 records need 322 digits, got 42 at byte 42", 42),
    ],
)
def test_bad_upload_records_are_refused_at_their_byte(field48: str, message: str, pos: int) -> None:
    with pytest.raises(DecodeError) as raised:
        parse_upload_records(field48)
    assert (str(raised.value), raised.value.field, raised.value.pos) == (message, 48, pos)


def test_one_to_eight_records_are_accepted() -> None:
    for count in (1, 8):
        records = [_record("00", f"{i:06d}", "", i) for i in range(1, count + 1)]
        parsed = parse_upload_records(f"{count:02d}" + "".join(records))
        assert [(r.stan, r.amount_fen) for r in parsed] == [(f"{i:06d}", i) for i in range(1, count + 1)]
