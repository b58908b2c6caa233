"""The host's operations port, over real sockets: `posgate issuer` and `posgate host` as child processes,
terminals selling over TCP while `/metrics` is scraped, and the counters checked against what the terminals
saw; `/readyz` turning 503 when the issuer dies; JSON log lines; no card data in a scrape."""

from __future__ import annotations

import asyncio
import collections
import json
import re
import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from posgate.config import Settings
from posgate.terminal import TerminalClient
from posgate.terminal.journal import SALE
from posgate.terminal.policy import PosPolicy
from posgate.tools.bench_auth import BENCH_PIN, provision, start_stack, stop_stack

pytestmark = pytest.mark.slow

TERMINALS, SALES = 3, 12


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) → value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


async def sell(
    host: str, port: int, states: list, cards: list, saw: collections.Counter[tuple[str, str]]
) -> None:  # type: ignore[type-arg]
    """Each terminal signs in and sells; every third sale with a wrong PIN (the issuer answers 55)."""

    async def one(n: int) -> None:
        async with TerminalClient(host, port, states[n], timeout_s=10) as client:
            policy = PosPolicy(client)
            signed = await policy.ensure_signed_in()
            assert signed is not None and signed.approved
            saw["sign-in", signed.response_code] += 1
            for i in range(SALES):
                card = cards[(n * SALES + i) % len(cards)]
                pin = BENCH_PIN if i % 3 else "999999"
                outcome = await policy.transact(SALE, lambda c=card, p=pin: client.sale(c, p, 1))
                assert outcome.result is not None and outcome.reversal_reason is None
                saw["sale", outcome.result.response_code] += 1

    await asyncio.gather(*(one(n) for n in range(len(states))))


async def scrape_while(task: asyncio.Task[None], url: str) -> list[str]:
    scrapes = []
    async with httpx.AsyncClient(timeout=5) as http:
        while not task.done():
            answer = await http.get(url + "metrics")
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
            scrapes.append(answer.text)
            await asyncio.sleep(0.05)
    return scrapes


def test_metrics_add_up_to_what_the_terminals_saw_and_readyz_follows_the_issuer(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, env="test")
    states, cards = provision(settings, TERMINALS, 20)
    procs, host, port = start_stack(
        settings,
        "split",
        {"POSGATE_LOG_FORMAT": "json", "POSGATE_LOG_LEVEL": "INFO", "POSGATE_ECHO_INTERVAL_S": "1"},
    )
    try:
        ops = procs[-1].ops_url
        assert ops is not None and ops.startswith("http://127.0.0.1:")
        assert httpx.get(ops + "healthz").text == "ok\n"
        ready = httpx.get(ops + "readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "ready": True,
            "checks": {"store": "ok", "issuer_links": "ok", "saf_queue": "ok"},
        }

        saw: collections.Counter[tuple[str, str]] = collections.Counter()

        async def run() -> list[str]:
            load = asyncio.create_task(sell(host, port, states, cards, saw))
            scrapes = await scrape_while(load, ops)
            await load
            return scrapes

        during = asyncio.run(run())
        assert during, "no scrape happened while the terminals were selling"
        assert saw["sale", "55"] == TERMINALS * SALES // 3 and saw["sale", "00"] == TERMINALS * SALES * 2 // 3

        after = httpx.get(ops + "metrics").text
        scrape = samples(after)
        counted = {
            (dict(labels)["kind"], dict(labels)["code"]): v
            for (name, labels), v in scrape.items()
            if name == "posgate_pos_messages_total"
        }
        assert counted == {key: float(n) for key, n in saw.items()}
        # every scrape during the load counted no more than the terminals finally saw
        for text in during:
            partial = samples(text)
            assert value(partial, "posgate_pos_messages_total", kind="sale", code="00") <= saw["sale", "00"]
        sales = TERMINALS * SALES
        assert value(scrape, "posgate_pos_request_seconds_count", kind="sale") == sales
        assert value(scrape, "posgate_pipeline_step_seconds_count", step="AskIssuer") == sales
        assert value(scrape, "posgate_pipeline_step_seconds_count", step="RecordOutcome") == sales + TERMINALS
        assert value(scrape, "posgate_store_commit_seconds_count") > sales
        for bank in ("Demo Bank A", "Demo Bank B"):
            assert value(scrape, "posgate_issuer_link_up", issuer=bank) == 1.0
        assert value(scrape, "posgate_issuer_round_trip_seconds_count", issuer="Demo Bank A") >= sales
        assert value(scrape, "posgate_saf_queue_depth") == 0.0
        assert value(scrape, "posgate_pos_connections_open") == 0.0  # the terminals have hung up
        # no card data, no terminal or merchant id anywhere in a scrape
        for text in [after, *during]:
            assert not re.search(r"(?<![\d.])\d{13,19}(?!\d)", text)  # a PAN-like run (not a fraction)
            assert not any(card.pan in text for card in cards)
            assert not any(s.tid in text for s in states)

        # the issuer dies: the host stays alive but is no longer ready
        issuer = procs[0].proc
        issuer.send_signal(signal.SIGKILL)
        issuer.wait(timeout=10)
        for _ in range(100):
            ready = httpx.get(ops + "readyz")
            if ready.status_code == 503:
                break
            asyncio.run(asyncio.sleep(0.1))
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["issuer_links"] == "down: Demo Bank A, Demo Bank B" and checks["store"] == "ok"
        assert httpx.get(ops + "healthz").status_code == 200
        assert (
            value(samples(httpx.get(ops + "metrics").text), "posgate_issuer_link_up", issuer="Demo Bank A")
            == 0
        )
        assert httpx.get(ops + "nothing-here").status_code == 404
        assert httpx.post(ops + "metrics").status_code == 405
    finally:
        stop_stack(procs)
    lines = [line for line in (tmp_path / "posgate.log").read_text().splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]  # every line one JSON object
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["logger"] == "posgate.host" and " sale " in r["message"] for r in records)
    assert not any(card.pan in line for line in lines for card in cards)
