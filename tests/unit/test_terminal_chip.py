"""The simulated chip: the fixture's ARQC vector, field 55's tags, the ARPC check, the tamper switch, ATCs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from posgate.cards.tlv import decode_tlv, encode_tlv
from posgate.errors import EncodeError, SecurityError
from posgate.security.emv import arqc_data, generate_arpc, verify_arqc
from posgate.terminal.cards import demo_card, manual_card
from posgate.terminal.chip import (
    REQUEST_TAGS,
    ChipCard,
    IccRequest,
    arpc_verdict,
    icc_request,
    transaction_tags,
)
from posgate.terminal.journal import card_key
from posgate.terminal.state import TerminalState, demo_terminal_state

VECTORS = json.loads((Path(__file__).parents[1] / "contract" / "data" / "fixture-vectors.json").read_text())
CHIP = VECTORS["chip"]
IMK_AC = bytes.fromhex("9E15204313F7318ACB79B90BD986AD29")
REQUIRED = {"9F26", "9F27", "9F10", "9F37", "9F36", "95", "9A", "9C", "9F02", "5F2A", "82", "9F1A", "9F03"}
REQUIRED |= {"9F33", "9F34", "84"}


def _fixture_request(tamper: bool = False) -> IccRequest:
    """The fixture's ARQC input: 88.00 CNY purchase on 2026-11-26, UN 11223344, ATC 0001."""
    card = demo_card(CHIP["pan"])
    assert card.chip is not None
    tags = transaction_tags(
        amount_fen=8800,
        txn_date=dt.date(2026, 11, 26),
        txn_type="00",
        unpredictable_number=bytes.fromhex("11223344"),
        atc=int(CHIP["atc"], 16),
    )
    return icc_request(card.chip, tags, tamper)


def test_demo_chip_cards_carry_the_issuers_icc_master_key() -> None:
    card = demo_card(CHIP["pan"])
    assert card.chip is not None and card.is_chip
    assert card.chip.icc_master_key.hex().upper() == CHIP["icc_master_key"]
    assert card.chip.session_key(1).hex().upper() == CHIP["session_key"]
    assert demo_card("credit-chip-2").chip is not None
    assert demo_card("debit-ok").chip is None
    assert manual_card(CHIP["pan"], "3012").chip is None
    assert CHIP["icc_master_key"] not in repr(card) + repr(card.chip)


def test_arqc_of_the_fixture_card_matches_the_vector() -> None:
    request = _fixture_request()
    assert arqc_data(request.tags).hex().upper() == CHIP["arqc_input"]
    assert request.arqc.hex().upper() == CHIP["arqc"]
    assert request.tags["9F26"] == request.arqc
    assert request.session_key.hex().upper() == CHIP["session_key"]


def test_field55_carries_the_required_tags_in_order() -> None:
    request = _fixture_request()
    raw = bytes.fromhex(request.field55())
    tags = decode_tlv(raw)
    assert set(tags) == REQUIRED and len(REQUEST_TAGS) == len(REQUIRED)
    assert raw == encode_tlv({tag: tags[tag] for tag in REQUEST_TAGS})
    assert tags["9F10"].hex().upper() == "07010103A00000"
    assert tags["9F10"][3:7].hex().upper() == "03A00000"
    expected = {
        "9F27": "80",
        "9F36": "0001",
        "95": "0000000000",
        "9A": "261126",
        "9C": "00",
        "9F02": "000000008800",
        "9F03": "000000000000",
        "5F2A": "0156",
        "9F1A": "0156",
        "82": "7C00",
        "9F33": "E0E1C8",
        "9F34": "420300",
        "84": "A000000333010101",
        "9F37": "11223344",
    }
    assert {tag: tags[tag].hex().upper() for tag in expected} == expected
    # the issuer's own check passes on what the terminal sends
    assert verify_arqc(request.session_key, arqc_data(tags), tags["9F26"])


def test_no_pin_changes_the_cvm_results_and_balance_uses_type_30() -> None:
    card = demo_card(CHIP["pan"])
    assert card.chip is not None
    tags = transaction_tags(
        amount_fen=0,
        txn_date=dt.date(2026, 1, 2),
        txn_type="30",
        unpredictable_number=bytes(4),
        atc=7,
        pin_entered=False,
    )
    request = icc_request(card.chip, tags)
    assert request.tags["9F34"].hex().upper() == "1F0302"
    assert request.tags["9C"] == b"\x30" and request.tags["9F02"] == bytes(6)
    assert request.tags["9F36"] == b"\x00\x07"


def test_tamper_flips_a_bit_of_9f26() -> None:
    good, bad = _fixture_request(), _fixture_request(tamper=True)
    assert bad.tags["9F26"] != good.tags["9F26"]
    diff = int.from_bytes(bad.arqc, "big") ^ int.from_bytes(good.arqc, "big")
    assert diff.bit_count() == 1
    assert not verify_arqc(bad.session_key, arqc_data(bad.tags), bad.tags["9F26"])
    assert decode_tlv(bytes.fromhex(bad.field55()))["9F26"] == bad.arqc


def _response55(request: IccRequest, code: str, arpc: bytes | None = None) -> str:
    arc = code.encode("ascii")
    arpc = arpc if arpc is not None else generate_arpc(request.session_key, request.arqc, arc)
    return encode_tlv({"91": arpc + arc}).hex().upper()


def test_arpc_verdict() -> None:
    request = _fixture_request()
    field55 = _response55(request, "00")
    assert field55 == "910A" + CHIP["arpc"] + CHIP["arc"]
    assert arpc_verdict(request, field55, "00") is True
    assert arpc_verdict(request, _response55(request, "51"), "51") is True
    # the ARC must be field 39's
    assert arpc_verdict(request, field55, "05") is False
    # a wrong ARPC, a short tag 91, garbage
    assert arpc_verdict(request, _response55(request, "00", bytes(8)), "00") is False
    assert arpc_verdict(request, encode_tlv({"91": bytes(9)}).hex(), "00") is False
    assert arpc_verdict(request, "9F", "00") is False
    # absent: no verdict
    assert arpc_verdict(request, None, "00") is None
    assert arpc_verdict(request, encode_tlv({"8A": b"00"}).hex(), "00") is None
    # another card's session key does not verify
    other = ChipCard.from_issuer(IMK_AC, "6228880000000032", "01")
    assert (
        arpc_verdict(IccRequest(request.tags, request.arqc, other.session_key(1), 1), field55, "00") is False
    )


def test_atc_advances_per_card_and_persists(tmp_path: Path) -> None:
    state = demo_terminal_state()
    one, two = "6228880000000016", "6228880000000032"
    assert [state.next_atc(one) for _ in range(3)] == [1, 2, 3]
    assert state.next_atc(two) == 1
    path = tmp_path / "terminal.json"
    state.save(path)
    text = path.read_text()
    assert one not in text and two not in text
    assert json.loads(text)["atc"] == {card_key(one): 3, card_key(two): 1}
    loaded = TerminalState.load(path)
    assert loaded.next_atc(one) == 4
    loaded.atc[card_key(one)] = 0xFFFF
    assert loaded.next_atc(one) == 1


def test_bad_inputs() -> None:
    kwargs = {"txn_date": dt.date(2026, 1, 1), "txn_type": "00", "unpredictable_number": bytes(4), "atc": 1}
    with pytest.raises(EncodeError, match="amount"):
        transaction_tags(amount_fen=-1, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(SecurityError, match="ATC"):
        transaction_tags(amount_fen=1, **{**kwargs, "atc": 0x10000})  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="unpredictable"):
        transaction_tags(amount_fen=1, **{**kwargs, "unpredictable_number": b"\x00"})  # type: ignore[arg-type]
