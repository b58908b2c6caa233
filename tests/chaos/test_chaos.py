"""The short chaos run of `make test` (the long one is `make chaos`): every fault kind at least once under
terminal load, then the invariants and the data-protection scan. The report is printed (`pytest -s` shows
it; a failure shows it in the assertion). `CHAOS_SEED` replays another fault schedule."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.chaos import pg
from tests.chaos.harness import ChaosRun, RunConfig

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("CHAOS_SEED", "1"))


def _run(config: RunConfig, run_dir: Path) -> None:
    report = asyncio.run(ChaosRun(config, run_dir).run())
    print(report.text())
    assert report.ok, report.text()
    assert sum(report.faults.values()) >= config.rounds
    assert report.load.approved > 0, "no sale was approved: the load did not run"


def test_chaos_postgresql_host_issuer_and_database_killed(tmp_path: Path) -> None:
    """`posgate issuer` + `posgate host` on the run's own PostgreSQL: host, issuer and database killed,
    the host frozen, the issuer links delayed, dropped and cut — each once."""
    why_not = pg.available()
    if why_not is not None:
        if os.environ.get("CI"):
            pytest.fail(why_not)
        pytest.skip(why_not)
    config = RunConfig(
        store="postgresql", topology="split", rounds=7, seed=SEED, gap_s=(0.5, 2.0), recovery_s=30
    )
    _run(config, tmp_path / "postgresql-split")


def test_chaos_sqlite_single_process_killed(tmp_path: Path) -> None:
    """`posgate up` on SQLite under load: killed once, frozen once."""
    config = RunConfig(
        store="sqlite", topology="single", rounds=2, seed=SEED, terminals=4, gap_s=(0.5, 2.0), recovery_s=30
    )
    _run(config, tmp_path / "sqlite-single")
