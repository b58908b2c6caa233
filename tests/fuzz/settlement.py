"""Fuzz target: field 48 of settlement and batch upload, on both sides.

Host: `parse_totals` (one 31-digit half of an 0500's field 48), `parse_upload_records` (an 0320's records),
`Totals.field48_part` (the 0510's answer). Terminal: `settlement_codes` (the 0510's result codes).
Input: text (Latin-1) that a decoded field 48 might hold (the codec lets through digits only; the parsers are
public and must refuse anything else cleanly).
Contract: each parser returns its value or raises `DecodeError` naming field 48; parsed totals render back to
the same 31 digits and parse to the same totals; parsed records render back to the exact field.
"""

from __future__ import annotations

from pathlib import Path

from posgate.errors import DecodeError
from posgate.store.batches import parse_totals, parse_upload_records
from posgate.terminal.journal import settlement_codes
from tests.fuzz._harness import check_refusal, fuzz


def one_input(data: bytes) -> None:
    text = data.decode("latin-1")
    try:
        codes = settlement_codes(text)
    except DecodeError as error:
        check_refusal(error, fields=[48])
    else:
        assert codes == (text[30], text[61] if len(text) >= 62 else "")
    for half in (text[:31], text[31:62]):
        try:
            totals = parse_totals(half)
        except DecodeError as error:
            check_refusal(error, len(half), fields=[48])
            continue
        assert totals.field48_part(half[30]) == half
        assert parse_totals(totals.field48_part(half[30])) == totals
    try:
        records = parse_upload_records(text)
    except DecodeError as error:
        check_refusal(error, len(text), fields=[48])
        return
    rendered = "".join(f"{r.card_org}{r.stan}{r.pan:0>20}{r.amount_fen:012d}" for r in records)
    assert f"{len(records):02d}{rendered}" == text


if __name__ == "__main__":
    fuzz(Path(__file__).stem, one_input)
