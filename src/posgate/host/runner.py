"""Runs one pipeline over a context: steps in order until a decline, the trace, aborts on a bug (→ 96),
then the finishing steps. Knows nothing of sockets."""

from __future__ import annotations

import logging
import time

from posgate.host.context import TraceEntry, TxnContext
from posgate.host.steps.base import Step
from posgate.iso8583.reasons import Reason

log = logging.getLogger("posgate.host")


async def run_pipeline(steps: list[Step], finishing: list[Step], ctx: TxnContext) -> None:
    done: list[Step] = []
    try:
        for step in steps:
            if _stops(ctx):
                break
            await _timed(step, ctx)
            done.append(step)
        if ctx.replay is None:
            ctx.result.approve()
    except Exception:
        log.exception("step failed on %s STAN %s TID %s", ctx.kind.value, ctx.stan, ctx.tid)
        ctx.result.reason = Reason.SYSTEM_ERROR
        await _abort(done, ctx)
    for step in finishing:
        try:
            await _timed(step, ctx, finishing=True)
        except Exception:
            # the answer cannot be composed or kept: whatever was approved is undone, the terminal gets 96
            log.exception("finishing step %s failed on %s STAN %s", step.name, ctx.kind.value, ctx.stan)
            if ctx.result.approved:
                await _abort(done, ctx)
            ctx.result.reason = Reason.SYSTEM_ERROR
            ctx.response = None
            break


async def _abort(done: list[Step], ctx: TxnContext) -> None:
    for step in reversed(done):
        try:
            await step.abort(ctx)
        except Exception:
            log.exception("abort of %s failed", step.name)


def _stops(ctx: TxnContext) -> bool:
    return ctx.result.declined or ctx.replay is not None


async def _timed(step: Step, ctx: TxnContext, finishing: bool = False) -> None:
    """prepare (decide), then commit (act) — a pipeline step's only when prepare did not stop the run, a
    finishing step's always; one trace entry for both."""
    started = time.perf_counter_ns()
    before = ctx.result.reason
    await step.prepare(ctx)
    if finishing or not _stops(ctx):
        await step.commit(ctx)
    outcome = "ok" if ctx.result.reason is before else (ctx.result.code if ctx.result.reason else "ok")
    ctx.trace.append(TraceEntry(step.name, outcome, (time.perf_counter_ns() - started) // 1000))
