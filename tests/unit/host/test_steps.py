"""Host steps one by one, over in-memory ports (tests/unit/host/fakes.py): no socket, no database."""

from __future__ import annotations

from posgate.errors import IssuerReplyUnverified, IssuerTimeout, IssuerUnavailable
from posgate.host.context import Kind, Route, TxnContext
from posgate.host.ports import ReleaseRefund
from posgate.host.steps.card import ReadCard
from posgate.host.steps.fields import CheckFields, RefuseUnsupported
from posgate.host.steps.issuer import AskIssuer
from posgate.host.steps.original import FindOriginal
from posgate.host.steps.record import RecordOutcome, RecordRequest, ReserveRefund
from posgate.host.steps.respond import ComposeResponse
from posgate.host.steps.routing import SelectIssuer
from posgate.host.steps.terminal import IdentifyTerminal, RequireSignIn
from posgate.iso8583.reasons import Reason
from tests.unit.host.fakes import (
    NOW,
    PAN,
    FakeCards,
    FakeForwarder,
    FakeIssuers,
    FakeTransactions,
    context,
    ports,
    sale,
    terminal_record,
)

MAX_FEN = 5_000_000


async def test_check_fields_says_which_field_is_missing() -> None:
    ctx = context(sale(**{"4": ""}))
    await CheckFields(Kind.SALE, MAX_FEN).prepare(ctx)
    assert ctx.result.code == "30"
    assert ctx.detail == "missing field 4"


async def test_check_fields_names_every_missing_field_and_the_missing_card() -> None:
    for fields, detail in (
        ({"4": "", "22": ""}, "missing field 4,22"),
        ({"2": "", "14": ""}, "missing field 2/35"),
    ):
        ctx = context(sale(**fields))
        await CheckFields(Kind.SALE, MAX_FEN).prepare(ctx)
        assert ctx.result.code == "30" and ctx.detail == detail, fields


async def test_check_fields_quotes_the_value_the_spec_does_not_list() -> None:
    ctx = context(sale(**{"53": "7600000000000000"}))  # the forger's carrier of issue 9
    await CheckFields(Kind.SALE, MAX_FEN).prepare(ctx)
    assert ctx.result.code == "30"
    assert ctx.detail == "field 53: expected 2600000000000000, got '7600000000000000'"


async def test_check_fields_amounts_and_currency() -> None:
    for fields, code in (({"4": "000000000000"}, "13"), ({"4": "000099999999"}, "61"), ({"49": "840"}, "12")):
        ctx = context(sale(**fields))
        await CheckFields(Kind.SALE, MAX_FEN).prepare(ctx)
        assert ctx.result.code == code, fields
    ctx = context(sale())
    await CheckFields(Kind.SALE, MAX_FEN).prepare(ctx)
    assert ctx.result.reason is None


async def test_an_unknown_transaction_is_40_and_an_unknown_network_code_30() -> None:
    ctx = context(sale(**{"3": "400000"}))
    assert ctx.kind is Kind.UNSUPPORTED
    await RefuseUnsupported().prepare(ctx)
    assert ctx.result.reason is Reason.FUNCTION_NOT_SUPPORTED and ctx.result.code == "40"
    ctx = context({"t": "0800", "11": "000001", "41": "10000001", "60": "00000001999"})
    await RefuseUnsupported().prepare(ctx)
    assert ctx.result.code == "30" and "999" in (ctx.detail or "")


async def test_a_network_message_the_host_does_not_list_is_30_and_the_log_says_why() -> None:
    network = {"11": "000001", "41": "10000001", "42": "898440153110001"}
    for request, detail in (
        (network | {"t": "0800", "60": "00000001999"}, "60.3 '999' is not a network management code of 0800"),
        (network | {"t": "0820"}, "60.3 'absent' is not a network management code of 0820"),
        (
            network | {"t": "0820", "60": "0000000"},
            "expected 8 or at least 11 digits (60.1, 60.2, 60.3), got 7",
        ),
    ):
        ctx = context(request)
        assert ctx.kind is Kind.UNSUPPORTED
        await RefuseUnsupported().prepare(ctx)
        assert ctx.result.code == "30" and ctx.detail == "field 60: " + detail, request


async def test_an_unknown_terminal_is_its_own_reason_97_on_the_wire() -> None:
    p = ports()
    ctx = context(sale(**{"41": "99999999"}))
    await IdentifyTerminal(p.terminals).prepare(ctx)
    assert ctx.result.reason is Reason.UNKNOWN_TERMINAL
    assert ctx.result.code == "97"


async def test_identify_terminal_of_another_merchant_is_03() -> None:
    ctx = context(sale(**{"42": "898440153119999"}))
    await IdentifyTerminal(ports().terminals).prepare(ctx)
    assert ctx.result.code == "03" and ctx.terminal is not None


async def test_a_terminal_without_keys_must_sign_in() -> None:
    ctx = context(sale())
    ctx.terminal = terminal_record(signed_in_period=None)
    await RequireSignIn().prepare(ctx)
    assert ctx.result.reason is Reason.TERMINAL_NOT_SIGNED_IN
    assert ctx.result.processing_requirement == 3


async def test_read_card_and_route() -> None:
    issuers = FakeIssuers()
    ctx = context(sale(**{"2": "6229990000000013"}))
    await ReadCard().prepare(ctx)
    assert ctx.result.code == "14"
    ctx = context(sale())
    await ReadCard().prepare(ctx)
    assert ctx.card is not None and ctx.card.pan == PAN and "0012" in repr(ctx.card)
    await SelectIssuer(issuers).prepare(ctx)
    assert ctx.route is not None and ctx.route.issuer_name == "Bank A"
    ctx = context(sale(**{"2": "4111111111111111"}))
    await ReadCard().prepare(ctx)
    await SelectIssuer(issuers).prepare(ctx)
    assert ctx.result.code == "15"


async def test_record_request_then_a_duplicate_gets_the_first_answer() -> None:
    transactions, cards = FakeTransactions(), FakeCards()
    record = RecordRequest(transactions, ports().stans, cards)
    first = context(sale())
    await ReadCard().prepare(first)
    await record.commit(first)
    assert first.txn_id == 100 and first.rrn == "000000000100"
    assert transactions.rows[100]["pan_masked"] == "622999******0012"
    assert "6229990000000012" not in repr(transactions.rows[100])
    first.response = {"t": "0210", "39": "00"}
    first.result.approve()
    await RecordOutcome(transactions, ComposeResponse("49990000"), FakeForwarder(), lambda: NOW).commit(first)
    again = context(sale())
    await ReadCard().prepare(again)
    await record.commit(again)
    assert again.replay is not None and again.replay["39"] == "00" and again.replay["11"] == "000007"


async def _asking(reply: object) -> tuple[TxnContext, FakeTransactions, FakeIssuers, object]:
    p = ports(issuers=FakeIssuers(reply=reply))  # type: ignore[arg-type]
    ctx = context(sale())
    await ReadCard().prepare(ctx)
    ctx.route = Route("Bank A", mac_enabled=False)
    ctx.txn_id, ctx.rrn, ctx.network_stan, ctx.transmission_dt = 5, "000000000005", "000001", "1203023000"
    step = AskIssuer(p.issuers, p.transactions, p.forwarder, p.cards, p.policy, p.clock)
    await step.prepare(ctx)
    assert ctx.network_request is not None and not p.issuers.sent  # type: ignore[attr-defined]
    await step.commit(ctx)
    return ctx, p.transactions, p.issuers, p.forwarder  # type: ignore[return-value]


async def test_ask_issuer_approval_and_decline() -> None:
    ctx, _, issuers, _ = await _asking({"39": "00", "38": "A1B2C3"})
    assert ctx.result.reason is None and ctx.auth_code == "A1B2C3"
    assert issuers.sent[0]["2"] == PAN and issuers.sent[0]["37"] == "000000000005"
    ctx, *_ = await _asking({"39": "51"})
    assert ctx.result.code == "51"


async def test_an_issuer_reply_that_fails_its_mac_is_96_and_reversed() -> None:
    unverified = IssuerReplyUnverified("issuer Bank A reply 0210/000001 failed MAC verification")
    ctx, transactions, _, forwarder = await _asking(unverified)
    assert ctx.result.reason is Reason.ISSUER_REPLY_UNVERIFIED and ctx.result.code == "96"
    assert ctx.issuer_reply is None  # nothing in it is trusted
    assert transactions.acts == [("reverse", 5, "96")] and forwarder.kicks == 1  # type: ignore[attr-defined]


async def test_no_answer_is_98_and_a_link_down_is_91() -> None:
    ctx, transactions, _, forwarder = await _asking(IssuerTimeout("no answer"))
    assert ctx.result.code == "98" and transactions.acts == [("time_out", 5)]
    assert forwarder.kicks == 1  # type: ignore[attr-defined]
    ctx, transactions, _, _ = await _asking(IssuerUnavailable("down"))  # no stand-in limits on this route
    assert ctx.result.code == "91" and not transactions.acts


async def test_a_refund_declined_by_the_issuer_gives_its_reservation_back() -> None:
    from tests.unit.host.test_original import sale_original

    transactions = FakeTransactions(originals={"000000000042": sale_original()}, refundable={42: 5_000})
    ctx = context(sale(**{"t": "0220", "3": "200000", "37": "000000000042", "61": "0000010000071203"}))
    assert ctx.kind is Kind.REFUND
    await ReadCard().prepare(ctx)
    await FindOriginal(transactions, FakeCards()).prepare(ctx)
    assert ctx.result.reason is None
    ctx.txn_id = 7
    await ReserveRefund(transactions).commit(ctx)
    assert transactions.refundable[42] == 5_000 - 1_234
    assert ctx.compensations == [ReleaseRefund(42, 1_234)]
    ctx.result.decline(Reason.INSUFFICIENT_FUNDS)
    await ComposeResponse("49990000").prepare(ctx)
    await RecordOutcome(transactions, ComposeResponse("49990000"), FakeForwarder(), lambda: NOW).commit(ctx)
    assert transactions.refundable[42] == 5_000


async def test_an_approval_overruled_by_a_reversal_becomes_98() -> None:
    transactions = FakeTransactions(settled_by_others={9: "reversed"})
    ctx = context(sale())
    ctx.txn_id, ctx.auth_code = 9, "A1B2C3"
    ctx.result.approve()
    compose = ComposeResponse("49990000")
    await compose.prepare(ctx)
    await RecordOutcome(transactions, compose, FakeForwarder(), lambda: NOW).commit(ctx)
    assert ctx.result.code == "98" and ctx.response is not None and ctx.response["39"] == "98"
    assert transactions.acts[-1][0] == "store_answer"


async def test_compose_response_of_an_approved_sale() -> None:
    ctx = context(sale())
    ctx.rrn, ctx.auth_code = "000000000005", "A1B2C3"
    ctx.result.approve()
    await ComposeResponse("49990000").prepare(ctx)
    response = ctx.response
    assert response is not None
    assert response["t"] == "0210" and response["39"] == "00" and response["38"] == "A1B2C3"
    assert response["63"] == "CUP" and response["32"] == "49990000" and "2" not in response
    ctx = context(sale())
    ctx.auth_code = "A1B2C3"
    ctx.result.decline(Reason.INSUFFICIENT_FUNDS)
    await ComposeResponse("49990000").prepare(ctx)
    assert ctx.response is not None and "38" not in ctx.response and "63" not in ctx.response


async def test_a_malformed_pin_block_is_96_at_the_host_as_at_the_issuer() -> None:
    from posgate.host.steps.pin import TranslatePin
    from posgate.iso8583.reasons import MALFORMED_PIN_BLOCK
    from posgate.issuer.rules import AccountSnapshot, AuthRequest, CardSnapshot, Check, decide
    from posgate.security.signin import WorkingKeys
    from tests.unit.host.fakes import ZPK

    ctx = context(sale(**{"52": "F" * 16}))  # not a block under this PIK
    await ReadCard().prepare(ctx)
    ctx.route, ctx.keys = Route("Bank A", mac_enabled=False), WorkingKeys(pik=ZPK, mak=ZPK)
    await TranslatePin(FakeIssuers()).prepare(ctx)
    assert ctx.result.reason is MALFORMED_PIN_BLOCK and ctx.result.code == "96"
    assert ctx.pin_block_zpk is None  # the detail is the reason the host's log line gives for the 96
    assert ctx.detail == "the PIN block does not open as format 0 for this PAN"
    card = CardSnapshot("active", "3012", AccountSnapshot("debit", 10_000), pin_failures=1)
    issuer = decide(AuthRequest("0200", "000000", 100, "00", pin=Check.MALFORMED), card, "2612")
    assert issuer.reason is MALFORMED_PIN_BLOCK and issuer.response_code == "96"
    assert issuer.pin_failures is None  # not counted against the PIN tries
