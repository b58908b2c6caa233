"""`posgate seed history` and `posgate kpi` as a user types them (SQLite): the generator's line, the human
summary, `--json`, a refused period, and `posgate kpi refresh`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from posgate.cli import app


def test_seed_history_then_kpi(tmp_path: Path) -> None:
    runner, data = CliRunner(), ["--data-dir", str(tmp_path / "data")]
    env = {"POSGATE_ENV": "test"}
    seeded = runner.invoke(app, ["seed", "history", "--days", "7", "--transactions", "700", *data], env=env)
    assert seeded.exit_code == 0, seeded.output
    assert "seeded 700 transactions over 7 days" in seeded.output
    shown = runner.invoke(app, ["kpi", "--from", "2000-01-01", "--to", "2100-01-01", *data], env=env)
    assert shown.exit_code == 2 and "at most 3660 days" in shown.output
    human = runner.invoke(app, ["kpi", *data], env=env)  # the last 30 days: the seeded week
    assert human.exit_code == 0, human.output
    assert "approval rate" in human.output and "active terminals" in human.output
    as_json = json.loads(runner.invoke(app, ["kpi", "--json", *data], env=env).output)
    assert as_json["approved_count"] > 0 and 0 < as_json["approval_rate"] < 1
    backwards = runner.invoke(app, ["kpi", "--from", "2026-11-30", "--to", "2026-11-01", *data], env=env)
    assert backwards.exit_code == 2 and "must not be before" in backwards.output
    refreshed = runner.invoke(app, ["kpi", "refresh", "--full", *data], env=env)
    assert refreshed.exit_code == 0 and "(full)" in refreshed.output
    refused = runner.invoke(
        app, ["seed", "history", "--transactions", "10", *data], env={"POSGATE_ENV": "production"}
    )
    assert refused.exit_code == 2 and "refused" in refused.output
