"""The issuer simulator's pure message handling and card checks: reading requests, field 90, responses,
field 54, CVV / PIN / ARQC verdicts and the ARPC, against the fixture's published vectors."""

from __future__ import annotations

import json
import pathlib

import pytest

from posgate.cards.track2 import parse_track2
from posgate.errors import DecodeError
from posgate.issuer.card_checks import arpc_field, check_arqc, check_pin, check_track_cvv
from posgate.issuer.messages import (
    balance_field,
    build_response,
    parse_original_data,
    read_financial,
    read_reversal,
)
from posgate.issuer.rules import Check
from posgate.security.pin import encode_pin_block

VECTORS = json.loads((pathlib.Path("/work/shared/spec/fixture-vectors.json")).read_text())
CVK_A = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
ZPK_A = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
PVK_A = bytes.fromhex("0123456789ABCDEF0123456789ABCDEF")
ZPK_B = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")
IMK_B = bytes.fromhex("9E15204313F7318ACB79B90BD986AD29")
PAN = "6229990000000012"
TRACK = "6229990000000012D3012101136169110300"


def chip_tags(arqc: str = "A40C02DEFB441C8A") -> dict[str, bytes]:
    """Field 55 of the vector's ARQC input (demo-fixture.md order), with its ARQC."""
    values = {
        "9F02": "000000008800",
        "9F03": "000000000000",
        "9F1A": "0156",
        "95": "0000000000",
        "5F2A": "0156",
        "9A": "261126",
        "9C": "00",
        "9F37": "11223344",
        "82": "7C00",
        "9F36": "0001",
        "9F10": "07010103A00000",
        "9F26": arqc,
        "9F27": "80",
    }
    return {tag: bytes.fromhex(value) for tag, value in values.items()}


def request(**fields: str) -> dict[str, str]:
    base = {
        "t": "0200",
        "3": "000000",
        "4": "000000001000",
        "7": "1126101500",
        "11": "000001",
        "32": "49990000",
        "35": TRACK,
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value}


# ---- reading requests


def test_read_financial_from_track() -> None:
    req = read_financial(request(**{"52": "00" * 8, "25": "00", "37": "000000000001"}))
    assert (req.pan, req.expiry, req.amount_fen, req.acquirer_id) == (PAN, "3012", 1000, "00049990000")
    assert req.track is not None and req.track.service_code == "101"
    assert req.pin_block == bytes(8) and req.rrn == "000000000001"


def test_read_financial_manual_entry() -> None:
    req = read_financial(request(**{"35": "", "2": PAN, "14": "3012"}))
    assert (req.pan, req.expiry, req.track) == (PAN, "3012", None)


def test_read_financial_repr_masks_the_card() -> None:
    text = repr(read_financial(request(**{"52": "1122334455667788"})))
    assert "622999******0012" in text
    assert PAN not in text and "1122334455667788" not in text and "3012" not in text


def test_read_financial_balance_inquiry_without_amount() -> None:
    assert read_financial(request(**{"3": "310000", "4": ""})).amount_fen == 0


def test_read_financial_needs_an_amount() -> None:
    with pytest.raises(DecodeError, match="field 4: required") as err:
        read_financial(request(**{"4": ""}))
    assert err.value.field == 4


def test_read_financial_needs_a_card() -> None:
    with pytest.raises(DecodeError, match="field 2: required when field 35 is absent"):
        read_financial(request(**{"35": ""}))


def test_read_financial_track_and_pan_must_agree() -> None:
    with pytest.raises(DecodeError, match="field 35: track 2 PAN differs from field 2"):
        read_financial(request(**{"2": "6229990000000020"}))


@pytest.mark.parametrize("missing", ["7", "11", "32", "3"])
def test_read_financial_needs_its_key_fields(missing: str) -> None:
    with pytest.raises(DecodeError, match=f"field {missing}: required in a 0200"):
        read_financial(request(**{missing: ""}))


def test_read_financial_chip_data_and_psn() -> None:
    req = read_financial(request(**{"55": "9F36020001", "23": "001"}))
    assert req.icc == {"9F36": b"\x00\x01"} and req.psn == "01"


def test_original_data_and_reversal() -> None:
    f90 = "".join(("0200", "000123", "1126101500", "00049990000", "00000000000"))
    original = parse_original_data(f90)
    assert original.key("Demo Bank A").acquirer_id == "00049990000"
    zeros = "".join(("0200", "000123", "1126101500", "00000000000", "00000000000"))
    assert read_reversal({"t": "0420", "32": "49990000", "90": zeros}).acquirer_id == "00049990000"


def test_reversal_needs_field_90() -> None:
    with pytest.raises(DecodeError, match="field 90: required in a 0420"):
        read_reversal({"t": "0420", "11": "000001"})


# ---- responses


def test_build_response_echoes_but_never_card_fields() -> None:
    req = request(**{"2": PAN, "14": "3012", "52": "00" * 8, "55": "9F36020001", "41": "10000001"})
    response = build_response(req, "00", {"38": "123456"})
    assert response == {
        "t": "0210",
        "3": "000000",
        "4": "000000001000",
        "7": "1126101500",
        "11": "000001",
        "32": "49990000",
        "38": "123456",
        "39": "00",
        "41": "10000001",
    }


def test_balance_field() -> None:
    assert balance_field("debit", 1_000_000) == "1002156C000001000000"
    assert balance_field("credit", 5_000_000) == "3002156C000005000000"


# ---- card checks


@pytest.mark.parametrize("card", VECTORS["cards"], ids=lambda c: c["pan"][-4:])
def test_track_cvv_of_every_fixture_card(card: dict[str, str]) -> None:
    cvk = CVK_A if card["pan"].startswith("622999") else bytes.fromhex("11112222333344445555666677778888")
    assert check_track_cvv(parse_track2(card["track2"]), cvk) is Check.PASSED


def test_track_cvv_verdicts() -> None:
    wrong = parse_track2(TRACK[:-5] + "10400")
    short = parse_track2("6229990000000012D3012101")
    assert check_track_cvv(wrong, CVK_A) is Check.FAILED
    assert check_track_cvv(short, CVK_A) is Check.FAILED
    assert check_track_cvv(None, CVK_A) is Check.ABSENT
    assert check_track_cvv(parse_track2(TRACK), None) is Check.MALFORMED


def test_pin_verdicts() -> None:
    offset = VECTORS["cards"][0]["pin_offset"]
    assert check_pin(encode_pin_block("123456", PAN, ZPK_A), PAN, ZPK_A, PVK_A, offset) is Check.PASSED
    assert check_pin(encode_pin_block("654321", PAN, ZPK_A), PAN, ZPK_A, PVK_A, offset) is Check.FAILED
    assert check_pin(encode_pin_block("123456", PAN, ZPK_B), PAN, ZPK_A, PVK_A, offset) is Check.MALFORMED
    assert check_pin(None, PAN, ZPK_A, PVK_A, offset) is Check.ABSENT
    assert check_pin(bytes(8), PAN, None, PVK_A, offset) is Check.MALFORMED


def test_arqc_and_arpc_vectors() -> None:
    chip = VECTORS["chip"]
    result = check_arqc(chip_tags(), chip["pan"], chip["psn"], IMK_B)
    assert result.check is Check.PASSED
    assert result.session_key == bytes.fromhex(chip["session_key"])
    assert arpc_field(result, "00") == "910A" + chip["arpc"] + chip["arc"]
    assert chip["session_key"] not in repr(result).upper()


def test_wrong_arqc_still_gets_an_arpc_for_its_decline() -> None:
    result = check_arqc(chip_tags(arqc="0000000000000000"), "6228880000000016", "01", IMK_B)
    assert result.check is Check.FAILED
    field55 = arpc_field(result, "05")
    assert field55 is not None and field55.startswith("910A") and field55.endswith("3035")


def test_arqc_verdicts_without_what_it_needs() -> None:
    tags = chip_tags()
    assert check_arqc(None, PAN, "01", IMK_B).check is Check.ABSENT
    assert check_arqc(tags, "6228880000000016", "01", None).check is Check.MALFORMED
    assert check_arqc(tags, "6228880000000016", None, IMK_B).check is Check.MALFORMED
    no_arqc = {tag: value for tag, value in tags.items() if tag != "9F26"}
    assert check_arqc(no_arqc, "6228880000000016", "01", IMK_B).check is Check.MALFORMED
    no_amount = {tag: value for tag, value in tags.items() if tag != "9F02"}
    partial = check_arqc(no_amount, "6228880000000016", "01", IMK_B)
    assert partial.check is Check.MALFORMED and arpc_field(partial, "05") is not None
    assert arpc_field(check_arqc(None, PAN, "01", IMK_B), "00") is None
