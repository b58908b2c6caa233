"""docs/deploy/haproxy.cfg as shipped, run by Debian's HAProxy in front of two `posgate host` nodes (real
processes, one `posgate issuer`, PostgreSQL) on loopback: only the listen address and the nodes' addresses
and ports are rewritten. Terminals know only the balancer's port. Both nodes get terminals; one node is
SIGKILLed; the terminals reconnect through the balancer, which sends them to the live node (its health
check on /readyz, `option redispatch` meanwhile), and the run's invariants hold."""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from posgate.config import Settings
from posgate.store.db import make_engine
from tests.chaos import invariants
from tests.chaos.load import ChaosTerminal, LoadReport, provision
from tests.chaos.pg import free_port
from tests.chaos.stack import Stack

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).parents[2] / "docs" / "deploy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def loopback_config(lb_port: int, nodes: list[tuple[int, int]]) -> str:
    """The shipped file with its addresses on loopback: the frontend on `lb_port`, `server hostN` at
    (POS port, operations port) of node N. No syslog socket in a test."""
    text = CONFIG.read_text()
    text = text.replace("    log /dev/log local0\n", "")
    text, bound = re.subn(r"bind 0\.0\.0\.0:5000", f"bind 127.0.0.1:{lb_port}", text)
    servers = re.findall(r"^    server (host\d+) \S+$", text, flags=re.M)
    assert bound == 1 and servers == ["host1", "host2"], "docs/deploy/haproxy.cfg changed shape"
    for name, (pos, ops) in zip(servers, nodes, strict=True):
        text = re.sub(
            rf"^    server {name} \S+$", f"    server {name} 127.0.0.1:{pos} port {ops}", text, flags=re.M
        )
    return text


def test_deploy_md_shows_the_shipped_config() -> None:
    """docs/deploy.md prints the file this test runs, from `global` on, verbatim."""
    text = CONFIG.read_text()
    assert text[text.index("global") :] in (CONFIG.parents[1] / "deploy.md").read_text()


def open_connections(ops_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{ops_port}/metrics", timeout=5) as answer:
        body = answer.read().decode()
    match = re.search(r"^posgate_pos_connections_open (\S+)$", body, flags=re.M)
    assert match, "no posgate_pos_connections_open in /metrics"
    return float(match.group(1))


async def wait_ready(ops_port: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ops_port}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"node with ops port {ops_port} never ready"
        await asyncio.sleep(0.2)


async def test_debian_haproxy_with_the_example_config_fronts_two_nodes(
    tmp_path: Path, fresh_pg_database: str
) -> None:
    if not Path(HAPROXY).is_file():
        if os.environ.get("CI"):
            pytest.fail("haproxy is not installed (apt-get install haproxy)")
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir, database_url=fresh_pg_database, env="test")
    states, cards = await asyncio.to_thread(provision, settings, 4, 20)
    engine = make_engine(settings.resolved_database_url, pool_size=2)
    accounts_before = invariants.account_snapshot(engine)
    stack = Stack(tmp_path, data_dir, fresh_pg_database, "two-hosts")
    ops_ports = [free_port(), free_port()]
    for name, port in zip(("host", "host2"), ops_ports, strict=True):
        service = stack.services[name]
        service.env = {**service.env, "POSGATE_OPS_PORT": str(port)}
    lb_port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(loopback_config(lb_port, list(zip(stack.pos_ports, ops_ports, strict=True))))
    haproxy: subprocess.Popen[bytes] | None = None
    report = LoadReport()
    try:
        await stack.start()
        for port in ops_ports:
            await wait_ready(port)
        with (tmp_path / "haproxy.log").open("wb") as log:
            haproxy = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=log, stderr=log)
        await asyncio.sleep(1.0)
        assert haproxy.poll() is None, (tmp_path / "haproxy.log").read_text()

        terminals = [
            ChaosTerminal(
                "127.0.0.1",
                [lb_port],
                state,
                cards,
                reverses=True,
                rng=random.Random(state.tid),
                report=report,
                timeout_s=4.0,
            )
            for state in states
        ]
        stop = asyncio.Event()
        load = [asyncio.create_task(t.run(stop)) for t in terminals]
        try:
            await asyncio.sleep(4.0)
            per_node = [await asyncio.to_thread(open_connections, port) for port in ops_ports]
            assert all(n >= 1 for n in per_node), f"the balancer used one node only: {per_node}"
            stack.services["host2"].kill9()
            killed_at = len(report.sales)
            await asyncio.sleep(6.0)
        finally:
            stop.set()
            await asyncio.gather(*load, return_exceptions=True)
        await asyncio.gather(*(t.finish(time.monotonic() + 15) for t in terminals))
        after_kill = Counter(s.tid for s in report.sales[killed_at:] if s.outcome == "approved")
        assert all(after_kill[s.tid] > 0 for s in states), f"terminals stalled after the kill: {after_kill}"

        started = time.monotonic()
        while not await asyncio.to_thread(invariants.quiescent, engine):
            assert time.monotonic() - started < 20, "the surviving node left transactions in doubt"
            await asyncio.sleep(0.5)
        await stack.stop()
        await asyncio.to_thread(invariants.clear_every_date, engine, data_dir)
        checks = await asyncio.to_thread(
            invariants.check_all, engine, data_dir, report.sales, accounts_before
        )
        checks.append(invariants.timed_out_sales_reversed(engine, report.sales))
    finally:
        if haproxy is not None:
            haproxy.terminate()
            haproxy.wait(timeout=10)
        await stack.stop()
        engine.dispose()
    summary = "\n".join(
        [
            f"{len(report.sales)} sales, {report.approved} approved, {report.unknown} without an answer,"
            f" {report.reconnects} connects, errors {dict(report.errors)}",
            *(check.line() for check in checks),
        ]
    )
    print(summary)
    assert all(check.ok for check in checks), summary
