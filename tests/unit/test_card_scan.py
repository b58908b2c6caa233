"""The card-data scanner (posgate.tools.card_scan): every encoding it must find, what it must not flag, and
that its own findings never hold card data."""

from __future__ import annotations

from pathlib import Path

import pytest

from posgate.security.pin import encode_pin_block
from posgate.tools.card_scan import CardSecrets, clear_pin_block, scan_bytes, scan_path

PAN = "6229990000000012"
ODD_PAN = "6229990000000000004"  # 19 digits, Luhn-valid
TRACK2 = "6229990000000012D3012101136169110300"
PIK = bytes.fromhex("4567C298FB0B045DAB54BF499E10EFCD")


@pytest.fixture
def secrets() -> CardSecrets:
    s = CardSecrets()
    s.add_card(PAN, TRACK2, "123456", [("PIK", PIK)])
    s.add_card(ODD_PAN)
    return s


def whats(data: bytes, secrets: CardSecrets | None = None) -> list[str]:
    return [f.what for f in scan_bytes(data, "here", secrets)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"pan": "6229990000000012"}', "PAN 622999******0012 (ASCII)"),
        ("x 6229990000000012 y".encode("utf-16-le"), "PAN 622999******0012 (UTF-16)"),
        ("x 6229990000000012 y".encode("utf-16-be"), "PAN 622999******0012 (UTF-16 BE)"),
        (b"\x10" + bytes.fromhex(PAN) + b"\x99", "PAN 622999******0012 (BCD)"),
        (bytes.fromhex("0" + PAN + "0"), "PAN 622999******0012 (BCD)"),  # at an odd nibble offset
        (bytes.fromhex("0" + ODD_PAN), "PAN 622999*********0004 (BCD)"),
        (bytes.fromhex(ODD_PAN + "F"), "PAN 622999*********0004 (BCD)"),
        (b"00006229990000000012000000001000", "PAN 622999******0012 (ASCII)"),  # inside a 0320 record
        (TRACK2.encode(), "track 2 of 622999******0012 (ASCII)"),
        (TRACK2.replace("D", "=").encode(), "track 2 of 622999******0012 (ASCII)"),
        (
            b"622999******0012=3012101136169110300",
            "track 2 data of 622999******0012 after the separator (ASCII)",
        ),
        (bytes.fromhex(TRACK2), "track 2 of 622999******0012 (BCD)"),
        (encode_pin_block("123456", PAN, PIK), "PIN block of 622999******0012 (under PIK)"),
        (
            encode_pin_block("123456", PAN, PIK).hex().upper().encode(),
            "PIN block of 622999******0012 (under PIK), hex ASCII",
        ),
        (clear_pin_block("123456", PAN), "PIN block of 622999******0012 (clear)"),
    ],
)
def test_a_known_cards_secret_is_found_in_every_encoding(
    secrets: CardSecrets, data: bytes, expected: str
) -> None:
    assert expected in whats(data, secrets)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"card=4111111111111111;", "Luhn-valid 16-digit number 411111******1111 (ASCII)"),
        ("4111111111111111".encode("utf-16-le"), "Luhn-valid 16-digit number 411111******1111 (UTF-16)"),
        ("4111111111111111".encode("utf-16-be"), "Luhn-valid 16-digit number 411111******1111 (UTF-16 BE)"),
        (b"[6011000990139424]", "Luhn-valid 16-digit number 601100******9424 (ASCII)"),
        (b"378282246310005", "Luhn-valid 15-digit number 378282*****0005 (ASCII)"),
        (b"2221000000000009", "Luhn-valid 16-digit number 222100******0009 (ASCII)"),  # Mastercard 2-series
    ],
)
def test_any_stand_alone_luhn_valid_card_number_is_found(data: bytes, expected: str) -> None:
    assert whats(data) == [expected]


@pytest.mark.parametrize(
    "data",
    [
        b"622999******0012",  # masked
        b"4111111111111112",  # Luhn fails
        b"1764754341808000",  # a timestamp in microseconds: not a card's first digit (Luhn-valid)
        b"a4111111111111111f",  # inside a hex string (a hash)
        b"0" * 62,  # settlement totals
        b"000000012345002000000000100001" + b"4111111111111111",  # inside a longer number
        b"rrn=000000000042 stan=000001",
        b"app_id=2021000000000001",  # an Alipay app id: Luhn-valid, but no card IIN starts 2021
    ],
)
def test_what_is_not_a_clear_card_number_is_not_flagged(data: bytes) -> None:
    assert whats(data) == []


def test_a_finding_names_the_card_masked_only(secrets: CardSecrets) -> None:
    data = TRACK2.encode() + b" " + encode_pin_block("123456", PAN, PIK).hex().encode()
    findings = scan_bytes(data, "stderr", secrets)
    assert findings
    for finding in findings:
        assert PAN not in str(finding) and "3012101136169110300" not in str(finding)
        assert str(finding).startswith("stderr @")


def test_scan_path_reads_every_file_of_a_folder(tmp_path: Path, secrets: CardSecrets) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.log").write_bytes(b"ok " + PAN.encode())
    (tmp_path / "clean.txt").write_text("nothing here")
    findings = scan_path(tmp_path, secrets)
    assert {f.where for f in findings} == {str(tmp_path / "a" / "b" / "x.log")}


def test_the_demo_secrets_cover_every_demo_card() -> None:
    from posgate.fixtures.document import read_demo_fixture

    secrets = CardSecrets.demo(piks=[PIK])
    labels = {label for _, label in secrets.patterns}
    for card in read_demo_fixture().cards:
        masked = f"{card.pan[:6]}{'*' * (len(card.pan) - 10)}{card.pan[-4:]}"
        assert f"PAN {masked} (BCD)" in labels
        assert f"PIN block of {masked} (under PIK 1)" in labels
        assert f"PIN block of {masked} (under ZPK of {card.bank})" in labels
