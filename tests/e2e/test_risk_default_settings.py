"""The host's default settings run the whole default risk rule set (issue 11's contract), on SQLite and
PostgreSQL: a card's 6th sale at one merchant within 10 minutes gets `65`, while a simulated trading day on
the demo fixture's cards stays approved, apart from the declines the day plans (a wrong PIN `55`, a sale
beyond any card's funds `51` or the amount limit's `61`)."""

from __future__ import annotations

import asyncio
import os
import random
import re
import sys
from pathlib import Path

import pytest

from posgate.bootstrap.stack import Running
from posgate.config import Settings
from posgate.terminal import TerminalClient, demo_card, play_day

pytestmark = pytest.mark.default_risk_rules  # what these tests are about: no pinned rules


def test_the_default_setting_is_the_default_rule_set(tmp_path: Path, database_url: str) -> None:
    assert Settings(data_dir=tmp_path, database_url=database_url).risk_rules == "default"


async def test_a_cards_sixth_sale_at_one_merchant_within_10_minutes_gets_65(terminal: TerminalClient) -> None:
    card = demo_card("debit-ok")
    codes = [(await terminal.sale(card, "123456", 1_000 + n)).response_code for n in range(6)]
    assert codes == ["00", "00", "00", "00", "00", "65"]
    other = demo_card("credit-ok")
    assert (await terminal.sale(other, "123456", 1_000)).response_code == "00"  # only that card is refused


async def test_a_simulated_day_stays_approved_but_for_the_declines_it_plans(terminal: TerminalClient) -> None:
    cards = [
        demo_card(p)
        for p in ("debit-ok", "debit-low", "debit-pin888", "credit-ok", "credit-chip", "credit-chip-2")
    ]
    report = await play_day(terminal, cards, 100, random.Random(11))
    assert report.settled and report.balanced
    planned = {("sale", "55"), ("sale", "51"), ("sale", "61")}  # wrong PIN, beyond the funds or the limit
    refused = {(kind, code) for (kind, code) in report.counts if code != "00"} - {("settlement", "balanced")}
    assert refused <= planned, report.rows()
    assert report.approved("sale") >= 15 and report.approved("preauth") >= 1, report.rows()


async def test_posgate_terminal_day_stays_approved_but_for_the_declines_it_plans(
    stack: Running, tmp_path: Path
) -> None:
    host, port = stack.pos_address
    day = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "posgate", "terminal", "day", "--host", host, "--port", str(port)),
        *("--state-file", str(tmp_path / "terminal.json"), "--transactions", "60", "--seed", "5"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    out = (await asyncio.wait_for(day.communicate(), timeout=120))[0].decode()
    assert day.returncode == 0, out
    rows = re.findall(r"^│ (\w+)\s+│ (\w+!?)\s+│", out, re.MULTILINE)  # the summary table: kind, code
    assert ("sale", "00") in rows, out
    refused = {(kind, code) for kind, code in rows if code not in ("00", "balanced")}
    assert refused <= {("sale", "55"), ("sale", "51"), ("sale", "61")}, out
