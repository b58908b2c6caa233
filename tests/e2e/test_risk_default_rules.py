"""More of the default rule set end to end through the host (SQLite and PostgreSQL, real TCP, the issuer
simulator's demo cards): the terminal sees the rule's code, `posgate txn show` names the rule, the alerts
a rule asks for appear in `posgate risk alerts`. Each test starts from a fresh store (fresh aggregates).
The velocity rule (65), relocated terminals (58) and shadow mode are in test_risk_inline.py; lists in
test_risk_lists.py; holds and suspensions in test_risk_disposal.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from posgate.bootstrap.stack import Running, start_all
from posgate.cli import app
from posgate.config import Settings
from posgate.logs import configure_logging
from posgate.terminal import TerminalClient, demo_card
from tests.e2e.conftest import stack_settings
from tests.e2e.helpers import eventually
from tests.e2e.test_risk_inline import signed_in, txn_show

DEBIT = demo_card("6229990000000012")  # 10,000.00 CNY
LOW = demo_card("6229990000000020")  # 10.00 CNY
EXPIRED = demo_card("6229990000000038")
LOST = demo_card("6229990000000046")
PIN888 = demo_card("6229990000000053")
CREDIT_50K = demo_card("6228880000000016")  # limit 50,000.00 CNY
CREDIT_100K = demo_card("6228880000000032")  # limit 100,000.00 CNY


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


@pytest.fixture
async def terminal(stack: Running) -> AsyncIterator[TerminalClient]:
    client = await signed_in(stack)
    try:
        yield client
    finally:
        await client.close()


def alert_rules(settings: Settings) -> list[str]:
    where = ["--data-dir", str(settings.data_dir), "--database-url", str(settings.database_url)]
    result = CliRunner().invoke(app, ["risk", "alerts", "--json", *where])
    assert result.exit_code == 0, result.output
    return sorted(a["rule"] for a in json.loads(result.output))


def soon(check):  # type: ignore[no-untyped-def]
    async def run() -> bool:
        return bool(check())

    return run


async def test_over_the_single_sale_limit_gets_61_though_the_issuer_would_approve(
    settings: Settings, terminal: TerminalClient
) -> None:
    over = await terminal.sale(CREDIT_100K, "123456", 6_000_000)  # 60,000.00 CNY, within the card's limit
    assert over.response_code == "61" and over.rrn
    assert txn_show(settings, over.rrn)["risk"]["decided_by"] == "amount-limit"
    assert (await terminal.sale(CREDIT_100K, "123456", 4_000_000)).response_code == "00"  # 40,000.00


async def test_a_credit_sale_just_under_the_limit_is_approved_and_alerted(
    settings: Settings, terminal: TerminalClient
) -> None:
    assert (await terminal.sale(CREDIT_100K, "123456", 4_880_000)).response_code == "00"
    assert await eventually(soon(lambda: "near-limit-credit" in alert_rules(settings)), timeout_s=5)


async def test_three_wrong_pins_then_the_right_one_gets_59(
    settings: Settings, terminal: TerminalClient
) -> None:
    answers = [(await terminal.sale(DEBIT, "000000", 1_000)).response_code for _ in range(3)]
    assert answers == ["55", "55", "75"]  # the issuer blocks the PIN at the third
    guessed = await terminal.sale(DEBIT, "123456", 1_000)
    assert guessed.response_code == "59" and guessed.rrn
    assert txn_show(settings, guessed.rrn)["risk"]["decided_by"] == "wrong-pin-burst"
    assert (await terminal.sale(CREDIT_50K, "123456", 1_000)).response_code == "00"  # another card


async def test_a_card_the_issuer_called_lost_is_not_tried_again(
    settings: Settings, terminal: TerminalClient
) -> None:
    assert (await terminal.sale(LOST, "123456", 1_000)).response_code == "41"  # the issuer's answer
    again = await terminal.sale(LOST, "123456", 1_000)
    assert again.response_code == "59" and again.rrn  # risk's, before the issuer is asked
    assert txn_show(settings, again.rrn)["risk"]["decided_by"] == "card-issuer-blocked"


async def test_card_testing_on_a_terminal_gets_59_and_wrong_pins_on_many_cards_alert(
    settings: Settings, terminal: TerminalClient
) -> None:
    answers = [
        (await terminal.sale(LOW, "123456", 5_000)).response_code,  # 51
        (await terminal.sale(LOW, "123456", 6_000)).response_code,  # 51
        (await terminal.sale(EXPIRED, "123456", 100)).response_code,  # 54
        (await terminal.sale(PIN888, "123456", 100)).response_code,  # 55
        (await terminal.sale(LOST, "123456", 100)).response_code,  # 41
    ]
    assert answers == ["51", "51", "54", "55", "41"]
    tested = await terminal.sale(DEBIT, "123456", 100)
    assert tested.response_code == "59" and tested.rrn
    assert txn_show(settings, tested.rrn)["risk"]["decided_by"] == "card-testing-terminal"


async def test_a_split_sale_is_approved_and_opens_a_review(
    settings: Settings, terminal: TerminalClient
) -> None:
    for amount in (400_000, 380_000, 360_000):  # 4,000 + 3,800 + 3,600 CNY within minutes
        assert (await terminal.sale(CREDIT_50K, "123456", amount)).response_code == "00"
    assert await eventually(soon(lambda: "split-sale" in alert_rules(settings)), timeout_s=5)


async def test_a_terminal_moved_across_town_is_approved_and_alerted(
    stack: Running, settings: Settings
) -> None:
    from sqlalchemy import update

    from posgate.store.models import Terminal

    await stack.handle.store.run(
        lambda s: s.execute(
            update(Terminal).where(Terminal.tid == "10000001").values(location="22.5431,114.0579")
        )
    )
    client = await signed_in(stack, location="22.6431,114.0579")  # 11 km north of the shop
    try:
        assert (await client.sale(DEBIT, "123456", 1_000)).response_code == "00"
    finally:
        await client.close()
    assert await eventually(soon(lambda: "moved-terminal" in alert_rules(settings)), timeout_s=5)
