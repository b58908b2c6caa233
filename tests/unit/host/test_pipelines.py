"""Whole pipelines (classify → steps → ComposeResponse → RecordOutcome) over in-memory fakes."""

from __future__ import annotations

from posgate.host.context import Kind
from posgate.host.pipeline import finishing_steps, pipelines
from posgate.host.runner import run_pipeline
from posgate.host.steps.base import Step
from posgate.iso8583.reasons import Reason
from tests.unit.host.fakes import FakeStore, context, sale, services


async def test_a_sale_missing_its_amount_stops_at_check_fields() -> None:
    s = services()
    ctx = context(sale(**{"4": ""}))
    await run_pipeline(pipelines(s)[ctx.kind], finishing_steps(s), ctx)
    steps = [t.step for t in ctx.trace]
    assert steps == ["CheckFields", "ComposeResponse", "RecordOutcome", "CountForRisk", "RaiseRiskAlerts"]
    assert ctx.trace[0].outcome == "30" and ctx.detail == "missing field 4"
    assert ctx.response is not None and ctx.response["39"] == "30"


async def test_an_unsupported_request_is_40_from_the_pipeline() -> None:
    s = services()
    ctx = context(sale(**{"3": "400000"}))
    await run_pipeline(pipelines(s)[Kind.UNSUPPORTED], finishing_steps(s), ctx)
    assert ctx.trace[0].step == "RefuseUnsupported" and ctx.trace[0].outcome == "40"
    assert ctx.response is not None and ctx.response["39"] == "40"


async def test_an_unknown_terminal_stops_the_sale_with_97() -> None:
    s = services(FakeStore(answers=[None]))
    ctx = context(sale())
    await run_pipeline(pipelines(s)[ctx.kind], finishing_steps(s), ctx)
    assert ctx.result.reason is Reason.UNKNOWN_TERMINAL
    assert ctx.response is not None and ctx.response["39"] == "97"


class _Reserves(Step):
    undone = False

    async def prepare(self, ctx) -> None:  # type: ignore[no-untyped-def]
        return None

    async def abort(self, ctx) -> None:  # type: ignore[no-untyped-def]
        type(self).undone = True


class _Fails(Step):
    async def prepare(self, ctx) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")


async def test_a_step_that_fails_is_96_and_earlier_steps_compensate() -> None:
    s = services()
    ctx = context(sale())
    await run_pipeline([_Reserves(s), _Fails(s)], finishing_steps(s), ctx)
    assert ctx.result.code == "96" and _Reserves.undone
    assert ctx.response is not None and ctx.response["39"] == "96"
