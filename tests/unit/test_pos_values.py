"""Field content of POS requests (`iso8583.pos_values`, issue 9 finding 1): every request the terminal
simulator builds is accepted, and each value outside the spec's lists is named exactly."""

from __future__ import annotations

import pytest

from posgate.host.pipeline import classify
from posgate.iso8583.pos_values import RULES, problem
from posgate.terminal import BatchTotals, demo_card, manual_card
from posgate.terminal.journal import UploadGroup
from posgate.terminal.messages import (
    TXN_TYPES,
    Original,
    batch_end_request,
    batch_upload_request,
    echo_request,
    financial_request,
    last_transaction,
    reversal_request,
    settlement_request,
    sign_in_request,
    sign_out_request,
)
from posgate.terminal.state import TerminalState

STATE = TerminalState("10000001", "898440153110001", "40" * 16)
MAGSTRIPE = demo_card("6229990000000012")
CHIP = demo_card("6228880000000016")
PIN_BLOCK = "0123456789ABCDEF"
ICC = "9F2608" + "00" * 8
ORIGINAL = Original("000000000042", "000001", "000007", "123456", "1126")


def _financial(kind: str, entry: str) -> dict[str, str]:
    txn = TXN_TYPES[kind]
    card = (
        manual_card("6229990000000012", "3012", "123456")
        if entry == "manual"
        else (CHIP if entry in ("chip", "contactless") else MAGSTRIPE)
    )
    return financial_request(
        kind,
        STATE,
        "000010",
        card,
        amount_fen=None if kind == "balance" else 100,
        pin_block_hex=PIN_BLOCK if txn.pin else None,
        entry=entry,
        icc_data_hex=ICC if txn.icc_type and entry in ("chip", "contactless") else None,
        original=ORIGINAL if txn.original_date is not None else None,
    )


def _every_request() -> list[dict[str, str]]:
    requests = [
        sign_in_request(STATE, "000001"),
        sign_in_request(STATE, "000002", with_tdk=True),
        sign_out_request(STATE, "000003"),
        echo_request(STATE, "000004"),
        settlement_request(STATE, "000005", BatchTotals(100, 1, 0, 0)),
        batch_upload_request(STATE, "000006", UploadGroup(False, ("0" * 40,))),
        batch_upload_request(STATE, "000007", UploadGroup(True, ("0" * 40,))),
        batch_end_request(STATE, "000008", 2),
    ]
    for kind in TXN_TYPES:
        for entry in ("magstripe", "chip", "contactless", "fallback", "manual"):
            msg = _financial(kind, entry)
            requests.append(msg)
            if TXN_TYPES[kind].reversible:
                for reason in ("98", "96", "A0"):
                    requests.append(reversal_request(STATE, last_transaction(msg, kind), reason))
    return requests


@pytest.mark.parametrize("msg", _every_request(), ids=lambda m: f"{m['t']}-{m.get('3', '')}-{m['60']}")
def test_every_request_the_simulator_builds_is_accepted(msg: dict[str, str]) -> None:
    kind = classify(msg).value
    assert kind in RULES
    assert problem(kind, msg) is None


SALE = _financial("sale", "magstripe")
VOID = _financial("void", "magstripe")
REVERSAL = reversal_request(STATE, last_transaction(SALE, "sale"), "98")


@pytest.mark.parametrize(
    ("kind", "base", "change", "expected"),
    [
        (
            "sale",
            SALE,
            {"53": "7600000000000000"},
            "field 53: expected 2600000000000000, got '7600000000000000'",
        ),
        ("sale", SALE, {"26": "13"}, "field 26: expected 12 with a PIN block (52), got '13'"),
        (
            "sale",
            SALE,
            {"22": "031"},
            "field 22: expected an entry mode of 01, 02, 05, 07, 80 then 1 or 2, got '031'",
        ),
        (
            "sale",
            SALE,
            {"22": "023"},
            "field 22: expected an entry mode of 01, 02, 05, 07, 80 then 1 or 2, got '023'",
        ),
        ("sale", SALE, {"25": "06"}, "field 25: expected 00, got '06'"),
        ("sale", SALE, {"60": "2300000100060"}, "field 60: 60.1 expected 22, got '23'"),
        ("sale", SALE, {"60": "2200000120160"}, "field 60: 60.3 expected 000, absent, got '201'"),
        ("sale", SALE, {"60": "2200000100090"}, "field 60: 60.4 expected 0, 2, 5, 6, absent, got '9'"),
        ("sale", SALE, {"60": "2200000100063"}, "field 60: 60.5 expected 0, 1, 2, absent, got '3'"),
        ("sale", SALE, {"60": "22000001"}, None),  # 60.3 and later may be absent
        ("sale", SALE, {"60": "2200000100060123456"}, None),  # further sub-fields are kept
        ("sale", SALE, {"39": "00"}, "field 39 is not expected in a sale"),
        ("sale", SALE, {"62": "00"}, "field 62 is not expected in a sale"),
        ("sale", SALE, {"12": "246000"}, "field 12: expected a time hhmmss, got '246000'"),
        ("sale", SALE, {"13": "1301"}, "field 13: expected a date MMDD, got '1301'"),
        ("sale", SALE, {"14": "3013"}, "field 14: expected an expiry date YYMM"),
        ("sale", SALE, {"14": "7012"}, "field 14: the expiry date differs from track 2's"),
        ("sale", SALE, {"60": "22ABC"}, "field 60: expected digits, got '22ABC'"),
        ("void", VOID, {"61": "0000010000071326"}, "field 61: 61.3 expected a date MMDD, got '1326'"),
        ("void", VOID, {"37": "00000000004A"}, "field 37: expected 12 digits, got '00000000004A'"),
        (
            "refund",
            _financial("refund", "magstripe"),
            {"52": PIN_BLOCK},
            "field 52 is not expected in a refund",
        ),
        ("reversal", REVERSAL, {"39": "00"}, "field 39: expected 96, 98, A0, got '00'"),
        (
            "reversal",
            REVERSAL,
            {"3": "310000"},
            "field 3: '310000' with 25 = '00' is no reversible transaction",
        ),
        ("reversal", REVERSAL, {"60": "2300000100060"}, "field 60: 60.1 expected 22, got '23'"),
        (  # a reversal of a pre-authorization void or a completion void: either type code, named both
            "reversal",
            REVERSAL,
            {"3": "200000", "25": "06"},
            "field 60: 60.1 expected 11, 21, got '22'",
        ),
        (
            "balance",
            _financial("balance", "magstripe"),
            {"4": "000000000100"},
            "field 4 is not expected in a balance",
        ),
        (
            "sign-in",
            sign_in_request(STATE, "000001"),
            {"60": "01000001003"},
            "field 60: 60.1 expected 00, got '01'",
        ),
        ("sign-in", sign_in_request(STATE, "000001"), {"25": "00"}, "field 25 is not expected in a sign-in"),
        (
            "settlement",
            settlement_request(STATE, "000005", BatchTotals()),
            {"60": "00000001203"},
            "field 60: 60.3 expected 201, got '203'",
        ),
    ],
)
def test_a_value_outside_the_spec_is_named(
    kind: str, base: dict[str, str], change: dict[str, str], expected: str | None
) -> None:
    assert problem(kind, base) is None
    assert problem(kind, base | change) == expected


def test_field_55_must_agree_with_fields_4_and_49() -> None:
    from posgate.cards.tlv import encode_tlv
    from posgate.host.steps.fields import _icc_problem

    icc = encode_tlv({"9F02": bytes.fromhex("000000000100"), "5F2A": bytes.fromhex("0156")}).hex().upper()
    sale = {"4": "000000000100", "49": "156", "55": icc}
    assert _icc_problem(sale) is None
    assert _icc_problem(sale | {"4": "000000005100"}) == "field 55: 9F02 (amount) differs from field 4"
    assert _icc_problem(sale | {"49": "840"}) == "field 55: 5F2A (currency) differs from field 49"
    assert _icc_problem(sale | {"55": "9F0206000000"}) == "field 55: not BER-TLV"
    assert _icc_problem({"4": "000000000100"}) is None


MANUAL = _financial("sale", "manual")  # field 2 and 14, no track 2
TIME = "field 12: expected a time hhmmss, got {!r}"
DATE = "field 13: expected a date MMDD, got {!r}"
EXPIRY = "field 14: expected an expiry date YYMM"
DATE61 = "field 61: 61.3 expected a date MMDD, got {!r}"


@pytest.mark.parametrize(
    ("kind", "base", "change", "expected"),
    [
        *[("sale", SALE, {"12": t}, None) for t in ("000000", "235959")],
        *[("sale", SALE, {"12": t}, TIME.format(t)) for t in ("240000", "236000", "235960")],
        *[("sale", SALE, {"13": d}, None) for d in ("0101", "1231")],
        *[("sale", SALE, {"13": d}, DATE.format(d)) for d in ("0001", "1301", "0100", "0132")],
        *[("sale", MANUAL, {"14": e}, None) for e in ("3001", "3012")],
        *[("sale", MANUAL, {"14": e}, EXPIRY) for e in ("3000", "3013")],
        ("sale", SALE, {"35": "6229990000000012D", "14": "2901"}, None),  # a track 2 without an expiry
        *[("void", VOID, {"61": "000001000007" + d}, None) for d in ("0101", "1231")],
        *[("void", VOID, {"61": "000001000007" + d}, DATE61.format(d)) for d in ("0001", "0132")],
        (
            "void",
            VOID,
            {"37": "０００００００００４２"},
            "field 37: expected 12 digits, got '０００００００００４２'",
        ),
        ("void", VOID, {"38": "12345é"}, "field 38: expected 6 letters or digits, got '12345é'"),
        ("void", VOID, {"38": "12345-"}, "field 38: expected 6 letters or digits, got '12345-'"),
    ],
)
def test_dates_times_and_references_are_checked_at_their_bounds(
    kind: str, base: dict[str, str], change: dict[str, str], expected: str | None
) -> None:
    assert problem(kind, base | change) == expected


def test_a_pin_capture_code_needs_a_pin_block_and_an_unknown_kind_is_left_to_the_pipeline() -> None:
    without_block = {k: v for k, v in SALE.items() if k != "52"}
    assert problem("sale", without_block) == "field 26: expected 12 with a PIN block (52), got '12'"
    assert problem("no such kind", SALE | {"99": "x"}) is None  # RefuseUnsupported answers those
