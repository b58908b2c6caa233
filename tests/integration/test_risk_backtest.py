"""Backtests over a real store (SQLite and PostgreSQL): stored sales replayed in order through the default
rules with the aggregates rebuilt as they were (the 6th sale of a card within 10 minutes would get 65; the
30 days before the period warm the counters), the lists as they were at each sale's time, precision and
recall against the alerts' labels; and the command's report."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from posgate.cli import app
from posgate.risk.backtest import run_backtest
from posgate.risk.rules import default_rule_set
from posgate.store.db import make_engine, migrate
from posgate.store.models import Merchant, Terminal, Transaction
from posgate.store.models_risk import RiskAlert, RiskListEntry
from posgate.store.runtime import Store

DAY = dt.datetime(2026, 12, 3, 2, 0)  # 10:00 in Shanghai
CARD, OTHER = "a" * 64, "b" * 64


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=1, inline=True)
    yield store
    store.close()


def _sale(n: int, at: dt.datetime, pan_hash: str, amount_fen: int = 10_000, code: str = "00") -> Transaction:
    return Transaction(
        id=n,
        tid="10000001",
        mid="898440153110001",
        batch_no="000001",
        stan=f"{n:06d}",
        mti="0200",
        processing_code="000000",
        business_date=at.date(),
        kind="sale",
        amount_fen=amount_fen,
        pan_hash=pan_hash,
        pan_masked="622999******0012",
        card_kind="debit",
        response_code=code,
        state="approved" if code == "00" else "declined",
        created_at=at,
    )


def _history(session) -> None:  # type: ignore[no-untyped-def]
    since = dt.datetime(2025, 1, 1)
    merchant = Merchant(mid="898440153110001", name="Shop", mcc="5311", created_at=since, live_at=since)
    session.add(merchant)
    session.flush()
    session.add(Terminal(tid="10000001", merchant_id=merchant.id, created_at=since))
    # a sale the day before the period only feeds the counters (the 30-day warm-up)
    rows = [_sale(1, DAY - dt.timedelta(days=1), CARD)]
    rows += [
        _sale(2 + i, DAY + dt.timedelta(minutes=i), CARD) for i in range(6)
    ]  # 6 in 6 minutes: the 6th hits
    rows += [_sale(8, DAY + dt.timedelta(minutes=20), OTHER)]  # blocked by then (below)
    rows += [_sale(9, DAY + dt.timedelta(minutes=40), OTHER)]  # unblocked again
    session.add_all(rows)
    session.add(
        RiskListEntry(
            list_kind="card",
            action="block",
            value=OTHER,
            reason="test",
            created_at=DAY + dt.timedelta(minutes=15),
            created_by="t",
            removed_at=DAY + dt.timedelta(minutes=30),
            removed_by="t",
        )
    )
    alert = dict(rule="x", rule_version="v", action="alert", automatic=False, kind="sale", tid="10000001",
                 mid="898440153110001", amount_fen=10_000, score=0, created_at=DAY)  # fmt: skip
    session.add_all(
        [RiskAlert(txn_id=7, state="confirmed", **alert), RiskAlert(txn_id=3, state="dismissed", **alert)]
    )


def test_the_replay_rebuilds_aggregates_and_lists_as_they_were(store: Store) -> None:
    store.transact(_history)
    start, end = DAY - dt.timedelta(hours=2), DAY + dt.timedelta(hours=2)
    report = store.transact(lambda s: run_backtest(s, default_rule_set(), start, end)).as_dict()
    assert (report["transactions"], report["would_decline"], report["amount_at_risk_fen"]) == (8, 2, 20_000)
    assert report["labelled_fraud"] == 1
    velocity = report["rules"]["card-merchant-velocity"]
    assert (
        velocity["hits"],
        velocity["declines"],
        velocity["true_positives"],
        velocity["false_positives"],
    ) == (
        1,
        1,
        1,
        0,
    )
    assert (velocity["precision"], velocity["recall"]) == (1.0, 1.0)
    blocked = report["rules"]["blocked-card"]
    assert (blocked["hits"], blocked["declines"], blocked["precision"], blocked["recall"]) == (
        1,
        1,
        None,
        0.0,
    )


def test_the_command_prints_the_report(store: Store, database_url: str, tmp_path: Path) -> None:
    store.transact(_history)
    where = ["--data-dir", str(tmp_path / "data"), "--database-url", database_url]
    args = ["risk", "backtest", "--rules", "default", "--from", "2026-12-03", "--to", "2026-12-03"]
    result = CliRunner().invoke(app, [*args, "--json", *where])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["would_decline"] == 2
    text = CliRunner().invoke(app, [*args, *where])
    assert "8 transactions, 2 would be declined (200.00 CNY), 1 labelled fraud" in text.output
    bad = CliRunner().invoke(
        app, ["risk", "backtest", "--rules", "default", "--from", "2026-12-04", "--to", "2026-12-03", *where]
    )
    assert bad.exit_code == 2 and "--to is before --from" in bad.output
