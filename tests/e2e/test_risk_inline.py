"""The inline risk decision end to end over real sockets (terminal simulator → host → issuer simulator), on
SQLite and PostgreSQL, with the default rule set: the velocity contract (a card's 6th approved-sale attempt at
a merchant within 10 minutes gets 65 and never reaches the issuer), a relocated terminal gets 58, ordinary
sales pass, the score and the rules that hit are stored with the transaction and shown by `posgate txn show`,
and a host started again on the same store still knows the last sales."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from posgate.bootstrap.stack import Running, start_all
from posgate.cli import app
from posgate.config import Settings
from posgate.logs import configure_logging
from posgate.store.models import Terminal
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state
from posgate.terminal.state import TerminalState
from tests.e2e.conftest import stack_settings

OK_CARD = demo_card("6229990000000012")  # 10,000.00 CNY
OTHER_CARD = demo_card("6229990000000020")  # 10.00 CNY
SHOP = "22.5431,114.0579"  # Shenzhen


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return stack_settings(tmp_path, database_url, risk_rules="default")


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Running]:
    configure_logging(settings.data_dir, "INFO", console=False)
    running = await start_all(settings)
    try:
        yield running
    finally:
        await running.stop()


async def signed_in(
    stack: Running, location: str | None = None, state: TerminalState | None = None
) -> TerminalClient:
    host, port = stack.pos_address
    state = state or demo_terminal_state()
    state.location = location
    client = TerminalClient(host, port, state, timeout_s=5.0)
    await client.connect()
    assert (await client.sign_in()).approved
    return client


def txn_show(settings: Settings, rrn: str) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(
        app,
        [
            "txn",
            "show",
            rrn,
            "--data-dir",
            str(settings.data_dir),
            "--database-url",
            str(settings.database_url),
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


async def test_the_sixth_sale_within_10_minutes_gets_65_without_asking_the_issuer(
    stack: Running, settings: Settings
) -> None:
    client = await signed_in(stack)
    try:
        for _ in range(5):
            sale = await client.sale(OK_CARD, "123456", 10_000)
            assert sale.response_code == "00", sale
        sixth = await client.sale(OK_CARD, "123456", 10_000)
        assert sixth.response_code == "65"
        other = await client.sale(OTHER_CARD, "123456", 100)  # another card at the same shop: fine
        assert other.response_code == "00"
        balance = await client.balance(OK_CARD, "123456")
        assert balance.balance_fen == 1_000_000 - 5 * 10_000  # the 65 never reached the issuer
    finally:
        await client.close()
    assert sixth.rrn
    shown = txn_show(settings, sixth.rrn)
    assert (shown["state"], shown["response_code"], shown["risk_score"]) == ("declined", "65", 40)
    assert shown["risk"] == {
        "version": "2026.12.1",
        "action": "decline",
        "score": 40,
        "code": "65",
        "decided_by": "card-merchant-velocity",
        "hits": ["card-merchant-velocity"],
        "errors": [],
    }
    assert "AssessRisk:65" in shown["trace"] and "AskIssuer" not in shown["trace"]
    assert other.rrn
    approved = txn_show(settings, other.rrn)
    assert (approved["risk_score"], approved["risk"]["action"], approved["risk"]["hits"]) == (
        0,
        "approve",
        [],
    )

    # a host started again on the same store still knows the card's last ten minutes
    await stack.stop()
    again = await start_all(settings)
    try:
        client = await signed_in(again, state=client.state)  # the same terminal: its STANs go on
        try:
            assert (await client.sale(OK_CARD, "123456", 10_000)).response_code == "65"
        finally:
            await client.close()
    finally:
        await again.stop()
        stack.host = None  # stopped above; the fixture's stop finds nothing left to stop
        stack.issuers = None


async def test_a_relocated_terminal_gets_58(stack: Running, settings: Settings) -> None:
    await stack.handle.store.run(
        lambda s: s.execute(update(Terminal).where(Terminal.tid == "10000001").values(location=SHOP))
    )
    client = await signed_in(stack, location="22.5441,114.0589")  # 140 m from the shop
    try:
        assert (await client.sale(OK_CARD, "123456", 1_000)).response_code == "00"
        client.state.location = "39.9042,116.4074"  # the same terminal, now in Beijing
        declined = await client.sale(OK_CARD, "123456", 1_000)
        assert declined.response_code == "58"
        client.state.location = None  # no field 59: no evidence either way
        assert (await client.sale(OK_CARD, "123456", 1_000)).response_code == "00"
    finally:
        await client.close()
    assert declined.rrn
    shown = txn_show(settings, declined.rrn)
    assert shown["risk"]["decided_by"] == "relocated-terminal" and shown["risk_score"] == 60
    assert shown["location"] == "39.9042,116.4074"  # field 59 kept: where the terminal said it was


async def test_a_shadow_rule_set_is_evaluated_and_recorded_but_never_acts(
    tmp_path: Path, database_url: str
) -> None:
    """Live: the list rules (the default). Shadow: the whole default rule set. The sixth sale of a card in
    10 minutes is approved — and recorded as one the shadow set would have declined with 65."""
    settings = stack_settings(tmp_path, database_url, risk_shadow_rules="default")
    configure_logging(settings.data_dir, "INFO", console=False)
    running = await start_all(settings)
    try:
        client = await signed_in(running)
        try:
            results = [await client.sale(OK_CARD, "123456", 10_000) for _ in range(6)]
        finally:
            await client.close()
    finally:
        await running.stop()
    assert [r.response_code for r in results] == ["00"] * 6
    assert results[5].rrn
    shown = txn_show(settings, results[5].rrn)
    assert (shown["risk"]["version"], shown["risk"]["action"]) == ("2026.12.1+lists", "approve")
    assert shown["risk"]["shadow"] == {
        "version": "2026.12.1",
        "action": "decline",
        "score": 40,
        "code": "65",
        "decided_by": "card-merchant-velocity",
        "hits": ["card-merchant-velocity"],
        "errors": [],
    }
    assert shown["risk_score"] == 0  # the live score
