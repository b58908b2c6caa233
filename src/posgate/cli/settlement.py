"""`posgate clearing …`, `posgate settlement …`, `posgate reconcile …`, `posgate issuer clearing-file` and
`posgate bench clearing`: thin Typer shells over `posgate.settlement` (and the issuer simulator's clearing
file), straight against the store (`bootstrap.store.open_store`). `cli.root` mounts them.

Money on the command line is CNY with up to two decimals (`--amount 500.00`), fen everywhere else.
Exit codes: 0 done (reconciliation: also when it found differences — it prints them), 2 refused or bad
usage (the message says why).
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from posgate.cli.common import build_settings
from posgate.config import Settings
from posgate.errors import PosgateError
from posgate.money import yuan
from posgate.settlement.rates import Rates, load_rates
from posgate.store.runtime import Store

T = TypeVar("T")

clearing_app = typer.Typer(
    help="Clearing: the day's transactions, fees and ledger postings.", no_args_is_help=True
)
settlement_app = typer.Typer(
    help="Merchant settlement: payouts (T+1, D0), bank confirmations, reports.", no_args_is_help=True
)
reconcile_app = typer.Typer(help="Reconciliation with issuers and terminals.", no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="data directory [POSGATE_DATA_DIR]")]
DatabaseUrl = Annotated[str | None, typer.Option("--database-url", help="[POSGATE_DATABASE_URL]")]
RatesFile = Annotated[
    Path | None,
    typer.Option(
        "--rates", help="rates document on top of the packaged one [<data_dir>/settlement-rates.toml]"
    ),
]
DateOption = Annotated[str, typer.Option("--date", help="clearing date YYYY-MM-DD")]


def _fail(message: str) -> NoReturn:
    typer.echo(f"posgate: {message}", err=True)
    raise typer.Exit(2)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        _fail(f"--date must be YYYY-MM-DD, got {text!r}")


def _settings(data_dir: Path | None, database_url: str | None) -> Settings:
    return build_settings(data_dir=data_dir, database_url=database_url)


@contextmanager
def _opened(
    data_dir: Path | None, database_url: str | None, rates_file: Path | None
) -> Iterator[tuple[Settings, Store, Rates]]:
    from posgate.bootstrap.store import open_store

    settings = _settings(data_dir, database_url)
    try:
        rates = load_rates(rates_file, settings.data_dir)
        handle = open_store(settings, load_demo=False)
    except PosgateError as exc:
        _fail(str(exc))
    try:
        yield settings, handle.store, rates
    finally:
        handle.store.close()


def _run(work: Callable[[], T]) -> T:
    try:
        return work()
    except PosgateError as exc:
        _fail(str(exc))


# ------------------------------------------------------------------------------------------------ clearing


@clearing_app.command("run")
def clearing_run(
    date: DateOption,
    allow_open_day: Annotated[
        bool, typer.Option("--allow-open-day", help="clear a date whose cut-off has not passed yet")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    rates_file: RatesFile = None,
) -> None:
    """Clear a date: every approved sale, completion and refund of its window once, fees, ledger postings.
    Re-running the same date adds nothing."""
    from posgate.risk.disposal import held_merchants, hold_view
    from posgate.settlement.clearing import run_clearing

    day = _date(date)
    with _opened(data_dir, database_url, rates_file) as (settings, store, rates):
        result = _run(
            lambda: run_clearing(store, day, rates, settings.timezone, allow_open_day=allow_open_day)
        )
        held = store.transact(lambda s: [hold_view(h) for h in held_merchants(s).values()])
    typer.echo(
        f"clearing {day}: run {result.run_id}, {result.cleared} cleared, {result.adjusted} adjusted, "
        f"{result.postings} postings; sales {yuan(result.sales_fen)} refunds {yuan(result.refunds_fen)} "
        f"adjusted {yuan(result.adjusted_fen)} MDR {yuan(result.mdr_fen)} interchange "
        f"{yuan(result.interchange_fen)} network {yuan(result.network_fen)} CNY; {result.seconds:.1f} s"
    )
    if result.wallet_count:
        typer.echo(
            f"  of which {result.wallet_count} wallet payments and refunds; wallet providers' fee "
            f"{yuan(result.provider_fee_fen)} CNY"
        )
    if result.pending:
        typer.echo(
            f"  {result.pending} transactions were still pending: re-run the date once they are answered"
        )
    for hold in held:
        typer.echo(
            f"  {hold['mid']}: settlement held by risk since {hold['created_at'][:16]} (hold {hold['id']}, "
            f"{hold['reason']}): cleared, no payout until released"
        )


# --------------------------------------------------------------------------------------------- settlement


@settlement_app.command("payouts")
def settlement_payouts(
    date: DateOption, data_dir: DataDir = None, database_url: DatabaseUrl = None, rates_file: RatesFile = None
) -> None:
    """Build the T+1 payouts of a cleared date and write their bank file."""
    from posgate.settlement.payouts import build_t1_payouts

    day = _date(date)
    with _opened(data_dir, database_url, rates_file) as (settings, store, rates):
        run = _run(lambda: build_t1_payouts(store, day, settings.data_dir, rates.currency))
    if run.file is None:
        typer.echo(f"payouts {day}: nothing new to pay")
    else:
        typer.echo(f"payouts {day}: {len(run.created)} payouts, {yuan(run.total_fen)} CNY -> {run.file}")
    for mid, balance in sorted(run.carried.items()):
        typer.echo(f"  {mid}: {yuan(balance)} CNY carried forward")
    for mid, (kept, hold_id) in sorted(run.withheld.items()):
        typer.echo(f"  {mid}: {yuan(kept)} CNY withheld, settlement held by risk (hold {hold_id})")
    if run.withheld_file is not None:
        typer.echo(f"  withheld -> {run.withheld_file}")


@settlement_app.command("confirm")
def settlement_confirm(
    file: Annotated[Path, typer.Argument(help="the bank's confirmation CSV (payout_id,status,amount_fen)")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Import a bank confirmation file: paid payouts are posted to the ledger, rejected ones go back to the
    merchant's payable."""
    from posgate.settlement.payouts import import_confirmation

    with _opened(data_dir, database_url, None) as (_, store, _rates):
        result = _run(lambda: import_confirmation(store, file))
    typer.echo(
        f"{file.name}: {len(result.paid)} paid, {len(result.rejected)} rejected, "
        f"{len(result.already)} already confirmed, {len(result.conflicts)} conflicts"
    )
    for conflict in result.conflicts:
        typer.echo(f"  conflict: {conflict}")


@settlement_app.command("d0")
def settlement_d0(
    mid: Annotated[str, typer.Option("--mid", help="merchant id")],
    amount: Annotated[str, typer.Option("--amount", help="CNY, e.g. 500.00")],
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="makes a retried request idempotent")
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    rates_file: RatesFile = None,
) -> None:
    """Instruct a same-day (D0) payout from today's credit-card volume."""
    from posgate.settlement.payouts import parse_cny, request_d0

    amount_fen = _run(lambda: parse_cny(amount))
    with _opened(data_dir, database_url, rates_file) as (settings, store, rates):
        payout = _run(
            lambda: request_d0(
                store, mid, amount_fen, rates, settings.timezone, settings.data_dir, request_id=request_id
            )
        )
    typer.echo(
        f"D0 payout {payout.payout_id} for {mid}: {yuan(payout.amount_fen)} CNY, surcharge "
        f"{yuan(payout.surcharge_fen)}, transfer {yuan(payout.net_fen)} CNY -> {payout.file}"
    )


@settlement_app.command("simulate-bank")
def settlement_simulate_bank(
    file: Annotated[Path, typer.Argument(help="a payout instruction file")],
    out: Annotated[
        Path | None, typer.Option("--out", help="confirmation file [FILE with -confirmation]")
    ] = None,
    reject: Annotated[list[int] | None, typer.Option("--reject", help="payout id to reject (repeat)")] = None,
) -> None:
    """The bank's side (tests, demos): answer an instruction file, every payout paid unless rejected."""
    from posgate.settlement.payouts import simulate_bank

    target = out or file.with_name(file.stem + "-confirmation.csv")
    _run(lambda: simulate_bank(file, target, set(reject or ())))
    typer.echo(str(target))


@settlement_app.command("report")
def settlement_report(
    date: DateOption,
    mid: Annotated[str | None, typer.Option("--mid", help="one merchant's statement")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table | csv")] = "table",
    lines: Annotated[bool, typer.Option("--lines", help="list each cleared transaction")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Merchant statements, fee income and outstanding payables of a clearing date."""
    from posgate.settlement import reports

    if output_format not in ("table", "csv"):
        _fail(f"--format must be table or csv, got {output_format!r}")
    day = _date(date)
    with _opened(data_dir, database_url, None) as (_, store, _rates):

        def gather(session: Any) -> tuple[list[reports.MerchantStatement], reports.FeeIncome, list[Any]]:
            mids = [mid] if mid else sorted(reports.day_totals(session, day))
            statements = [reports.merchant_statement(session, m, day, with_lines=lines) for m in mids]
            return statements, reports.fee_income(session, day), reports.outstanding_payables(session)

        statements, income, payables = _run(lambda: store.transact(gather))
    if output_format == "csv":
        _report_csv(statements, income, payables, lines)
    else:
        _report_tables(day, statements, income, payables, lines)


_STATEMENT_COLUMNS = (
    "mid",
    "name",
    "date",
    "sales",
    "gross_sales_fen",
    "refunds",
    "refunds_fen",
    "adjusted_fen",
    "mdr_fen",
    "net_fen",
    "payouts_fen",
    "opening_balance_fen",
    "closing_balance_fen",
    "held_by_risk",
)


def _statement_row(s: Any) -> list[Any]:
    t = s.totals
    return [
        s.mid,
        s.name,
        s.clearing_date,
        t.sales_count,
        t.gross_sales_fen,
        t.refunds_count,
        t.refunds_fen,
        t.adjusted_fen,
        t.mdr_fen,
        t.net_fen,
        sum(p.amount_fen for p in s.payouts),
        s.opening_balance_fen,
        s.closing_balance_fen,
        f"hold {s.hold_id}" if s.hold_id is not None else "",
    ]


def _report_csv(statements: list[Any], income: Any, payables: list[Any], lines: bool) -> None:
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["section", *_STATEMENT_COLUMNS])
    for s in statements:
        out.writerow(["statement", *_statement_row(s)])
    if lines:
        out.writerow(
            [
                "section",
                "mid",
                "transaction_id",
                "created_at_utc",
                "tid",
                "kind",
                "rrn",
                "card",
                "card_kind",
                "amount_fen",
                "mdr_fen",
                "net_fen",
                "provider",
                "order_id",
            ]
        )
        for s in statements:
            for x in s.lines:
                out.writerow(
                    [
                        "line",
                        s.mid,
                        x.transaction_id,
                        x.created_at,
                        x.tid,
                        x.kind,
                        x.rrn,
                        x.pan_masked,
                        x.card_kind,
                        x.amount_fen,
                        x.mdr_fen,
                        x.net_fen,
                        x.provider or "",
                        x.order_id or "",
                    ]
                )
    out.writerow(
        [
            "section",
            "mid",
            "name",
            "transactions",
            "volume_fen",
            "mdr_fen",
            "interchange_fen",
            "network_fen",
            "network_issuer_fen",
            "net_income_fen",
            "provider_fee_fen",
        ]
    )
    for r in [*income.rows, income.total]:
        out.writerow(
            [
                "fee_income",
                r.mid,
                r.name,
                r.transactions,
                r.volume_fen,
                r.mdr_fen,
                r.interchange_fen,
                r.network_fen,
                r.network_issuer_fen,
                r.net_income_fen,
                r.provider_fee_fen,
            ]
        )
    out.writerow(["fee_income", "D0_SURCHARGE", "", "", "", "", "", "", "", income.d0_surcharge_fen])
    out.writerow(
        [
            "section",
            "mid",
            "name",
            "balance_fen",
            "in_flight_fen",
            "payable_fen",
            "last_payout",
            "withheld_fen",
        ]
    )
    for p in payables:
        out.writerow(
            [
                "payable",
                p.mid,
                p.name,
                p.balance_fen,
                p.in_flight_fen,
                p.payable_fen,
                p.last_payout or "",
                p.withheld_fen,
            ]
        )


def _report_tables(
    day: dt.date, statements: list[Any], income: Any, payables: list[Any], lines: bool
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"merchant statements — clearing date {day} (CNY)")
    for column in (
        "MID",
        "name",
        "sales",
        "gross",
        "refunds",
        "adjusted",
        "MDR",
        "net",
        "payouts",
        "closing",
        "risk",
    ):
        table.add_column(column, justify="right" if column not in ("MID", "name") else "left")
    for s in statements:
        t = s.totals
        table.add_row(
            s.mid,
            s.name,
            str(t.sales_count),
            yuan(t.gross_sales_fen),
            yuan(t.refunds_fen),
            yuan(t.adjusted_fen),
            yuan(t.mdr_fen),
            yuan(t.net_fen),
            yuan(sum(p.amount_fen for p in s.payouts)),
            yuan(s.closing_balance_fen),
            f"HELD (hold {s.hold_id})" if s.hold_id is not None else "",
        )
    console.print(table)
    if lines:
        for s in statements:
            detail = Table(title=f"{s.mid} {s.name} — cleared transactions {day}")
            for column in ("time (UTC)", "TID", "kind", "RRN", "card", "amount", "MDR", "net"):
                detail.add_column(column)
            for x in s.lines:
                detail.add_row(
                    f"{x.created_at:%H:%M:%S}",
                    x.tid,
                    x.kind,
                    x.rrn or x.order_id or "",
                    x.pan_masked or x.provider or "",
                    yuan(x.amount_fen),
                    yuan(x.mdr_fen),
                    yuan(x.net_fen),
                )
            console.print(detail)
    fees = Table(title=f"fee income — {day} (CNY)")
    for column in ("MID", "volume", "MDR", "interchange", "network", "wallet fee", "net income"):
        fees.add_column(column, justify="left" if column == "MID" else "right")
    for r in [*income.rows, income.total]:
        fees.add_row(
            r.mid,
            yuan(r.volume_fen),
            yuan(r.mdr_fen),
            yuan(r.interchange_fen),
            yuan(r.network_fen),
            yuan(r.provider_fee_fen),
            yuan(r.net_income_fen),
        )
    fees.add_row("D0 surcharge", "", "", "", "", "", yuan(income.d0_surcharge_fen))
    console.print(fees)
    owed = Table(title="outstanding payables (CNY)")
    for column in ("MID", "name", "balance", "in flight", "payable", "last payout", "withheld"):
        owed.add_column(column)
    for p in payables:
        owed.add_row(
            p.mid,
            p.name,
            yuan(p.balance_fen),
            yuan(p.in_flight_fen),
            yuan(p.payable_fen),
            str(p.last_payout or "—"),
            f"{yuan(p.withheld_fen)} (hold {p.hold_id})" if p.hold_id is not None else "",
        )
    console.print(owed)


# ------------------------------------------------------------------------------------------- reconciliation


@reconcile_app.command("issuer")
def reconcile_issuer(
    file: Annotated[Path, typer.Option("--file", help="the issuer's clearing file")],
    date: DateOption,
    bank: Annotated[str | None, typer.Option("--bank", help="issuer name [the file's]")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    rates_file: RatesFile = None,
) -> None:
    """Match an issuer clearing file against the host's records (RRN, then STAN + amount); store and print
    the report. Exit status 0 whatever it finds."""
    from posgate.settlement.reconcile import (
        AMOUNT_MISMATCH,
        MISSING_ON_HOST,
        MISSING_ON_ISSUER,
        reconcile_issuer_file,
    )

    day = _date(date)
    with _opened(data_dir, database_url, rates_file) as (settings, store, rates):
        result = _run(
            lambda: reconcile_issuer_file(
                store, file, day, settings.timezone, rates.clearing.cut_off_local, bank=bank
            )
        )
    typer.echo(
        f"reconciliation {result.report_id} {result.bank} {day}: matched {result.matched}, "
        f"missing_on_host {result.count(MISSING_ON_HOST)}, "
        f"missing_on_issuer {result.count(MISSING_ON_ISSUER)}, "
        f"amount_mismatch {result.count(AMOUNT_MISMATCH)}"
    )
    for d in result.differences:
        typer.echo(
            f"  {d.status}: RRN {d.rrn or '-'} STAN {d.stan or '-'} issuer {d.issuer_amount_fen} "
            f"host {d.host_amount_fen} ({d.detail})"
        )
    for note in result.notes:
        typer.echo(f"  note: {note}")


@reconcile_app.command("wallets")
def reconcile_wallets(
    date: Annotated[
        str | None,
        typer.Option("--date", help="the providers' bill date, YYYY-MM-DD, Beijing time [yesterday]"),
    ] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="wechat, alipay or unionpay [each with an account]")
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    rates_file: RatesFile = None,
) -> None:
    """Fetch each wallet provider's bill of a day and match it with the wallet orders and refunds: store
    and print the report (matched, amount and fee mismatches, missing on either side). Exit status 0
    whatever it finds; 2 when a bill cannot be had."""
    import asyncio

    from posgate.bootstrap.store import open_store
    from posgate.settlement.wallet_reconcile import BEIJING, STATUSES, reconcile_wallet_bill
    from posgate.wallets.errors import WalletError
    from posgate.wallets.runtime import provider_urls, stored_adapters

    settings = _settings(data_dir, database_url)
    day = dt.datetime.now(BEIJING).date() - dt.timedelta(days=1) if date is None else _date(date)
    try:
        rates = load_rates(rates_file, settings.data_dir)
        handle = open_store(settings, load_demo=False)
    except PosgateError as exc:
        _fail(str(exc))

    async def work() -> list[Any]:
        adapters = stored_adapters(handle, provider_urls(settings), settings.wallet_timeout_s)
        try:
            if provider is not None and provider not in adapters:
                raise WalletError(f"no {provider[:10]!r} account is stored (accounts: {', '.join(adapters)})")
            chosen = [adapters[provider]] if provider else [adapters[p] for p in sorted(adapters)]
            return [await reconcile_wallet_bill(handle.store, a, day, rates) for a in chosen]
        finally:
            for adapter in adapters.values():
                await adapter.aclose()

    try:
        results = asyncio.run(work())
    except (PosgateError, WalletError) as exc:
        _fail(str(exc))
    finally:
        handle.store.close()
    if not results:
        _fail("no wallet provider account is stored")
    for r in results:
        counts = ", ".join(f"{status} {r.count(status)}" for status in STATUSES)
        typer.echo(
            f"reconciliation {r.report_id} {r.provider} bill {day}: {r.bill_lines} lines, "
            f"matched {r.matched}, {counts}"
        )
        for d in r.differences:
            refund = f" refund {d.refund_no}" if d.refund_no else ""
            typer.echo(
                f"  {d.status}: {d.kind} order {d.order_id or '-'}{refund} bill {d.bill_amount_fen} "
                f"posgate {d.our_amount_fen}" + (f" ({d.detail})" if d.detail else "")
            )
        for note in r.notes:
            typer.echo(f"  note: {note}")


@reconcile_app.command("terminals")
def reconcile_terminals(date: DateOption, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """The terminals' batch settlements (0500) of a business date: totals, outcome and every difference."""
    from posgate.settlement.reconcile import terminal_batches

    day = _date(date)
    with _opened(data_dir, database_url, None) as (_, store, _rates):
        batches = _run(lambda: store.transact(lambda s: terminal_batches(s, day)))
    unbalanced = sum(1 for b in batches if b.result != "balanced")
    typer.echo(f"terminal batches {day}: {len(batches)} settled, {unbalanced} not balanced at first")
    for b in batches:
        terminal = f"{yuan(b.terminal.debit_fen)}/{b.terminal.debit_count}" if b.terminal else "?"
        host = f"{yuan(b.host.debit_fen)}/{b.host.debit_count}" if b.host else "?"
        typer.echo(f"  {b.tid} batch {b.batch_no}: {b.result}; debit terminal {terminal} host {host}")
        for d in b.differences:
            typer.echo(
                f"    {d.kind}: STAN {d.stan} RRN {d.rrn or '-'} host {d.host_amount_fen} "
                f"terminal {d.terminal_amount_fen}"
            )


# ----------------------------------------------------------------------------------- issuer simulator file


def issuer_file_command(
    date: DateOption,
    bank: Annotated[str, typer.Option("--bank", help="the simulated issuing bank")],
    out: Annotated[Path, typer.Option("--out", help="the CSV to write")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    rates_file: RatesFile = None,
) -> None:
    """Write a simulated issuer's clearing file of a date (its approved, non-reversed authorizations)."""
    from zoneinfo import ZoneInfo

    from posgate.issuer.clearing_file import write_clearing_file
    from posgate.settlement.clearing_day import clearing_window

    day = _date(date)
    with _opened(data_dir, database_url, rates_file) as (settings, store, rates):
        start, end = clearing_window(day, ZoneInfo(settings.timezone), rates.clearing.cut_off_local)
        count, total = _run(lambda: store.transact(lambda s: write_clearing_file(s, bank, start, end, out)))
    typer.echo(f"{bank} clearing file {day}: {count} lines, {yuan(total)} CNY -> {out}")


# ---------------------------------------------------------------------------------------------------- bench


def bench_clearing_command(
    transactions: Annotated[
        int, typer.Option("--transactions", min=1, help="transactions to generate for the day")
    ] = 1_000_000,
    database_url: DatabaseUrl = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="keep the scratch SQLite store here [a temporary folder]"),
    ] = None,
) -> None:
    """Generate a day of N transactions in bulk, clear it (seconds, transactions/s, peak memory), clear it
    again (0 new postings). SQLite in a scratch folder, or a scratch database on the PostgreSQL server
    `--database-url` names (never an existing store)."""
    from rich.console import Console
    from rich.table import Table

    from posgate.tools.bench_auth import scratch_database
    from posgate.tools.bench_clearing import run_clearing_bench

    with scratch_database(database_url) as url:  # PostgreSQL: a fresh database, dropped afterwards
        report = _run(lambda: run_clearing_bench(transactions, database_url=url, data_dir=data_dir))
    table = Table(title=f"posgate bench clearing — {transactions:,} transactions, {report.database}")
    for column in (
        "generated s",
        "cleared",
        "postings",
        "clearing s",
        "txn/s",
        "RSS MB start → peak",
        "re-run s",
        "re-run postings",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        f"{report.generate_s:.1f}",
        f"{report.first.cleared:,}",
        f"{report.first.postings:,}",
        f"{report.first.seconds:.1f}",
        f"{report.tps:,.0f}",
        f"{report.rss_before_mb:.0f} → {report.rss_after_mb:.0f}",
        f"{report.second.seconds:.1f}",
        f"{report.second.postings}",
    )
    Console().print(table)
    typer.echo(
        f"clearing {transactions} transactions: {report.first.seconds:.1f} s, {report.tps:,.0f} txn/s, "
        f"peak RSS {report.rss_after_mb:.0f} MB; re-run {report.second.seconds:.1f} s, "
        f"{report.second.postings} new postings"
    )
