"""End to end: a mixed day played by the terminal simulator through the acquirer host against the issuer
simulator (sales of every entry mode, declines, voids, refunds, pre-authorizations and completions and
their voids, unanswered requests reversed), settled; then cleared, the ledger balanced and the merchant's
money equal to what the host approved; the issuer simulator's clearing files of both banks reconcile with
the host's records exactly; with two discrepancies injected into one, the report names exactly those."""

from __future__ import annotations

import random
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from posgate.bootstrap.stack import Running
from posgate.issuer.clearing_file import HEADER, write_clearing_file
from posgate.settlement import bankfile
from posgate.settlement.clearing import run_clearing
from posgate.settlement.clearing_day import clearing_date, clearing_window
from posgate.settlement.ledger_store import trial_balance, unbalanced_entries
from posgate.settlement.payouts import payable_balances
from posgate.settlement.rates import Rates
from posgate.settlement.reconcile import reconcile_issuer_file
from posgate.store.acquirer import pending_saf_count
from posgate.store.models import Transaction
from posgate.store.models_ledger import ClearingEntry
from posgate.terminal import TerminalClient, demo_card, play_day

from .helpers import eventually

CARDS = [demo_card(p) for p in ("debit-ok", "debit-pin888", "credit-ok", "credit-chip", "credit-chip-2")]
MID = "898440153110001"
RATES = Rates()


async def test_a_played_day_clears_and_reconciles_with_both_issuers(
    stack: Running, terminal: TerminalClient, tmp_path: Path
) -> None:
    # the day's full mix on five cards within seconds, on the list rules (tests/conftest.py)
    report = await play_day(terminal, CARDS, 90, random.Random(2026), mind_risk_rules=False)
    assert report.settled and report.unresolved == 0
    assert await eventually(lambda: _drained(stack), timeout_s=20)
    assert stack.host is not None
    store, timezone = stack.handle.store, stack.host.services.settings.timezone
    zone, cut = ZoneInfo(timezone), RATES.clearing.cut_off_local

    created = await store.run(lambda s: s.scalars(select(Transaction.created_at)).all())
    days = {clearing_date(at, zone, cut) for at in created}
    if len(days) != 1:
        pytest.skip("the played day straddles the clearing cut-off")
    day = days.pop()

    result = run_clearing(store, day, RATES, timezone, allow_open_day=True)
    assert result.cleared > 20 and result.pending == 0
    assert store.transact(trial_balance) == 0 and store.transact(unbalanced_entries) == []

    def approved(kinds: tuple[str, ...]):  # type: ignore[no-untyped-def]
        return lambda s: s.scalar(
            select(func.coalesce(func.sum(Transaction.amount_fen), 0)).where(
                Transaction.kind.in_(kinds), Transaction.state == "approved"
            )
        )

    gross = store.transact(approved(("sale", "completion")))
    refunds = store.transact(approved(("refund",)))
    mdr = store.transact(lambda s: s.scalar(select(func.sum(ClearingEntry.mdr_fen))))
    assert store.transact(lambda s: payable_balances(s))[MID] == gross - refunds - mdr

    start, end = clearing_window(day, zone, cut)
    files = {}
    for bank in ("Demo Bank A", "Demo Bank B"):
        path = tmp_path / f"{bank}.csv"
        lines, _ = store.transact(
            lambda s, bank=bank, path=path: write_clearing_file(s, bank, start, end, path)
        )
        outcome = reconcile_issuer_file(store, path, day, timezone, cut)
        assert (outcome.matched, outcome.differences) == (lines, []), bank
        files[bank] = path

    rows = bankfile.parse(files["Demo Bank A"].read_text(), HEADER, "amount_fen")
    sales = [row for row in rows if row["effect"] == "debit"]
    changed, dropped = sales[0]["rrn"], sales[-1]["rrn"]
    edited = [
        [
            row[c] if not (row["rrn"] == changed and c == "amount_fen") else str(int(row[c]) - 1)
            for c in HEADER
        ]
        for row in rows
        if row["rrn"] != dropped
    ]
    bankfile.write(tmp_path / "edited.csv", HEADER, edited, "amount_fen")
    outcome = reconcile_issuer_file(store, tmp_path / "edited.csv", day, timezone, cut)
    assert sorted((d.status, d.rrn) for d in outcome.differences) == [
        ("amount_mismatch", changed),
        ("missing_on_issuer", dropped),
    ]
    assert outcome.matched == len(rows) - 2


async def _drained(stack: Running) -> bool:
    return await stack.handle.store.run(pending_saf_count) == 0
