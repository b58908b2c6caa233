"""Scale-out survives losing a node (issue 14, Done when): two `posgate host` nodes and one `posgate issuer`
as real processes on one PostgreSQL database of the test's own, terminals selling through both, one node
SIGKILLed mid-run and left dead. The terminals behave as a load balancer would make them: the connection to
the dead node drops, they connect to the other, and — their POS policy — reverse every sale left without an
answer before selling again. Then, from the store and the issuer's books: every approval a terminal saw is
stored exactly once, every sale left without an answer is reversed, nothing is charged twice or left standing
at the issuer, and the surviving node resolved whatever the dead one left half-done."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from posgate.config import Settings
from posgate.store.db import make_engine
from tests.chaos import invariants
from tests.chaos.load import ChaosTerminal, LoadReport, provision
from tests.chaos.stack import Stack

pytestmark = pytest.mark.slow

TERMINALS = 6  # even ones start on node 1, odd ones on node 2
LOAD_BEFORE_KILL_S = 4.0
LOAD_AFTER_KILL_S = 4.0
RECOVERY_S = 20.0  # in_doubt_after_s is 3 s, the recovery pass runs every second (tests/chaos/stack.py)


async def test_two_nodes_one_killed_mid_run_lose_and_double_nothing(
    tmp_path: Path, fresh_pg_database: str
) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir, database_url=fresh_pg_database, env="test")
    states, cards = await asyncio.to_thread(provision, settings, TERMINALS, 40)
    engine = make_engine(settings.resolved_database_url, pool_size=2)
    accounts_before = invariants.account_snapshot(engine)
    stack = Stack(tmp_path, data_dir, fresh_pg_database, "two-hosts")
    report = LoadReport()
    try:
        await stack.start()
        ports = stack.pos_ports
        terminals = [
            ChaosTerminal(
                "127.0.0.1",
                ports[i % 2 :] + ports[: i % 2],
                state,
                cards,
                reverses=True,
                rng=random.Random(state.tid),
                report=report,
                timeout_s=4.0,
            )
            for i, state in enumerate(states)
        ]
        stop = asyncio.Event()
        load = [asyncio.create_task(t.run(stop)) for t in terminals]
        try:
            await asyncio.sleep(LOAD_BEFORE_KILL_S)
            before_kill = Counter(s.tid for s in report.sales if s.outcome == "approved")
            stack.services["host2"].kill9()
            killed_at = len(report.sales)
            await asyncio.sleep(LOAD_AFTER_KILL_S)
        finally:
            stop.set()
            await asyncio.gather(*load, return_exceptions=True)
        await asyncio.gather(*(t.finish(time.monotonic() + 15) for t in terminals))

        # load reached both nodes before the kill, and the survivor kept selling after it
        on_node2 = [state.tid for i, state in enumerate(states) if i % 2 == 1]
        assert all(before_kill[tid] > 0 for tid in on_node2), f"node 2 sold nothing: {before_kill}"
        after_kill = Counter(s.tid for s in report.sales[killed_at:] if s.outcome == "approved")
        assert all(after_kill[tid] > 0 for tid in on_node2), f"node 2's terminals stalled: {after_kill}"

        started = time.monotonic()
        while not await asyncio.to_thread(invariants.quiescent, engine):
            assert time.monotonic() - started < RECOVERY_S, "the surviving node left transactions in doubt"
            await asyncio.sleep(0.5)
        stop_codes = await stack.stop()
        assert stop_codes["host"] == 0 and stop_codes["issuer"] == 0, stop_codes

        clearing = await asyncio.to_thread(invariants.clear_every_date, engine, data_dir)
        checks = await asyncio.to_thread(
            invariants.check_all, engine, data_dir, report.sales, accounts_before
        )
        checks.append(invariants.timed_out_sales_reversed(engine, report.sales))
    finally:
        await stack.stop()
        engine.dispose()
    unknown = sum(1 for s in report.sales if s.outcome == "unknown")
    summary = "\n".join(
        [
            f"{len(report.sales)} sales, {report.approved} approved, {unknown} without an answer"
            f" ({report.reversals_approved} reversed by their terminal), errors {dict(report.errors)}",
            *clearing,
            *(check.line() for check in checks),
        ]
    )
    print(summary)
    assert all(check.ok for check in checks), summary
