"""The public test vectors of shared/spec (pos-8583.md "Test vectors", demo-fixture.md, fixture-vectors.json),
reproduced byte for byte.

fixture-vectors.json is read from the copy in tests/contract/data (always present); when the shared spec sits
beside the clone (`<clone>/../shared/spec`), the copy must equal it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posgate.cards import build_demo_track2, parse_track2, track2_cvv, track2_pin_offset
from posgate.security import (
    card_verification_value,
    cup_ecb_mac,
    decrypt_under,
    encode_pin_block,
    generate_arpc,
    generate_arqc,
    icc_master_key,
    kcv,
    network_mac,
    pin_offset,
    session_key,
    verify_arqc,
    verify_cup_ecb_mac,
    verify_cvv,
    verify_pin_block,
)

DATA_COPY = Path(__file__).resolve().parent / "data" / "fixture-vectors.json"
SHARED_SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "fixture-vectors.json"
VECTORS = json.loads(DATA_COPY.read_text(encoding="utf-8"))

# demo-fixture.md: the two demo banks, by BIN.
BANKS = {
    "622999": {
        "pvk": bytes.fromhex("0123456789ABCDEF0123456789ABCDEF"),
        "cvk": bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"),
    },
    "622888": {
        "pvk": bytes.fromhex("FEDCBA9876543210FEDCBA9876543210"),
        "cvk": bytes.fromhex("11112222333344445555666677778888"),
        "imk_ac": bytes.fromhex("9E15204313F7318ACB79B90BD986AD29"),
    },
}
PINS = {"6229990000000053": "888888"}  # every other card: 123456
DEMO_TMK = bytes.fromhex("404142434445464748494A4B4C4D4E4F")

# pos-8583.md "Test vectors"
MAC_VECTOR_MAK = bytes.fromhex("0723C80DB5F4CD3D0723C80DB5F4CD3D")
MAC_VECTOR_FRAME = bytes.fromhex(
    "007F600003000060321032007202003020048000C08015000000000000001234000002030099303030303030303139353237"
    "313831383232313738373531353600192600000100060000000000435F01123238343431323334353637383930313233345F"
    "03063136303033365F04063230303832365C0230314233413039324145"
)
PIN_VECTOR_TMK = bytes.fromhex("44444444444444444444444444444444")
PIN_VECTOR_PIK_UNDER_TMK = bytes.fromhex("84C5491C3834928E7B26B5409A942BCF")
PIN_VECTOR_PAN = "9001100000000027"
PIN_VECTOR_BLOCK = bytes.fromhex("3D87C8B8FA17C67C")


def test_data_copy_matches_shared_spec_when_present() -> None:
    if SHARED_SPEC.exists():
        assert json.loads(SHARED_SPEC.read_text(encoding="utf-8")) == VECTORS
    assert len(VECTORS["cards"]) == 8


@pytest.mark.parametrize("card", VECTORS["cards"], ids=lambda card: card["pan"])
class TestCards:
    def test_pin_offset(self, card: dict[str, str]) -> None:
        bank = BANKS[card["pan"][:6]]
        assert pin_offset(bank["pvk"], PINS.get(card["pan"], "123456"), card["pan"]) == card["pin_offset"]

    def test_cvv(self, card: dict[str, str]) -> None:
        bank = BANKS[card["pan"][:6]]
        track = parse_track2(card["track2"])
        assert track.pan == card["pan"]
        cvv = card_verification_value(bank["cvk"], card["pan"], track.expiry, track.service_code)
        assert cvv == card["cvv"]
        assert verify_cvv(bank["cvk"], card["pan"], track.expiry, track.service_code, card["cvv"])

    def test_track2(self, card: dict[str, str]) -> None:
        track = parse_track2(card["track2"])
        built = build_demo_track2(
            card["pan"], track.expiry, track.service_code, card["pin_offset"], card["cvv"]
        )
        assert built == card["track2"]
        assert track2_pin_offset(track) == card["pin_offset"]
        assert track2_cvv(track) == card["cvv"]

    def test_pin_block_verifies_against_the_stored_offset(self, card: dict[str, str]) -> None:
        bank = BANKS[card["pan"][:6]]
        zpk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
        block = encode_pin_block(PINS.get(card["pan"], "123456"), card["pan"], zpk)
        assert verify_pin_block(block, card["pan"], zpk, bank["pvk"], card["pin_offset"])


def test_chip_card() -> None:
    chip = VECTORS["chip"]
    icc_mk = icc_master_key(BANKS[chip["pan"][:6]]["imk_ac"], chip["pan"], chip["psn"])
    assert icc_mk.hex().upper() == chip["icc_master_key"]
    sk = session_key(icc_mk, bytes.fromhex(chip["atc"]))
    assert sk.hex().upper() == chip["session_key"]
    data = bytes.fromhex(chip["arqc_input"])
    arqc = generate_arqc(sk, data)
    assert arqc.hex().upper() == chip["arqc"]
    assert verify_arqc(sk, data, arqc)
    arc = bytes.fromhex(chip["arc"])
    assert arc == b"00"  # the two ASCII bytes of field 39
    assert generate_arpc(sk, arqc, arc).hex().upper() == chip["arpc"]


def test_terminal_tmk_kcv() -> None:
    assert kcv(DEMO_TMK) == VECTORS["terminal"]["tmk_kcv"] == "8BAF473F"


def test_cup_ecb_mac_vector() -> None:
    assert int.from_bytes(MAC_VECTOR_FRAME[:2], "big") == len(MAC_VECTOR_FRAME) - 2
    data = MAC_VECTOR_FRAME[2 + 5 + 6 : -8]  # MTI up to field 64 exclusive
    assert MAC_VECTOR_FRAME[-8:] == b"B3A092AE"
    assert cup_ecb_mac(MAC_VECTOR_MAK, data) == b"B3A092AE"
    assert verify_cup_ecb_mac(MAC_VECTOR_MAK, data, b"B3A092AE")


def test_mac_vector_is_not_iso9797_alg3() -> None:
    data = MAC_VECTOR_FRAME[2 + 5 + 6 : -8]
    assert network_mac(MAC_VECTOR_MAK, data).hex().upper()[:8].encode() != b"B3A092AE"
    assert network_mac(MAC_VECTOR_MAK, data)[:8] != b"B3A092AE"


def test_pin_block_vector() -> None:
    pik = decrypt_under(PIN_VECTOR_TMK, PIN_VECTOR_PIK_UNDER_TMK)
    assert encode_pin_block("123456", PIN_VECTOR_PAN, pik) == PIN_VECTOR_BLOCK
