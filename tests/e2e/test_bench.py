"""`posgate bench auth --json` and `posgate bench compare`, run as a user runs them: the stack as child
processes, real sockets, the last line of standard output a JSON object with the Contract keys (issue 14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

POSGATE = [sys.executable, "-m", "posgate"]
CONTRACT = {
    "approved_per_s": float,
    "p50_ms": float,
    "p95_ms": float,
    "p99_ms": float,
    "approved": int,
    "errors": int,
    "codes": dict,
    "terminals": int,
    "duration_s": float,
    "store": str,
    "workers": int,
    "rules": bool,
}


def bench(args: list[str], cwd: Path) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    done = subprocess.run(
        [*POSGATE, "bench", "auth", "--json", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    return json.loads(last), done


def test_closed_loop_json_has_the_contract_keys_and_the_default_rules_see_normal_traffic(
    tmp_path: Path,
) -> None:
    run, done = bench(
        [
            "--terminals",
            "2",
            "--duration",
            "3",
            "--warmup",
            "0.5",
            "--cards",
            "400",
            "--risk-rules",
            "default",
            "--idle-connections",
            "50",
        ],
        tmp_path,
    )
    for key, kind in CONTRACT.items():
        assert isinstance(run[key], kind), (key, run[key])
    assert run["store"] == "sqlite" and run["rules"] is True and run["rule_set"] == "default"
    assert run["terminals"] == 2 and run["workers"] == 1 and run["duration_s"] == 3.0
    # the cards are dealt round-robin: no velocity decline (65) and no fraud decline (59), approvals only
    assert run["approved"] > 0 and run["codes"] == {"00": run["approved"]}, run["codes"]
    assert run["errors"] == 0
    assert run["approved_per_s"] == pytest.approx(run["approved"] / 3.0, abs=0.1)
    assert 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"] <= run["max_ms"]
    assert sum(count for _, count in run["histogram_ms"]) == run["approved"]
    roles = {p["role"]: p for p in run["processes"]}
    assert roles["posgate up"]["cpu_s"] > 0 and roles["posgate up"]["peak_rss_mb"] > 20
    assert roles["load generator (bench)"]["peak_rss_mb"] > 20
    assert "bench:" in done.stderr  # progress, on standard error: stdout stays parseable
    # the 50 silent connections (and the 2 terminals' unless they hung up first), as the host counts them
    # at the end of the window
    assert run["idle_connections"] == 50 and 50.0 <= run["host_connections_open"] <= 52.0
    # the host's own view over the window, from its operations port
    means = run["host_means_ms"]
    assert (
        means["step AskIssuer"] > 0
        and means["commit"] > 0
        and means["request sale"] >= means["step AskIssuer"]
    )


def test_open_loop_per_transaction_counts_every_scheduled_arrival_and_compare_reads_two_runs(
    tmp_path: Path,
) -> None:
    closed, _ = bench(["--terminals", "2", "--duration", "2", "--warmup", "0.5", "--cards", "200"], tmp_path)
    opened, done = bench(
        [
            *("--terminals", "3", "--duration", "2", "--warmup", "0.5", "--cards", "200"),
            *("--rate", "20", "--connections", "per-transaction"),
        ],
        tmp_path,
    )
    assert opened["mode"] == "open" and opened["rate"] == 20.0 and opened["connections"] == "per-transaction"
    # arrivals every 50 ms over warm-up and window: those sent in the window, plus the backlog left at its
    # end, are at most all of them (the rest were sent during the warm-up)
    assert 49 <= opened["scheduled"] <= 51 and opened["sent"] > 0
    assert opened["sent"] + opened["unsent"] <= opened["scheduled"]
    assert (
        opened["approved"] + opened["errors"] + sum(n for c, n in opened["codes"].items() if c != "00")
        == (opened["sent"])
    )
    (tmp_path / "closed.json").write_text(json.dumps(closed))
    (tmp_path / "open.json").write_text(done.stdout)  # the whole stdout: its last line is the run
    compared = subprocess.run(
        [*POSGATE, "bench", "compare", "closed.json", "open.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert compared.returncode == 0, compared.stderr
    assert "approved_per_s" in compared.stdout and "p99_ms" in compared.stdout
    assert "the runs differ in rate" in compared.stdout  # a comparison across different settings says so
    broken = subprocess.run(
        [*POSGATE, "bench", "compare", "closed.json", "missing.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert broken.returncode == 2 and "missing.json" in broken.stderr


def test_profile_writes_a_flame_graph_of_each_stack_process(tmp_path: Path) -> None:
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        pytest.skip("py-spy is not installed (pip install 'posgate[profile]')")
    run, _ = bench(
        [
            *("--terminals", "2", "--duration", "3", "--warmup", "0.5", "--cards", "100"),
            *("--topology", "split", "--profile", str(tmp_path / "flames")),
        ],
        tmp_path,
    )
    assert run["profiles"] == [str(tmp_path / "flames" / f"posgate-{p}.svg") for p in ("issuer", "host")]
    host = (tmp_path / "flames" / "posgate-host.svg").read_text()
    # a flame graph of the host's own code: the pipeline and its steps are on it
    assert host.lstrip().startswith("<?xml") and "<svg" in host and "run_pipeline" in host
    assert "<svg" in (tmp_path / "flames" / "posgate-issuer.svg").read_text()
