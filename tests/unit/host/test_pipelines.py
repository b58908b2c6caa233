"""Whole pipelines (classify → steps → ComposeResponse → RecordOutcome) over in-memory ports."""

from __future__ import annotations

from posgate.host.context import Kind, TxnContext
from posgate.host.pipeline import finishing_steps, pipelines
from posgate.host.runner import run_pipeline
from posgate.host.steps.base import Step
from posgate.iso8583.codec import decode_pos, encode_pos_with_mac
from posgate.iso8583.reasons import Reason
from posgate.risk.decision import Decision
from posgate.security.pos_mac import MacAlgorithm, pos_mac
from tests.unit.host.fakes import MAK, FakeIssuers, FakeTerminals, FakeTransactions, context, ports, sale


def maced(request: dict[str, str], mak: bytes = MAK) -> TxnContext:
    payload = encode_pos_with_mac(request, lambda data: pos_mac(MacAlgorithm.CUP_ECB, mak, data))
    return context(decode_pos(payload), payload)


async def _run(ctx: TxnContext, **overrides: object) -> TxnContext:
    p = ports(**overrides)
    await run_pipeline(pipelines(p)[ctx.kind], finishing_steps(p), ctx)
    return ctx


async def test_a_sale_approved_end_to_end_over_the_ports() -> None:
    transactions = FakeTransactions()
    ctx = await _run(maced(sale()), transactions=transactions)
    assert [t.step for t in ctx.trace] == [
        "CheckFields", "IdentifyTerminal", "RequireSignIn", "VerifyMac", "ReadCard", "SelectIssuer",
        "RecordRequest", "HonourEarlyReversal", "AssessRisk", "TranslatePin", "AskIssuer", "ComposeResponse",
        "RecordOutcome", "CountForRisk", "RaiseRiskAlerts",
    ]  # fmt: skip
    assert ctx.response is not None and ctx.response["39"] == "00" and ctx.response["38"] == "A1B2C3"
    assert transactions.finished[100].state == "approved"


async def test_a_bad_mac_is_a0_audited_and_nothing_is_recorded() -> None:
    transactions, terminals = FakeTransactions(), FakeTerminals()
    ctx = maced(sale(), mak=bytes(16))  # not the terminal's MAK
    ctx = await _run(ctx, transactions=transactions, terminals=terminals)
    assert ctx.result.code == "A0" and not transactions.rows
    assert terminals.acts == [("mac_verify_failed", "10000001", "000007")]


async def test_a_sale_missing_its_amount_stops_at_check_fields() -> None:
    ctx = await _run(context(sale(**{"4": ""})))
    steps = [t.step for t in ctx.trace]
    assert steps == ["CheckFields", "ComposeResponse", "RecordOutcome", "CountForRisk", "RaiseRiskAlerts"]
    assert ctx.trace[0].outcome == "30" and ctx.detail == "missing field 4"
    assert ctx.response is not None and ctx.response["39"] == "30"


async def test_an_unsupported_request_is_40_from_the_pipeline() -> None:
    ctx = await _run(context(sale(**{"3": "400000"})))
    assert ctx.kind is Kind.UNSUPPORTED
    assert ctx.trace[0].step == "RefuseUnsupported" and ctx.trace[0].outcome == "40"
    assert ctx.response is not None and ctx.response["39"] == "40"


async def test_an_unknown_terminal_stops_the_sale_with_97() -> None:
    ctx = await _run(maced(sale(**{"41": "99999999"})))
    assert ctx.result.reason is Reason.UNKNOWN_TERMINAL
    assert ctx.response is not None and ctx.response["39"] == "97"


async def test_an_issuer_decline_is_recorded_with_its_code() -> None:
    transactions = FakeTransactions()
    ctx = await _run(maced(sale()), transactions=transactions, issuers=FakeIssuers(reply={"39": "51"}))
    assert ctx.response is not None and ctx.response["39"] == "51"
    assert transactions.finished[100].state == "declined" and transactions.finished[100].response_code == "51"


class _Reserves(Step):
    undone = False

    async def abort(self, ctx: TxnContext) -> None:
        type(self).undone = True


class _Fails(Step):
    async def commit(self, ctx: TxnContext) -> None:
        raise RuntimeError("a bug")


async def test_a_step_that_fails_is_96_and_earlier_steps_compensate() -> None:
    p = ports()
    ctx = context(sale())
    await run_pipeline([_Reserves(), _Fails()], finishing_steps(p), ctx)
    assert ctx.result.code == "96" and _Reserves.undone
    assert ctx.response is not None and ctx.response["39"] == "96"


class _DecliningRisk:
    """A risk engine whose rules say 59 for every request; it counts what it is told."""

    counting = True

    def __init__(self) -> None:
        self.counted: list[tuple[bool, str]] = []
        self.alerts: list[str | None] = []

    async def assess(self, assessment: object, txn_id: int | None = None) -> Decision:
        return Decision("test", "decline", 100, "59", ())

    def outcome(self, assessment: object, approved: bool, response_code: str) -> tuple[bool, str]:
        return approved, response_code

    async def record(self, outcome: tuple[bool, str]) -> None:
        self.counted.append(outcome)

    async def raise_alerts(self, decision: Decision, assessment: object, *args: object) -> list[int]:
        self.alerts.append(decision.code)
        return [1]


async def test_a_risk_decline_stops_the_sale_before_the_issuer_and_is_counted() -> None:
    risk, issuers, transactions = _DecliningRisk(), FakeIssuers(), FakeTransactions()
    ctx = await _run(maced(sale()), risk=risk, issuers=issuers, transactions=transactions)
    assert ctx.result.code == "59" and not issuers.sent
    assert transactions.finished[100].response_code == "59"
    assert risk.counted == [(False, "59")] and risk.alerts == ["59"]
