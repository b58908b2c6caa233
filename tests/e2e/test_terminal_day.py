"""The full POS transaction set end to end: a mixed trading day (sales by stripe, chip and tap, declines,
voids, partial refunds, pre-authorizations and completions, their voids, reversals) on one terminal against
the host and the issuer simulators, then settlement — and every card's available amount moved exactly as
the day's report predicts."""

from __future__ import annotations

import random

import pytest

from posgate.terminal import CardProfile, TerminalClient, demo_card, play_day
from posgate.terminal.client import default_entry

CARDS = [
    demo_card(p)
    for p in ("debit-ok", "debit-low", "debit-pin888", "credit-ok", "credit-chip", "credit-chip-2")
]


async def _available(terminal: TerminalClient, card: CardProfile) -> int:
    result = await terminal.balance(card, card.default_pin, default_entry(card))
    assert result.approved, result.summary()
    assert result.balance_fen is not None
    return result.balance_fen


@pytest.mark.default_risk_rules  # the day looks like real shoppers to the host's own default risk rules
async def test_a_day_settles_balanced_and_moves_exactly_the_predicted_money(terminal: TerminalClient) -> None:
    before = {card: await _available(terminal, card) for card in CARDS}
    report = await play_day(terminal, CARDS, 150, random.Random(2026))
    assert report.settled and report.balanced, [(s.response_code, s.uploaded) for s in report.settlements]
    assert report.unresolved == 0
    approved = {kind for (kind, code) in report.counts if code == "00"}
    assert {"sale", "void", "refund", "preauth", "completion", "reversal"} <= approved, report.rows()
    assert not [row for row in report.rows() if row[1].endswith("!")], report.rows()  # MAC / ARPC failures
    after = {card: await _available(terminal, card) for card in CARDS}
    moved = {card.masked_pan: before[card] - after[card] for card in CARDS}
    expected = {card.masked_pan: report.effect_fen[card] + report.held_fen[card] for card in CARDS}
    assert moved == expected
    assert terminal.state.batch == "000002"


async def test_an_unbalanced_batch_is_uploaded_and_closed(terminal: TerminalClient) -> None:
    ok, chip = demo_card("debit-ok"), demo_card("credit-chip")
    for amount in range(101, 111):
        assert (await terminal.sale(ok, "123456", amount)).approved
    assert (await terminal.sale(chip, "123456", 500, "chip")).approved
    terminal.state.journal.pop(0)  # the terminal "lost" a record: its totals now differ from the host's
    result = await terminal.settle()
    assert result.settled and not result.balanced
    assert result.uploaded == 10
    assert [r.mti for r in result.responses] == ["0510", "0330", "0330", "0330", "0330"]
    assert all(r.response_code == "00" for r in result.responses)
    assert terminal.state.batch == "000002" and terminal.state.journal == []
