"""Terminal request builders: fields per entry mode and per message, codec round trip, the MAC."""

from __future__ import annotations

import pytest

from posgate.errors import EncodeError
from posgate.iso8583.codec import decode_pos, encode_pos, encode_pos_with_mac, mac_payload
from posgate.security.pin import encode_pin_block
from posgate.security.pos_mac import cup_ecb_mac, verify_cup_ecb_mac
from posgate.terminal.cards import demo_card, manual_card
from posgate.terminal.messages import (
    REQUEST_HEADER,
    echo_request,
    entry_mode,
    financial_request,
    last_transaction,
    request_tpdu,
    reversal_request,
    sale_request,
    sign_in_request,
    sign_out_request,
)
from posgate.terminal.state import TerminalState, demo_terminal_state

PIK = bytes.fromhex("4567C298FB0B045DAB54BF499E10EFCD")
MAK = bytes.fromhex("0723C80DB5F4CD3D0723C80DB5F4CD3D")


@pytest.fixture
def state() -> TerminalState:
    return demo_terminal_state()


def _pin_block(pan: str) -> str:
    return encode_pin_block("123456", pan, PIK).hex().upper()


def _round_trip(msg: dict[str, str]) -> dict[str, str]:
    decoded = decode_pos(encode_pos(msg))
    assert decoded == msg
    return decoded


def test_frame_constants() -> None:
    assert REQUEST_HEADER.hex().upper() == "603100000000"
    assert request_tpdu("0003") == bytes.fromhex("6000030000")
    with pytest.raises(EncodeError):
        request_tpdu("3")


def test_sign_in_request(state: TerminalState) -> None:
    msg = sign_in_request(state, "000001")
    assert msg == {
        "t": "0800",
        "11": "000001",
        "41": "10000001",
        "42": "898440153110001",
        "60": "00000001003",
        "63": "001",
    }
    _round_trip(msg)
    assert sign_in_request(state, "000002", with_tdk=True)["60"] == "00000001004"


def test_sign_out_and_echo(state: TerminalState) -> None:
    state.batch = "000123"
    sign_out = _round_trip(sign_out_request(state, "000003"))
    echo = _round_trip(echo_request(state, "000004"))
    assert (sign_out["t"], sign_out["60"]) == ("0820", "00000123002")
    assert (echo["t"], echo["60"]) == ("0820", "00000123301")
    assert "64" not in echo and "63" not in echo


def test_sale_magstripe_with_pin(state: TerminalState) -> None:
    card = demo_card("debit-ok")
    msg = sale_request(state, "000010", card, 1234, _pin_block(card.pan))
    decoded = _round_trip(msg)
    assert decoded["t"] == "0200"
    assert decoded["3"] == "000000"
    assert decoded["4"] == "000000001234"
    assert decoded["11"] == "000010"
    assert decoded["14"] == "3012"
    assert decoded["22"] == "021"
    assert decoded["25"] == "00"
    assert decoded["26"] == "12"
    assert decoded["35"] == "6229990000000012D3012101136169110300"
    assert decoded["41"] == "10000001"
    assert decoded["42"] == "898440153110001"
    assert decoded["49"] == "156"
    assert decoded["52"] == _pin_block(card.pan)
    assert decoded["53"] == "2600000000000000"
    assert decoded["60"] == "2200000100060"
    assert "2" not in decoded and "23" not in decoded and "64" not in decoded


def test_sale_magstripe_without_pin(state: TerminalState) -> None:
    msg = _round_trip(sale_request(state, "000011", demo_card("credit-ok"), 100, None))
    assert msg["22"] == "022"
    assert not {"26", "52", "53"} & msg.keys()


def test_sale_manual_entry(state: TerminalState) -> None:
    card = manual_card("6229990000000012", "3012")
    without_pin = _round_trip(sale_request(state, "000012", card, 1, None, "manual"))
    assert without_pin["2"] == "6229990000000012"
    assert without_pin["14"] == "3012"
    assert without_pin["22"] == "012"
    assert "35" not in without_pin and "52" not in without_pin
    with_pin = _round_trip(sale_request(state, "000013", card, 1, _pin_block(card.pan), "manual"))
    assert (with_pin["22"], with_pin["26"], with_pin["53"]) == ("011", "12", "2600000000000000")


def test_sale_chip_entry_carries_the_psn_and_icc_data(state: TerminalState) -> None:
    card = demo_card("credit-chip")
    msg = _round_trip(sale_request(state, "000014", card, 500, None, "chip", icc_data_hex="9f360200019c0100"))
    assert (msg["22"], msg["23"], msg["55"]) == ("052", "001", "9F360200019C0100")
    assert msg["60"] == "2200000100060"


def test_sale_rejects_bad_amounts_and_modes(state: TerminalState) -> None:
    card = demo_card("debit-ok")
    for amount in (0, -1, 10**12, True, 12.34):
        with pytest.raises(EncodeError) as info:
            sale_request(state, "000001", card, amount, None)  # type: ignore[arg-type]
        assert info.value.field == 4
    with pytest.raises(EncodeError, match="entry mode must be one of"):
        sale_request(state, "000001", card, 1, None, "nfc")
    with pytest.raises(EncodeError, match="track 2"):
        sale_request(state, "000001", manual_card("6229990000000012", "3012"), 1, None, "magstripe")
    with pytest.raises(EncodeError, match="STAN"):
        sale_request(state, "1", card, 1, None)


def test_balance_request(state: TerminalState) -> None:
    card = demo_card("debit-low")
    request = financial_request("balance", state, "000020", card, pin_block_hex=_pin_block(card.pan))
    msg = _round_trip(request)
    assert (msg["t"], msg["3"], msg["25"], msg["60"]) == ("0200", "310000", "00", "0100000100060")
    assert (msg["22"], msg["26"], msg["53"]) == ("021", "12", "2600000000000000")
    assert "4" not in msg


def test_entry_mode_table() -> None:
    modes = ("manual", "magstripe", "chip", "contactless", "fallback")
    assert [entry_mode(e, p) for e in modes for p in (True, False)] == [
        "011",
        "012",
        "021",
        "022",
        "051",
        "052",
        "071",
        "072",
        "801",
        "802",
    ]


def test_sale_mac_verifies_with_the_mak(state: TerminalState) -> None:
    card = demo_card("debit-ok")
    msg = sale_request(state, "000030", card, 1234, _pin_block(card.pan))
    encoded = encode_pos_with_mac(msg, lambda data: cup_ecb_mac(MAK, data))
    decoded = decode_pos(encoded)
    assert verify_cup_ecb_mac(MAK, mac_payload(encoded), bytes.fromhex(decoded["64"]))
    tampered = bytearray(encoded)
    tampered[10] ^= 0x01
    assert not verify_cup_ecb_mac(MAK, mac_payload(bytes(tampered)), bytes.fromhex(decoded["64"]))


def test_reversal_carries_the_original_codes_and_no_card_data(state: TerminalState) -> None:
    card = demo_card("debit-ok")
    sale = sale_request(state, "000040", card, 1234, _pin_block(card.pan))
    last = last_transaction(sale)
    assert card.pan not in repr(last)
    msg = _round_trip(reversal_request(state, last, "A0"))
    assert msg == {
        "t": "0400",
        "3": "000000",
        "4": "000000001234",
        "11": "000040",
        "22": "021",
        "25": "00",
        "39": "A0",
        "41": "10000001",
        "42": "898440153110001",
        "49": "156",
        "60": "2200000100060",
    }
    assert reversal_request(state, last)["39"] == "98"
    with pytest.raises(EncodeError):
        reversal_request(state, last, "9")
