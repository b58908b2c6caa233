"""Risk lists end to end, on SQLite and PostgreSQL: with the list rules (`risk_rules = lists`)
`posgate risk list add card --pan …` blocks the card at once for a running host — its next sale gets 59 and
never reaches the issuer — and `remove` lets it through again; a blocked terminal gets 58; an expired entry
no longer blocks; every change is audited with the masked PAN, never the PAN."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from posgate.bootstrap.stack import Running, start_all
from posgate.cli import app
from posgate.config import Settings
from posgate.logs import configure_logging
from posgate.store.models_onboarding import AuditEvent
from posgate.store.models_risk import RiskListEntry
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state
from tests.e2e.conftest import stack_settings

PAN = "6229990000000012"
CARD = demo_card(PAN)  # 10,000.00 CNY


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return stack_settings(tmp_path, database_url, risk_rules="lists")


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
    result = CliRunner().invoke(app, ["risk", "list", *args, *where])
    return result.exit_code, result.output


async def test_a_blocked_card_gets_59_at_once_and_never_reaches_the_issuer(
    stack: Running, settings: Settings, terminal: TerminalClient
) -> None:
    assert settings.risk_rules == "lists"
    assert (await terminal.sale(CARD, "123456", 1_000)).response_code == "00"
    code, out = posgate(settings, "add", "card", "--pan", PAN, "--reason", "reported stolen by the issuer")
    assert (code, out.strip()) == (0, "card 622999******0012 on the block list (entry 1)")
    declined = await terminal.sale(CARD, "123456", 1_000)
    assert declined.response_code == "59"
    assert (
        await terminal.balance(CARD, "123456")
    ).balance_fen == 1_000_000 - 1_000  # the issuer never saw it
    code, out = posgate(settings, "show", "--json")
    assert [(e["list"], e["action"], e["value"]) for e in json.loads(out)] == [
        ("card", "block", "622999******0012")
    ]
    assert posgate(settings, "remove", "card", "--pan", PAN)[0] == 0
    assert (await terminal.sale(CARD, "123456", 1_000)).response_code == "00"
    assert posgate(settings, "remove", "card", "--pan", PAN) == (
        1,
        "posgate: card 622999******0012 is not on the block list\n",
    )

    def audit_and_rows(session):  # type: ignore[no-untyped-def]
        events = session.scalars(select(AuditEvent).where(AuditEvent.subject_kind == "risk_list.card")).all()
        values = session.scalars(select(RiskListEntry.value)).all()
        return [(e.action, e.subject_ref, e.detail) for e in events], values

    events, values = await stack.handle.store.run(audit_and_rows)
    assert [(action, ref) for action, ref, _ in events] == [
        ("risk_list_added", "622999******0012"),
        ("risk_list_removed", "622999******0012"),
    ]
    assert "reported stolen" in events[0][2]
    assert PAN not in json.dumps(events) and all(PAN not in v and len(v) == 64 for v in values)


async def test_a_blocked_terminal_gets_58_and_an_expired_entry_no_longer_blocks(
    stack: Running, settings: Settings, terminal: TerminalClient
) -> None:
    code, out = posgate(settings, "add", "terminal", "--tid", "10000001", "--reason", "moved without notice")
    assert code == 0, out
    assert (await terminal.sale(CARD, "123456", 1_000)).response_code == "58"
    assert posgate(settings, "remove", "terminal", "--tid", "10000001")[0] == 0
    # 10 s: the add and a sale fit in it even on a loaded machine; then wait until it has passed
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)
    assert (
        posgate(settings, "add", "card", "--pan", PAN, "--reason", "check", "--expires", soon.isoformat())[0]
        == 0
    )
    assert (await terminal.sale(CARD, "123456", 1_000)).response_code == "59"
    await asyncio.sleep((soon - dt.datetime.now(dt.UTC)).total_seconds() + 0.5)
    assert (await terminal.sale(CARD, "123456", 1_000)).response_code == "00"


async def test_an_mcc_restricted_for_credit_cards_gets_58_for_them_only(
    stack: Running, settings: Settings, terminal: TerminalClient
) -> None:
    credit = demo_card("credit-ok")
    code, out = posgate(
        settings, "add", "mcc", "--mcc", "5311", "--card-kind", "credit", "--reason", "no credit"
    )
    assert (code, out.strip()) == (0, "mcc 5311:credit on the block list (entry 1)")
    assert (await terminal.sale(credit, "123456", 1_000)).response_code == "58"  # Demo Supermarket is 5311
    assert (await terminal.sale(CARD, "123456", 1_000)).response_code == "00"  # a debit card
    code, out = posgate(settings, "show", "mcc", "--json")
    assert [(e["list"], e["value"], e["reason"]) for e in json.loads(out)] == [
        ("mcc", "5311:credit", "no credit")
    ]
    assert posgate(settings, "remove", "mcc", "--mcc", "5311", "--card-kind", "credit")[0] == 0
    assert (await terminal.sale(credit, "123456", 1_000)).response_code == "00"
    assert posgate(settings, "add", "mcc", "--mcc", "5311", "--reason", "category closed")[0] == 0
    assert (await terminal.sale(CARD, "123456", 1_000)).response_code == "58"  # every card
    assert (
        posgate(settings, "add", "mcc", "--mcc", "531", "--reason", "x")[1].count("an MCC is 4 digits") == 1
    )
    code, out = posgate(settings, "add", "mcc", "--mcc", "5311", "--card-kind", "prepaid", "--reason", "x")
    assert code == 2 and "credit or debit" in out
    assert posgate(settings, "add", "card", "--pan", PAN, "--card-kind", "credit", "--reason", "x")[0] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "card", "--pan", "6229990000000013", "--reason", "x"], "--pan: "),
        (["add", "terminal", "--tid", "1234", "--reason", "x"], "a terminal is 8 digits, not '1234'"),
        (["add", "card", "--pan", PAN, "--reason", " "], "a reason is required"),
        (
            ["add", "card", "--pan", PAN, "--reason", "x", "--expires", "2020-01-01T00:00"],
            "the expiry is in the past",
        ),
        (["add", "card", "--tid", "10000001", "--reason", "x"], "a card is named with --pan"),
        (["add", "card", "--pan", PAN, "--reason", "x", "--list", "watch"], "no watch list for card"),
        (["add", "atm", "--tid", "10000001", "--reason", "x"], "unknown list kind 'atm'"),
    ],
)
async def test_refused_changes_say_why_and_never_echo_the_pan(
    stack: Running, settings: Settings, args: list[str], message: str
) -> None:
    code, out = posgate(settings, *args)
    assert code == 2 and message in out, out
    assert "6229990000000013" not in out and PAN not in out


async def test_a_watched_merchant_raises_an_alert_and_the_sale_is_approved(
    stack: Running, settings: Settings, terminal: TerminalClient
) -> None:
    assert (
        posgate(
            settings, "add", "merchant", "--mid", "898440153110001", "--list", "watch", "--reason", "new"
        )[0]
        == 0
    )
    sale = await terminal.sale(CARD, "123456", 2_345)
    assert sale.response_code == "00"
    result = CliRunner().invoke(
        app,
        [
            "risk",
            "alerts",
            "--json",
            "--data-dir",
            str(settings.data_dir),
            "--database-url",
            str(settings.database_url),
        ],
    )
    assert result.exit_code == 0, result.output
    alerts = json.loads(result.output)
    assert [(a["rule"], a["action"], a["tid"], a["mid"], a["state"]) for a in alerts] == [
        ("watched-terminal-or-merchant", "alert", "10000001", "898440153110001", "open")
    ]
    alert = alerts[0]
    assert (alert["rrn"], alert["pan_masked"], alert["amount_fen"], alert["response_code"]) == (
        sale.rrn,
        "622999******0012",
        2_345,
        "00",
    )
    assert alert["rule_version"] == "2026.12.1+lists" and alert["created_at"]


async def test_confirming_an_alert_as_fraud_blocks_the_card_and_dismissing_does_not(
    stack: Running, settings: Settings, terminal: TerminalClient
) -> None:
    where = ["--data-dir", str(settings.data_dir), "--database-url", str(settings.database_url)]

    def risk(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, ["risk", *args, *where])
        return result.exit_code, result.output

    assert (
        posgate(settings, "add", "terminal", "--tid", "10000001", "--list", "watch", "--reason", "new")[0]
        == 0
    )
    other = demo_card("6229990000000020")
    assert (await terminal.sale(other, "123456", 100)).response_code == "00"
    assert (await terminal.sale(CARD, "123456", 100)).response_code == "00"
    first, second = sorted(a["id"] for a in json.loads(risk("alerts", "--json")[1]))
    assert risk("alert", "dismiss", str(first), "--note", "the owner's own test") == (
        0,
        f"alert {first} dismissed\n",
    )
    assert risk("alert", "confirm", str(second)) == (
        0,
        f"alert {second} confirmed; card 622999******0012 on the block list\n",
    )
    assert (await terminal.sale(CARD, "123456", 100)).response_code == "59"
    assert (await terminal.sale(other, "123456", 100)).response_code == "00"  # the dismissed one's card
    code, out = risk("alert", "confirm", str(second))
    assert code == 2 and f"alert {second} is already confirmed" in out
    code, out = risk("alert", "dismiss", "999")
    assert code == 2 and "no alert 999" in out
    states = {a["id"]: a["state"] for a in json.loads(risk("alerts", "--json")[1])}
    assert (states[first], states[second]) == ("dismissed", "confirmed")
