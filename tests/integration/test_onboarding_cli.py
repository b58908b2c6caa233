"""`posgate merchant apply|review|approve|list` and `posgate terminal provision`, against the store."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from posgate.cli.merchants import merchant_app, provision_terminal_command
from posgate.terminal.state import TerminalState
from posgate.tools.onboarding_data import form_values, photo_files

app = typer.Typer()
app.add_typer(merchant_app, name="merchant")
terminal_app = typer.Typer()
terminal_app.command("provision")(provision_terminal_command)
terminal_app.command("noop", hidden=True)(lambda: None)
app.add_typer(terminal_app, name="terminal")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("POSGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("POSGATE_ENV", "test")
    monkeypatch.chdir(tmp_path)
    for _kind, (name, data, _mime) in photo_files().items():
        (tmp_path / name).write_bytes(data)
    document = {**form_values(), "photos": {kind: name for kind, (name, _d, _m) in photo_files().items()}}
    (tmp_path / "application.json").write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_apply_review_approve_provision_and_write_a_profile(env: Path) -> None:
    code, out = run("merchant", "apply", "application.json")
    assert code == 0, out
    assert "application 1 submitted" in out and "pass  id_number" in out
    assert run("merchant", "review", "1", "--start")[1].strip() == "application 1: under_review"
    code, out = run(
        "merchant", "approve", "1", "--terminals", "1", "--debit-ppm", "4500", "--wallet-ppm", "3000"
    )
    assert code == 0, out
    assert "merchant 898440158120001 (testing)" in out and "terminal 10000002 testing" in out
    code, out = run("merchant", "list", "--json")
    assert json.loads(out)[0]["mid"] == "898440158120001"
    code, out = run("terminal", "provision", "--merchant", "898440158120001", "--profile-file", "t.json")
    assert code == 0, out
    assert "terminal 10000003: profile written to t.json" in out
    profile = env / "t.json"
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    state = TerminalState.load(profile)
    assert (state.tid, state.mid, state.nii) == ("10000003", "898440158120001", "0003")
    assert run("terminal", "provision", "--tid", "10000003", "--profile-file", "u.json")[0] == 0
    assert TerminalState.load(env / "u.json").tmk_hex == state.tmk_hex
    assert state.mac_algorithm == "x919"  # the default for new terminals
    code, out = run(
        "terminal",
        "provision",
        "--merchant",
        "898440158120001",
        "--mac",
        "cup_ecb",
        "--profile-file",
        "v.json",
    )
    assert code == 0, out
    assert TerminalState.load(env / "v.json").mac_algorithm == "cup_ecb"


def test_refusals_exit_2_naming_the_problem(env: Path) -> None:
    document = json.loads((env / "application.json").read_text(encoding="utf-8"))
    document["mobile"] = "12345"
    (env / "bad.json").write_text(json.dumps(document), encoding="utf-8")
    code, out = run("merchant", "apply", "bad.json")
    assert code == 2 and "mobile: must be 11 digits" in out
    assert run("merchant", "review", "1", "--start")[0] == 2
    code, out = run("merchant", "review", "1")
    assert code == 2 and "exactly one" in out
    code, out = run("terminal", "provision", "--merchant", "898000000000000")
    assert code == 2 and "no merchant with this MID" in out
    code, out = run("terminal", "provision", "--merchant", "898440153110001", "--mac", "des")
    assert code == 2 and "mac_algorithm: must be cup_ecb or x919, got 'des'" in out
