"""Reading a host response (MAC check, balance) and printing the receipt."""

from __future__ import annotations

from datetime import datetime

from posgate.iso8583.codec import encode_pos, encode_pos_with_mac
from posgate.iso8583.framing import split_pos_frame
from posgate.money import yuan
from posgate.security.pos_mac import cup_ecb_mac
from posgate.terminal.receipt import format_receipt
from posgate.terminal.result import parse_balance, parse_response

MAK = bytes.fromhex("0723C80DB5F4CD3D0723C80DB5F4CD3D")
OTHER_MAK = bytes.fromhex("1111111111111111" * 2)

SALE_0210 = {
    "t": "0210",
    "3": "000000",
    "4": "000000001234",
    "11": "000007",
    "25": "00",
    "37": "251126000001",
    "38": "A1B2C3",
    "39": "00",
    "41": "10000001",
    "42": "898440153110001",
    "49": "156",
    "60": "22000001000",
}


def _maced(msg: dict[str, str], mak: bytes = MAK) -> bytes:
    return encode_pos_with_mac(msg, lambda data: cup_ecb_mac(mak, data))


def test_approved_0210_with_a_good_mac() -> None:
    result = parse_response(_maced(SALE_0210), MAK, elapsed_ms=3.5, masked_pan="622999******0012")
    assert result.approved
    assert result.mac_ok is True
    assert (result.mti, result.response_code, result.response_text) == ("0210", "00", "approved")
    assert (result.stan, result.rrn, result.auth_code, result.amount_fen) == (
        "000007",
        "251126000001",
        "A1B2C3",
        1234,
    )
    assert result.balance_fen is None and result.elapsed_ms == 3.5
    assert not result.needs_reversal


def test_wrong_or_missing_mac_is_not_approved() -> None:
    wrong = parse_response(_maced(SALE_0210, OTHER_MAK), MAK)
    assert wrong.mac_ok is False
    assert not wrong.approved and wrong.needs_reversal
    missing = parse_response(encode_pos(SALE_0210), MAK)
    assert missing.mac_ok is False and not missing.approved
    not_signed_in = parse_response(_maced(SALE_0210), None)
    assert not_signed_in.mac_ok is False


def test_a_decline_needs_no_mac() -> None:
    declined = parse_response(encode_pos({**SALE_0210, "39": "51"}), MAK)
    assert declined.mac_ok is None
    assert not declined.approved and not declined.needs_reversal
    assert declined.response_text == "insufficient funds"


def test_sign_in_again_nibble_in_the_header() -> None:
    result = parse_response(encode_pos({**SALE_0210, "39": "97"}), MAK, header=bytes.fromhex("603103000000"))
    assert result.sign_in_required
    assert not parse_response(
        encode_pos(SALE_0210), MAK, header=bytes.fromhex("603100000000")
    ).sign_in_required


def test_public_mac_vector_verifies() -> None:
    frame = bytes.fromhex(
        "007F600003000060321032007202003020048000C08015000000000000001234000002030099303030303030303139353237"
        "313831383232313738373531353600192600000100060000000000435F01123238343431323334353637383930313233345F"
        "03063136303033365F04063230303832365C0230314233413039324145"
    )
    parts = split_pos_frame(frame[2:])
    assert parse_response(parts.payload, MAK, header=parts.header).mac_ok is True
    assert parse_response(parts.payload, OTHER_MAK).mac_ok is False


def test_balance_from_field_54() -> None:
    msg = {**SALE_0210, "3": "310000", "54": "1002156C000000998766"}
    del msg["4"]
    result = parse_response(_maced(msg), MAK)
    assert result.balance_fen == 998766 and result.amount_fen is None
    assert parse_balance("3001156C0000000000003002156D000000000150") == -150


def test_receipt_masks_the_pan_and_shows_yuan() -> None:
    result = parse_response(
        _maced({**SALE_0210, "2": "6229990000000012"}), MAK, masked_pan="622999******0012"
    )
    text = format_receipt(
        result, "Demo Supermarket", "10000001", "898440153110001", datetime(2025, 11, 26, 9, 5)
    )
    assert "622999******0012" in text
    assert "6229990000000012" not in text
    assert "CNY 12.34" in text
    for expected in ("251126000001", "A1B2C3", "00 approved", "2025-11-26 09:05:00", "APPROVED", "SALE"):
        assert expected in text
    assert max(len(line) for line in text.splitlines()) <= 32


def test_receipt_of_a_decline_and_a_mac_failure() -> None:
    declined = parse_response(encode_pos({**SALE_0210, "39": "55"}), MAK)
    text = format_receipt(declined, "Shop", "10000001", "898440153110001", datetime(2025, 1, 1))
    assert "DECLINED  55 wrong PIN" in text
    bad_mac = parse_response(_maced(SALE_0210, OTHER_MAK), MAK)
    text = format_receipt(bad_mac, "Shop", "10000001", "898440153110001", datetime(2025, 1, 1))
    assert "DECLINED" in text and "MAC CHECK FAILED" in text


def test_receipt_amounts_are_plain_yuan() -> None:
    assert [yuan(n, grouping=False) for n in (0, 1, 99, 100, 1234, 100000000)] == [
        "0.00",
        "0.01",
        "0.99",
        "1.00",
        "12.34",
        "1000000.00",
    ]
