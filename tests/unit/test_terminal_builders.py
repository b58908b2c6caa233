"""The full POS transaction set as the terminal builds it (the terminal–host wire contract): every builder's
fields, encoded with posgate's codec and decoded back; entry modes; reversal of each reversible kind;
settlement and batch upload messages."""

from __future__ import annotations

import pytest

from posgate.errors import EncodeError
from posgate.iso8583.codec import decode_pos, encode_pos, parse_field60, parse_field61
from posgate.security.pin import encode_pin_block
from posgate.terminal.cards import demo_card, manual_card
from posgate.terminal.journal import BatchTotals, UploadGroup
from posgate.terminal.messages import (
    TXN_TYPES,
    Original,
    batch_end_request,
    batch_upload_request,
    financial_request,
    last_transaction,
    reversal_request,
    sale_request,
    settlement_request,
)
from posgate.terminal.state import TerminalState, demo_terminal_state

PIK = bytes.fromhex("4567C298FB0B045DAB54BF499E10EFCD")
SALE = Original(rrn="000000000123", batch="000001", stan="000042", auth_code="A1B2C3", date="1126")
COMMON = {"41": "10000001", "42": "898440153110001", "49": "156"}


@pytest.fixture
def state() -> TerminalState:
    state = demo_terminal_state()
    state.batch = "000007"
    return state


def _wire(msg: dict[str, str]) -> dict[str, str]:
    decoded = decode_pos(encode_pos(msg))
    assert decoded == msg
    return decoded


def _pin_block(pan: str) -> str:
    return encode_pin_block("123456", pan, PIK).hex().upper()


def _codes(msg: dict[str, str]) -> tuple[str, str, str, str]:
    return msg["t"], msg["3"], msg["25"], parse_field60(msg["60"]).type_code


def test_the_transaction_table_is_the_contract() -> None:
    table = {kind: (t.mti, t.processing_code, t.condition_code, t.type_code) for kind, t in TXN_TYPES.items()}
    assert table == {
        "balance": ("0200", "310000", "00", "01"),
        "sale": ("0200", "000000", "00", "22"),
        "void": ("0200", "200000", "00", "23"),
        "refund": ("0220", "200000", "00", "25"),
        "preauth": ("0100", "030000", "06", "10"),
        "preauth_void": ("0100", "200000", "06", "11"),
        "completion": ("0200", "000000", "06", "20"),
        "completion_void": ("0200", "200000", "06", "21"),
    }
    assert {k for k, t in TXN_TYPES.items() if t.reversible} == {
        "sale",
        "void",
        "preauth",
        "preauth_void",
        "completion",
        "completion_void",
    }


def test_sale_and_balance(state: TerminalState) -> None:
    card = demo_card("debit-ok")
    sale = _wire(sale_request(state, "000010", card, 1234, _pin_block(card.pan)))
    assert _codes(sale) == ("0200", "000000", "00", "22")
    assert sale["4"] == "000000001234" and sale["60"] == "2200000700060"
    assert {k: sale[k] for k in COMMON} == COMMON
    balance = _wire(financial_request("balance", state, "000011", card, pin_block_hex=_pin_block(card.pan)))
    assert _codes(balance) == ("0200", "310000", "00", "01")
    assert "4" not in balance and "61" not in balance and "37" not in balance


def test_void_of_a_sale(state: TerminalState) -> None:
    card = demo_card("debit-ok")
    msg = _wire(financial_request("void", state, "000012", card, amount_fen=5000, original=SALE))
    assert _codes(msg) == ("0200", "200000", "00", "23")
    assert (msg["4"], msg["37"], msg["38"], msg["61"]) == (
        "000000005000",
        "000000000123",
        "A1B2C3",
        "000001000042",
    )
    assert parse_field61(msg["61"]).date == ""
    assert msg["35"] == card.track2 and msg["22"] == "022"
    assert not {"52", "26", "53", "55"} & msg.keys()
    with_pin = _wire(
        financial_request(
            "void", state, "000013", card, amount_fen=5000, pin_block_hex=_pin_block(card.pan), original=SALE
        )
    )
    assert (with_pin["22"], with_pin["26"]) == ("021", "12")


def test_void_of_a_chip_sale_sends_no_icc_data(state: TerminalState) -> None:
    card = demo_card("credit-chip")
    msg = _wire(
        financial_request("void", state, "000014", card, amount_fen=5000, entry="chip", original=SALE)
    )
    assert (msg["22"], msg["23"], msg["60"]) == ("052", "001", "2300000700060")
    assert "55" not in msg
    with pytest.raises(EncodeError) as info:
        financial_request(
            "void", state, "000015", card, amount_fen=1, entry="chip", icc_data_hex="9C0100", original=SALE
        )
    assert info.value.field == 55


def test_refund(state: TerminalState) -> None:
    card = demo_card("credit-ok")
    msg = _wire(financial_request("refund", state, "000016", card, amount_fen=250, original=SALE))
    assert _codes(msg) == ("0220", "200000", "00", "25")
    assert (msg["4"], msg["37"], msg["61"]) == ("000000000250", "000000000123", "0000010000421126")
    assert "38" not in msg and "52" not in msg and msg["22"] == "022"
    with pytest.raises(EncodeError) as info:
        financial_request(
            "refund", state, "000017", card, amount_fen=1, pin_block_hex="00" * 8, original=SALE
        )
    assert info.value.field == 52
    with pytest.raises(EncodeError) as info:
        financial_request(
            "refund",
            state,
            "000017",
            card,
            amount_fen=1,
            original=Original("000000000123", "000001", "000042"),
        )
    assert info.value.field == 61


def test_preauth(state: TerminalState) -> None:
    card = demo_card("debit-ok")
    msg = _wire(
        financial_request(
            "preauth", state, "000018", card, amount_fen=30000, pin_block_hex=_pin_block(card.pan)
        )
    )
    assert _codes(msg) == ("0100", "030000", "06", "10")
    assert (msg["4"], msg["22"], msg["60"]) == ("000000030000", "021", "1000000700060")
    assert not {"37", "38", "61"} & msg.keys()


def test_preauth_void(state: TerminalState) -> None:
    card = demo_card("debit-ok")
    msg = _wire(financial_request("preauth_void", state, "000019", card, amount_fen=30000, original=SALE))
    assert _codes(msg) == ("0100", "200000", "06", "11")
    assert (msg["4"], msg["37"], msg["38"], msg["61"]) == (
        "000000030000",
        "000000000123",
        "A1B2C3",
        "0000010000421126",
    )
    without_date = Original("000000000123", "000001", "000042", "A1B2C3")
    msg = _wire(
        financial_request("preauth_void", state, "000020", card, amount_fen=30000, original=without_date)
    )
    assert msg["61"] == "000001000042"


def test_completion(state: TerminalState) -> None:
    card = demo_card("debit-ok")
    msg = _wire(financial_request("completion", state, "000021", card, amount_fen=34500, original=SALE))
    assert _codes(msg) == ("0200", "000000", "06", "20")
    assert (msg["4"], msg["37"], msg["38"], msg["61"]) == (
        "000000034500",
        "000000000123",
        "A1B2C3",
        "0000010000421126",
    )
    assert "52" not in msg
    with pytest.raises(EncodeError) as info:
        financial_request(
            "completion",
            state,
            "000022",
            card,
            amount_fen=1,
            original=Original("000000000123", "000001", "000042", None, "1126"),
        )
    assert info.value.field == 38


def test_completion_void(state: TerminalState) -> None:
    card = demo_card("debit-ok")
    msg = _wire(financial_request("completion_void", state, "000023", card, amount_fen=34500, original=SALE))
    assert _codes(msg) == ("0200", "200000", "06", "21")
    assert (msg["4"], msg["37"], msg["38"], msg["61"]) == (
        "000000034500",
        "000000000123",
        "A1B2C3",
        "000001000042",
    )


@pytest.mark.parametrize(
    ("entry", "field22", "field60_tail", "card_fields"),
    [
        ("magstripe", "021", "60", {"35", "14"}),
        ("chip", "051", "60", {"35", "14", "23", "55"}),
        ("contactless", "071", "60", {"35", "14", "23", "55"}),
        ("fallback", "801", "62", {"35", "14"}),
        ("manual", "011", "60", {"2", "14"}),
    ],
)
def test_entry_modes(
    state: TerminalState, entry: str, field22: str, field60_tail: str, card_fields: set[str]
) -> None:
    card = demo_card("credit-chip")
    if entry == "manual":
        card = manual_card(card.pan, card.expiry)
    icc = "9F360200019C0100" if entry in ("chip", "contactless") else None
    msg = _wire(sale_request(state, "000030", card, 100, _pin_block(card.pan), entry, icc))
    assert msg["22"] == field22
    assert msg["60"] == "22000007000" + field60_tail
    assert {k for k in ("2", "14", "23", "35", "55") if k in msg} == card_fields
    if "23" in msg:
        assert msg["23"] == "001"


def test_magstripe_entry_refuses_icc_data(state: TerminalState) -> None:
    with pytest.raises(EncodeError) as info:
        sale_request(state, "000031", demo_card("credit-chip"), 100, None, "fallback", "9C0100")
    assert info.value.field == 55


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("sale", {}),
        ("void", {"37": "000000000123", "38": "A1B2C3", "61": "000001000042"}),
        ("preauth", {}),
        ("preauth_void", {"37": "000000000123", "38": "A1B2C3", "61": "0000010000421126"}),
        ("completion", {"37": "000000000123", "38": "A1B2C3", "61": "0000010000421126"}),
        ("completion_void", {"37": "000000000123", "38": "A1B2C3", "61": "000001000042"}),
    ],
)
def test_reversal_of_each_reversible_kind(state: TerminalState, kind: str, extra: dict[str, str]) -> None:
    card = demo_card("debit-ok")
    original = SALE if extra else None
    request = financial_request(
        kind, state, "000040", card, amount_fen=777, entry="magstripe", original=original
    )
    last = last_transaction(request, kind)
    assert card.pan not in repr(last)
    msg = _wire(reversal_request(state, last, "98"))
    assert msg["t"] == "0400" and msg["39"] == "98"
    for field in ("3", "4", "11", "22", "25", "41", "42", "49", "60"):
        assert msg[field] == request[field], field
    assert {k: msg[k] for k in ("37", "38", "61") if k in msg} == extra
    assert not {"2", "14", "23", "35", "52", "55"} & msg.keys()


def test_settlement_request(state: TerminalState) -> None:
    msg = _wire(settlement_request(state, "000050", BatchTotals(123456, 3, 7890, 2)))
    assert (msg["t"], msg["11"], msg["49"], msg["60"]) == ("0500", "000050", "156", "0000000" + "7201")
    assert msg["48"] == "000000123456003" + "000000007890002" + "0" + "0" * 31
    assert len(msg["48"]) == 62
    assert not {"3", "4", "25"} & msg.keys()


def test_batch_upload_and_end(state: TerminalState) -> None:
    record = "00" + "000012" + "6229990000000012".rjust(20, "0") + "000000001234"
    magstripe = _wire(batch_upload_request(state, "000051", UploadGroup(False, (record,) * 8)))
    assert (magstripe["t"], magstripe["60"]) == ("0320", "00000007201")
    assert magstripe["48"] == "08" + record * 8 and len(magstripe["48"]) == 322
    chip = _wire(batch_upload_request(state, "000052", UploadGroup(True, (record,))))
    assert (chip["60"], chip["48"]) == ("00000007203", "01" + record)
    end = _wire(batch_end_request(state, "000053", 9))
    assert (end["t"], end["60"], end["48"]) == ("0320", "00000007207", "0009")
    with pytest.raises(EncodeError):
        batch_upload_request(state, "000054", UploadGroup(False, (record,) * 9))


def test_amounts_are_checked(state: TerminalState) -> None:
    card = demo_card("debit-ok")
    for kind in ("void", "refund", "preauth", "completion"):
        with pytest.raises(EncodeError) as info:
            financial_request(kind, state, "000060", card, amount_fen=0, original=SALE)
        assert info.value.field == 4
    with pytest.raises(EncodeError) as info:
        financial_request("balance", state, "000061", card, amount_fen=5)
    assert info.value.field == 4
    with pytest.raises(EncodeError) as info:
        financial_request("sale", state, "000062", card, amount_fen=5, original=SALE)
    assert info.value.field == 61
