"""Host steps one by one, with in-memory fakes (tests/unit/host/fakes.py): no socket, no database."""

from __future__ import annotations

from posgate.errors import IssuerReplyUnverified, IssuerTimeout, IssuerUnavailable
from posgate.host.context import Kind, Route
from posgate.host.steps.card import ReadCard
from posgate.host.steps.fields import CheckFields, RefuseUnsupported
from posgate.host.steps.issuer import AskIssuer
from posgate.host.steps.respond import ComposeResponse
from posgate.host.steps.routing import SelectIssuer
from posgate.host.steps.terminal import IdentifyTerminal, RequireSignIn
from posgate.iso8583.reasons import Reason
from tests.unit.host.fakes import PAN, FakeLink, FakeStore, context, sale, services, terminal


async def test_check_fields_says_which_field_is_missing() -> None:
    ctx = context(sale(**{"4": ""}))
    await CheckFields(services(), Kind.SALE).prepare(ctx)
    assert ctx.result.code == "30"
    assert ctx.detail == "missing field 4"


async def test_check_fields_amounts_and_currency() -> None:
    for fields, code in (({"4": "000000000000"}, "13"), ({"4": "000099999999"}, "61"), ({"49": "840"}, "12")):
        ctx = context(sale(**fields))
        await CheckFields(services(), Kind.SALE).prepare(ctx)
        assert ctx.result.code == code, fields
    ctx = context(sale())
    await CheckFields(services(), Kind.SALE).prepare(ctx)
    assert ctx.result.reason is None


async def test_an_unknown_transaction_is_40_and_an_unknown_network_code_30() -> None:
    ctx = context(sale(**{"3": "400000"}))
    assert ctx.kind is Kind.UNSUPPORTED
    await RefuseUnsupported(services()).prepare(ctx)
    assert ctx.result.reason is Reason.FUNCTION_NOT_SUPPORTED and ctx.result.code == "40"
    ctx = context({"t": "0800", "11": "000001", "41": "10000001", "60": "00000001999"})
    await RefuseUnsupported(services()).prepare(ctx)
    assert ctx.result.code == "30" and "999" in (ctx.detail or "")


async def test_an_unknown_terminal_is_its_own_reason_97_on_the_wire() -> None:
    ctx = context(sale())
    await IdentifyTerminal(services(FakeStore(answers=[None]))).prepare(ctx)
    assert ctx.result.reason is Reason.UNKNOWN_TERMINAL
    assert ctx.result.code == "97"


async def test_a_terminal_without_keys_must_sign_in() -> None:
    ctx = context(sale())
    ctx.terminal = terminal(signed_in_at=None)
    await RequireSignIn(services()).prepare(ctx)
    assert ctx.result.reason is Reason.TERMINAL_NOT_SIGNED_IN
    assert ctx.result.processing_requirement == 3


async def test_read_card_and_route() -> None:
    ctx = context(sale(**{"2": "6229990000000013"}))
    await ReadCard(services()).prepare(ctx)
    assert ctx.result.code == "14"
    ctx = context(sale())
    await ReadCard(services()).prepare(ctx)
    assert ctx.card is not None and ctx.card.pan == PAN and "0012" in repr(ctx.card)
    await SelectIssuer(services()).prepare(ctx)
    assert ctx.route is not None and ctx.route.issuer_name == "Bank A"
    ctx = context(sale(**{"2": "4111111111111111"}))
    await ReadCard(services()).prepare(ctx)
    await SelectIssuer(services()).prepare(ctx)
    assert ctx.result.code == "15"


def _asking(reply: dict[str, str] | Exception, kind_fields: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    store, link = FakeStore(), FakeLink(reply=reply)
    s = services(store, link)
    ctx = context(sale(**(kind_fields or {})))
    ctx.card = None
    return s, store, link, ctx


async def _ask(reply: dict[str, str] | Exception) -> tuple:  # type: ignore[type-arg]
    s, store, link, ctx = _asking(reply)
    await ReadCard(s).prepare(ctx)
    ctx.route = Route("Bank A", mac_enabled=False)
    ctx.txn_id, ctx.rrn, ctx.network_stan, ctx.transmission_dt = 5, "000000000005", "000001", "1203023000"
    await AskIssuer(s).prepare(ctx)
    return ctx, store, link, s


async def test_ask_issuer_approval_and_decline() -> None:
    ctx, _, link, _ = await _ask({"39": "00", "38": "A1B2C3"})
    assert ctx.result.reason is None and ctx.auth_code == "A1B2C3"
    assert link.sent[0]["2"] == PAN and link.sent[0]["37"] == "000000000005"
    ctx, *_ = await _ask({"39": "51"})
    assert ctx.result.code == "51"


async def test_an_issuer_reply_that_fails_its_mac_is_96_and_reversed() -> None:
    ctx, store, _, s = await _ask(
        IssuerReplyUnverified("issuer Bank A reply 0210/000001 failed MAC verification")
    )
    assert ctx.result.reason is Reason.ISSUER_REPLY_UNVERIFIED and ctx.result.code == "96"
    assert ctx.issuer_reply is None  # nothing in it is trusted
    assert store.called("reverse_transaction") and s.saf.kicks == 1


async def test_no_answer_is_98_and_a_link_down_is_91() -> None:
    ctx, store, _, s = await _ask(IssuerTimeout("no answer"))
    assert ctx.result.code == "98" and store.called("time_out_transaction") and s.saf.kicks == 1
    ctx, store, _, _ = await _ask(IssuerUnavailable("down"))  # no stand-in limits on this route
    assert ctx.result.code == "91" and not store.calls


async def test_compose_response_of_an_approved_sale() -> None:
    ctx = context(sale())
    ctx.rrn, ctx.auth_code = "000000000005", "A1B2C3"
    ctx.result.approve()
    await ComposeResponse(services()).prepare(ctx)
    response = ctx.response
    assert response is not None
    assert response["t"] == "0210" and response["39"] == "00" and response["38"] == "A1B2C3"
    assert response["63"] == "CUP" and response["32"] == "49990000" and "2" not in response
    ctx = context(sale())
    ctx.auth_code = "A1B2C3"
    ctx.result.decline(Reason.INSUFFICIENT_FUNDS)
    await ComposeResponse(services()).prepare(ctx)
    assert ctx.response is not None and "38" not in ctx.response and "63" not in ctx.response
