"""Risk disposal end to end, on SQLite and PostgreSQL, over real TCP with a rule set that holds and
suspends: a `hold_settlement` hit holds the merchant's settlement (the day still clears; the T+1 batch pays it
nothing and lists it in the withheld file; `posgate risk release` and the next batch pays it); an automatic
`suspend_terminal` hit suspends the terminal (its next sale gets 03); a non-automatic `suspend_merchant` hit
is only a proposal until an officer acts on the alert (`posgate risk alert suspend-merchant`). Every action
is audited with the rule-set version."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from posgate.bootstrap.stack import Running, start_all
from posgate.cli import app
from posgate.config import Settings
from posgate.logs import configure_logging
from posgate.settlement import bankfile
from posgate.settlement.clearing_day import clearing_date
from posgate.settlement.payouts import PAYOUT_HEADER, WITHHELD_HEADER
from posgate.settlement.rates import Rates
from posgate.store.models_onboarding import AuditEvent
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state
from tests.e2e.conftest import stack_settings
from tests.e2e.helpers import eventually

CARD = demo_card("6229990000000012")  # 10,000.00 CNY
MID, TID = "898440153110001", "10000001"
RULES = """
version = "test-disposal.1"
[[rules]]
id = "hold-big-sale"
description = "A sale of 1,000 CNY or more holds the merchant's settlement"
expression = "txn.amount_fen >= 100000"
action = "hold_settlement"
score = 10
[[rules]]
id = "propose-merchant-suspension"
description = "888.00: an officer is asked to suspend the merchant"
expression = "txn.amount_fen == 88800"
action = "suspend_merchant"
score = 10
[[rules]]
id = "suspend-terminal-now"
description = "777.00: the terminal is suspended at once"
expression = "txn.amount_fen == 77700"
action = "suspend_terminal"
automatic = true
score = 10
"""


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    return stack_settings(tmp_path, database_url, risk_rules=str(rules))


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Running]:
    configure_logging(settings.data_dir, "INFO", console=False)
    running = await start_all(settings)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def terminal(stack: Running) -> AsyncIterator[TerminalClient]:
    host, port = stack.pos_address
    client = TerminalClient(host, port, demo_terminal_state(), timeout_s=5.0)
    await client.connect()
    assert (await client.sign_in()).approved
    try:
        yield client
    finally:
        await client.close()


def posgate(settings: Settings, *args: str) -> tuple[int, str]:
    where = ["--data-dir", str(settings.data_dir), "--database-url", str(settings.database_url)]
    result = CliRunner().invoke(app, [*args, *where])
    return result.exit_code, result.output


def alerts(settings: Settings) -> list[dict]:  # type: ignore[type-arg]
    code, out = posgate(settings, "risk", "alerts", "--json")
    assert code == 0, out
    return json.loads(out)


def audit_events(stack: Running, action: str) -> list[AuditEvent]:
    return stack.handle.store.transact(
        lambda s: list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))
    )


async def test_a_hold_keeps_the_merchant_out_of_payouts_until_released(
    stack: Running, settings: Settings, terminal: TerminalClient
) -> None:
    assert (await terminal.sale(CARD, "123456", 20_000)).response_code == "00"  # 200.00: no hold
    code, out = posgate(settings, "risk", "holds", "--json")
    assert (code, json.loads(out)) == (0, [])
    assert (await terminal.sale(CARD, "123456", 150_000)).response_code == "00"  # approved, then held

    assert await eventually(soon(lambda: _held(settings)), timeout_s=5)
    [hold] = json.loads(posgate(settings, "risk", "holds", "--json")[1])
    assert (hold["mid"], hold["rule"], hold["rule_version"]) == (MID, "hold-big-sale", "test-disposal.1")
    [alert] = alerts(settings)
    assert (alert["rule"], alert["action"], hold["alert_id"]) == (
        "hold-big-sale",
        "hold_settlement",
        alert["id"],
    )
    [placed] = audit_events(stack, "risk_hold_placed")
    assert json.loads(placed.detail)["rule_version"] == "test-disposal.1" and placed.actor == "risk"

    rates = Rates()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    day = clearing_date(now, ZoneInfo(settings.timezone), rates.clearing.cut_off_local).isoformat()
    code, out = posgate(settings, "clearing", "run", "--date", day, "--allow-open-day")
    assert code == 0, out
    assert f"{MID}: settlement held by risk" in out and f"hold {hold['id']}" in out

    code, out = posgate(settings, "settlement", "payouts", "--date", day)
    assert code == 0, out
    assert "nothing new to pay" in out and f"{MID}: " in out and "withheld" in out
    withheld = settings.data_dir / "payouts" / f"payouts-{day}-withheld.csv"
    [row] = bankfile.read(withheld, WITHHELD_HEADER, "withheld_fen")
    assert (row["mid"], row["hold_id"]) == (MID, str(hold["id"]))
    assert 0 < int(row["withheld_fen"]) < 170_000  # the two sales less their MDR
    assert not (settings.data_dir / "payouts" / f"payouts-{day}.csv").exists()

    code, out = posgate(settings, "settlement", "report", "--date", day, "--format", "csv")
    assert code == 0 and f"hold {hold['id']}" in out, out

    code, out = posgate(settings, "risk", "release", "--mid", MID, "--note", "called the merchant: genuine")
    assert (code, out.strip()) == (0, f"merchant {MID} settlement released (hold {hold['id']})")
    assert posgate(settings, "risk", "release", "--mid", MID)[0] == 2  # nothing held any more
    code, out = posgate(settings, "settlement", "payouts", "--date", day)
    assert code == 0 and "1 payouts" in out, out
    [paid] = bankfile.read(settings.data_dir / "payouts" / f"payouts-{day}.csv", PAYOUT_HEADER, "amount_fen")
    assert (paid["mid"], paid["amount_fen"]) == (MID, row["withheld_fen"])
    assert len(audit_events(stack, "risk_hold_released")) == 1


def soon(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()

    return run


def _held(settings: Settings) -> bool:
    return bool(json.loads(posgate(settings, "risk", "holds", "--json")[1]))


async def test_an_automatic_suspension_acts_and_a_proposal_waits_for_an_officer(
    stack: Running, settings: Settings, terminal: TerminalClient
) -> None:
    assert (await terminal.sale(CARD, "123456", 88_800)).response_code == "00"
    assert await eventually(soon(lambda: len(alerts(settings)) == 1), timeout_s=5)
    assert (await terminal.sale(CARD, "123456", 1_000)).response_code == "00"  # a proposal suspends nothing
    [proposal] = alerts(settings)
    assert (proposal["action"], proposal["automatic"], proposal["state"]) == (
        "suspend_merchant",
        False,
        "open",
    )

    code, out = posgate(
        settings, "risk", "alert", "suspend-merchant", str(proposal["id"]), "--note", "bust-out"
    )
    assert (code, out.strip()) == (0, f"alert {proposal['id']}: merchant {MID} suspended")
    assert (await terminal.sale(CARD, "123456", 1_000)).response_code == "03"
    [event] = audit_events(stack, "risk_suspended")
    detail = json.loads(event.detail)
    assert (event.subject_ref, detail["rule_version"], detail["alert"]) == (
        MID,
        "test-disposal.1",
        proposal["id"],
    )
    code, out = posgate(settings, "risk", "alert", "suspend-merchant", str(proposal["id"]))
    assert (code, "suspend needs it testing or live" in out) == (2, True)  # the lifecycle refuses it again
    code, out = posgate(settings, "risk", "alert", "hold", "999999")
    assert code == 2 and "no alert 999999" in out


async def test_an_automatic_terminal_suspension_gets_03_from_the_next_sale(
    stack: Running, settings: Settings, terminal: TerminalClient
) -> None:
    assert (await terminal.sale(CARD, "123456", 77_700)).response_code == "00"  # approved, then suspended
    assert await eventually(soon(lambda: len(audit_events(stack, "risk_suspended")) == 1), timeout_s=5)
    assert (await terminal.sale(CARD, "123456", 1_000)).response_code == "03"
    [event] = audit_events(stack, "risk_suspended")
    assert (event.subject_kind, event.subject_ref, event.actor) == ("terminal", TID, "risk")
    assert json.loads(event.detail)["rule"] == "suspend-terminal-now"
