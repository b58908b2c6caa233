"""Reports as rows (merchant statement, fee income, outstanding payables), and the command line as the lead
mounts it: clearing run, payouts, bank confirmation, D0, report (table and CSV), the issuer simulator's
clearing file, reconciliation of issuers and terminals, the clearing bench."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import typer
from typer.testing import CliRunner

from posgate.cli.settlement import (
    bench_clearing_command,
    clearing_app,
    issuer_file_command,
    reconcile_app,
    settlement_app,
)
from posgate.settlement.clearing import run_clearing
from posgate.settlement.payouts import build_t1_payouts, import_confirmation, simulate_bank
from posgate.settlement.rates import Rates
from posgate.settlement.reports import fee_income, merchant_statement, outstanding_payables
from posgate.store.db import make_engine, migrate
from posgate.store.runtime import Store
from posgate.tools.clearing_day_factory import (
    CREDIT_CARD,
    DEBIT_CARD,
    EXAMPLE_MID,
    EXAMPLE_MID_2,
    DayBuilder,
    provision_example,
)

TZ = "Asia/Shanghai"
D = dt.date(2026, 8, 3)


def at(day: dt.date, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm))


def _day(store: Store) -> dict[str, int]:
    b = DayBuilder(issuer_books=True)
    with b.writing(store):
        provision_example(b)
        sale = b.sale(at(D, 9), 100_000, EXAMPLE_MID, DEBIT_CARD)
        b.sale(at(D, 10), 2_000_000, EXAMPLE_MID, DEBIT_CARD)
        b.sale(at(D, 11), 50_000, EXAMPLE_MID, CREDIT_CARD)
        refund = b.refund(at(D, 12), sale, 10_000)
        b.sale(at(D, 13), 40_000, EXAMPLE_MID_2, DEBIT_CARD)
    return {"sale": sale, "refund": refund}


def test_the_reports_add_up(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=1, inline=True)
    try:
        ids = _day(store)
        run_clearing(store, D, Rates(), TZ, now=dt.datetime(2030, 1, 1))
        statement = store.transact(lambda s: merchant_statement(s, EXAMPLE_MID, D))
        t = statement.totals
        assert (t.sales_count, t.gross_sales_fen, t.refunds_count, t.refunds_fen) == (3, 2_150_000, 1, 10_000)
        assert t.mdr_fen == 500 + 2_000 + 300
        assert t.net_fen == statement.closing_balance_fen == 2_150_000 - 10_000 - 2_800
        assert statement.opening_balance_fen == 0 and statement.name == "Demo Supermarket"
        assert [(x.kind, x.amount_fen, x.net_fen) for x in statement.lines][::3] == [
            ("sale", 100_000, 99_500),
            ("refund", -10_000, -10_000),
        ]
        assert statement.lines[3].transaction_id == ids["refund"]

        run = build_t1_payouts(store, D, tmp_path)
        import_confirmation(store, simulate_bank(run.file, tmp_path / "ok.csv", rejected=run.created[1:]))
        after = store.transact(lambda s: merchant_statement(s, EXAMPLE_MID, D, with_lines=False))
        assert [(p.kind, p.status) for p in after.payouts] == [
            ("t1", "paid")
        ] and after.closing_balance_fen == 0

        income = store.transact(lambda s: fee_income(s, D))
        assert [r.mid for r in income.rows] == [EXAMPLE_MID, EXAMPLE_MID_2]
        assert income.total.mdr_fen == income.ledger_mdr_fen == 2_800 + 152
        assert income.total.interchange_fen == income.ledger_interchange_fen == 350 + 1_300 + 225 + 140
        assert income.total.network_fen == income.ledger_network_fen == 33 + 325 + 16 + 13
        assert (
            income.net_income_fen
            == income.total.mdr_fen - income.total.interchange_fen - income.total.network_fen
        )

        payables = store.transact(lambda s: outstanding_payables(s))
        assert [(p.mid, p.balance_fen, p.in_flight_fen, p.payable_fen) for p in payables] == [
            (EXAMPLE_MID_2, 40_000 - 152, 0, 40_000 - 152)  # its payout was rejected: owed again
        ]
    finally:
        store.close()


# ---- the command line, mounted as docs/settlement.md tells the lead


def _posgate() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(clearing_app, name="clearing")
    app.add_typer(settlement_app, name="settlement")
    app.add_typer(reconcile_app, name="reconcile")
    bench_app = typer.Typer()
    bench_app.command("clearing")(bench_clearing_command)
    app.add_typer(bench_app, name="bench")
    issuer_app = typer.Typer(invoke_without_command=True)

    @issuer_app.callback()
    def issuer(ctx: typer.Context) -> None:
        """Run the issuer simulator alone (here: a stand-in)."""

    issuer_app.command("clearing-file")(issuer_file_command)
    app.add_typer(issuer_app, name="issuer")
    return app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # no posgate.toml of the working copy
    monkeypatch.setenv("COLUMNS", "200")  # Rich tables at full width
    app = _posgate()
    runner = CliRunner()
    data = tmp_path / "data"

    def invoke(*args: str, code: int = 0, store: bool = True) -> str:
        result = runner.invoke(app, [*args, "--data-dir", str(data)] if store else list(args))
        assert result.exit_code == code, result.output
        return result.output

    return invoke, data


def test_the_commands_clear_pay_report_and_reconcile(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    invoke, data = cli
    assert "0 cleared" in invoke("clearing", "run", "--date", str(D))  # migrates an empty store
    engine = make_engine(f"sqlite:///{data / 'posgate.sqlite'}")
    store = Store(engine, threads=1, inline=True)
    _day(store)
    store.close()

    out = invoke("clearing", "run", "--date", str(D))
    assert "5 cleared, 0 adjusted" in out and "sales 21,900.00 refunds 100.00" in out
    assert "0 cleared" in invoke("clearing", "run", "--date", str(D))
    assert "closes at 23:00" in invoke("clearing", "run", "--date", "2999-01-01", code=2)

    out = invoke("settlement", "payouts", "--date", str(D))
    assert "2 payouts" in out
    payout_file = data / "payouts" / f"payouts-{D}.csv"
    confirmation = tmp_path / "confirmation.csv"
    invoke("settlement", "simulate-bank", str(payout_file), "--out", str(confirmation), store=False)
    assert "2 paid, 0 rejected" in invoke("settlement", "confirm", str(confirmation))
    assert "0 paid, 0 rejected, 2 already confirmed" in invoke("settlement", "confirm", str(confirmation))
    assert "not allowed D0" in invoke("settlement", "d0", "--mid", EXAMPLE_MID_2, "--amount", "100", code=2)
    # D0 outside its window (an hour about 12 hours from now, at any hour of the run): a clear refusal
    hour = (dt.datetime.now(ZoneInfo(TZ)).hour + 12) % 23
    closed = tmp_path / "d0-closed.toml"
    closed.write_text(f'[d0]\nwindow_start_local = "{hour:02d}:00"\nwindow_end_local = "{hour + 1:02d}:00"\n')
    refused = invoke(
        "settlement", "d0", "--mid", EXAMPLE_MID, "--amount", "100", "--rates", str(closed), code=2
    )
    assert f"D0 is open {hour:02d}:00-{hour + 1:02d}:00 {TZ}" in refused and "ask again" in refused
    assert "at most two decimals" in invoke(
        "settlement", "d0", "--mid", EXAMPLE_MID, "--amount", "1.001", code=2
    )

    table = invoke("settlement", "report", "--date", str(D))
    assert "Demo Supermarket" in table and "21,372.00" in table
    rows = list(csv.reader(io.StringIO(invoke("settlement", "report", "--date", str(D), "--format", "csv"))))
    statement = dict(zip(rows[0], rows[1], strict=True))
    assert (statement["mid"], statement["net_fen"], statement["payouts_fen"]) == (
        EXAMPLE_MID,
        "2137200",
        "2137200",
    )
    assert "fee_income" in {row[0] for row in rows}

    issuer_csv = tmp_path / "bank-d.csv"
    assert "Bank D clearing file" in invoke(
        "issuer", "clearing-file", "--date", str(D), "--bank", "Bank D", "--out", str(issuer_csv)
    )
    out = invoke("reconcile", "issuer", "--file", str(issuer_csv), "--date", str(D))
    assert "matched 4, missing_on_host 0, missing_on_issuer 0, amount_mismatch 0" in out
    assert "0 settled" in invoke("reconcile", "terminals", "--date", str(D))


def test_the_clearing_bench_runs_small(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _posgate(), ["bench", "clearing", "--transactions", "2000", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "clearing 2000 transactions:" in result.output and "0 new postings" in result.output
