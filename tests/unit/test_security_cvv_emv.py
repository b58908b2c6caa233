"""CVV and the EMV chip cryptograms (ARQC input from field 55, ARQC, ARPC)."""

from __future__ import annotations

import random

import pytest
from psec import cvv as psec_cvv

from posgate.cards import decode_tlv, encode_tlv
from posgate.errors import SecurityError
from posgate.fixtures.document import read_demo_fixture
from posgate.security import (
    arqc_data,
    card_verification_value,
    generate_arpc,
    generate_arqc,
    icc_master_key,
    session_key,
    verify_arqc,
    verify_cvv,
)

CVK_A = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
SK = bytes.fromhex("20A4D579AD85588CB9C4E3912A25B615")
ARQC_INPUT = bytes.fromhex("00000000880000000000000001560000000000015626112600112233447C00000103A00000")


def test_cvv_and_verify() -> None:
    assert card_verification_value(CVK_A, "6229990000000012", "3012", "101") == "103"
    assert verify_cvv(CVK_A, "6229990000000012", "3012", "101", "103")
    assert not verify_cvv(CVK_A, "6229990000000012", "3012", "101", "130")
    assert not verify_cvv(CVK_A, "6229990000000012", "3012", "201", "103")
    assert not verify_cvv(CVK_A, "6229990000000012", "3012", "101", "")


@pytest.mark.parametrize("cvv", ["1\u00e93", "\u0661\u0660\u0663", "103\u200b"])
def test_a_cvv_that_is_not_ascii_is_false_not_an_error(cvv: str) -> None:
    # Arabic-Indic digits are digits to str.isdigit(); none of these is the CVV, and none may raise
    assert verify_cvv(CVK_A, "6229990000000012", "3012", "101", cvv) is False


@pytest.mark.parametrize(
    ("pan", "expiry", "service_code", "message"),
    [
        ("62299900000", "3012", "101", "CVV: PAN must be 13 to 19 digits"),
        ("62299900000000123456", "3012", "101", "CVV: PAN must be 13 to 19 digits"),
        ("6229990000000012", "301", "101", "CVV: expiry must be 4 digits (YYMM)"),
        ("6229990000000012", "3012", "1O1", "CVV: service code must be 3 digits"),
    ],
)
def test_cvv_input_errors(pan: str, expiry: str, service_code: str, message: str) -> None:
    with pytest.raises(SecurityError) as info:
        card_verification_value(CVK_A, pan, expiry, service_code)
    assert str(info.value) == message


def test_cvv_needs_a_double_length_key() -> None:
    with pytest.raises(SecurityError, match=r"^CVK must be 16 bytes, got 8$"):
        card_verification_value(CVK_A[:8], "6229990000000012", "3012", "101")


def test_arqc_data_from_field_55() -> None:
    field55 = encode_tlv(
        {
            "9F26": bytes.fromhex("A40C02DEFB441C8A"),
            "9F27": b"\x80",
            "9F10": bytes.fromhex("07010103A00000") + bytes.fromhex("010A0100000000"),
            "9F37": bytes.fromhex("11223344"),
            "9F36": bytes.fromhex("0001"),
            "95": bytes(5),
            "9A": bytes.fromhex("261126"),
            "9C": b"\x00",
            "9F02": bytes.fromhex("000000008800"),
            "5F2A": bytes.fromhex("0156"),
            "82": bytes.fromhex("7C00"),
            "9F1A": bytes.fromhex("0156"),
            "9F03": bytes(6),
            "9F33": bytes.fromhex("E0E1C8"),
        }
    )
    tags = decode_tlv(field55)
    assert arqc_data(tags) == ARQC_INPUT
    assert verify_arqc(SK, arqc_data(tags), tags["9F26"])


def test_arqc_data_names_the_missing_tag() -> None:
    with pytest.raises(SecurityError, match=r"^field 55: tag 9F03 missing for the ARQC$"):
        arqc_data({"9F02": bytes(6)})


def test_arqc_verify_rejects_altered_data_or_cryptogram() -> None:
    arqc = generate_arqc(SK, ARQC_INPUT)
    assert verify_arqc(SK, ARQC_INPUT, arqc)
    assert not verify_arqc(SK, ARQC_INPUT[:-1] + b"\x01", arqc)
    assert not verify_arqc(SK, ARQC_INPUT, arqc[:7] + bytes([arqc[7] ^ 1]))
    assert not verify_arqc(SK, ARQC_INPUT, arqc[:4])


def test_session_keys_differ_per_atc() -> None:
    mk = icc_master_key(bytes.fromhex("9E15204313F7318ACB79B90BD986AD29"), "6228880000000016", "01")
    assert session_key(mk, b"\x00\x01") == SK
    assert session_key(mk, b"\x00\x02") != SK


def test_arpc_depends_on_the_response_code() -> None:
    arqc = generate_arqc(SK, ARQC_INPUT)
    assert generate_arpc(SK, arqc, b"00").hex().upper() == "D9468E8D054FEA29"
    assert generate_arpc(SK, arqc, b"05") != generate_arpc(SK, arqc, b"00")


def test_emv_input_errors() -> None:
    with pytest.raises(SecurityError, match=r"^ATC must be 2 bytes, got 1$"):
        session_key(SK, b"\x01")
    with pytest.raises(SecurityError, match=r"^ARC must be 2 bytes, got 1$"):
        generate_arpc(SK, bytes(8), b"0")
    with pytest.raises(SecurityError, match=r"^ICC master key: PSN must be 2 digits$"):
        icc_master_key(SK, "6228880000000016", "1")


def test_cvv_takes_the_second_decimalization_pass_when_the_first_gives_fewer_than_three_digits() -> None:
    # Demo Bank A's CVK; psec 1.3.0 answers '29' for this card (one decimal digit short)
    cvk = bytes.fromhex(read_demo_fixture().bank("Demo Bank A").cvk)
    cvv = card_verification_value(cvk, "6229997000081678", "3012", "101")
    # the 3DES result is BBEACAB29EEADDEC (psec's des.encrypt_tdes_ecb, by hand): its decimal digits are 2
    # and 9, then the second pass reads its first A–F digit, B, as 1
    assert cvv == "291"


def test_cvv_is_psecs_whenever_psec_gives_three_digits() -> None:
    rng = random.Random(11)
    for _ in range(2000):
        cvk = rng.randbytes(16)
        pan = "".join(rng.choice("0123456789") for _ in range(rng.randrange(13, 20)))
        expected = psec_cvv.generate_cvv(cvk, pan, "2912", "201")
        if len(expected) == 3:
            assert card_verification_value(cvk, pan, "2912", "201") == expected
