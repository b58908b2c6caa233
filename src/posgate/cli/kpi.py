"""`posgate kpi [--from D --to D] [--json]`, `posgate kpi refresh` and `posgate seed history`: the KPI
numbers straight from the store (the same object as `GET /api/kpi/summary`), the rollup job, and the history
generator (docs/kpi.md). A thin Typer shell over `posgate.kpi`.

Exit codes: 0 done, 2 refused (the message says why).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, NoReturn
from zoneinfo import ZoneInfo

import typer

from posgate.config import Settings, load_settings
from posgate.errors import PosgateError

kpi_app = typer.Typer(help="KPIs: the numbers, the rollup job (docs/kpi.md).")
seed_app = typer.Typer(help="Generated test data (docs/kpi.md).", no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="data directory [POSGATE_DATA_DIR]")]
DatabaseUrl = Annotated[str | None, typer.Option("--database-url", help="[POSGATE_DATABASE_URL]")]
DateOption = Annotated[str | None, typer.Option(help="business day YYYY-MM-DD")]


def _fail(message: str) -> NoReturn:
    typer.echo(f"posgate: {message}", err=True)
    raise typer.Exit(2)


def _settings(data_dir: Path | None, database_url: str | None) -> Settings:
    given = {k: v for k, v in {"data_dir": data_dir, "database_url": database_url}.items() if v is not None}
    try:
        return load_settings(**given)
    except PosgateError as error:
        _fail(str(error))


def _day(text: str | None, option: str, default: dt.date) -> dt.date:
    if text is None:
        return default
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        _fail(f"{option}: not a date like 2026-11-26: {text!r}")


def _fen(value: int | None) -> str:
    return "-" if value is None else f"{value / 100:,.2f}"


@kpi_app.callback(invoke_without_command=True)
def kpi(
    ctx: typer.Context,
    date_from: Annotated[str | None, typer.Option("--from", help="first business day, YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="last business day, YYYY-MM-DD")] = None,
    mid: Annotated[str | None, typer.Option("--mid", help="one merchant")] = None,
    mcc: Annotated[str | None, typer.Option("--mcc", help="one merchant category code")] = None,
    issuer: Annotated[str | None, typer.Option("--issuer", help="one issuer (partner bank)")] = None,
    channel: Annotated[
        str | None, typer.Option("--channel", help="chip, contactless, magstripe, qr (wallets), …")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the JSON object of /api/kpi/summary")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """The headline KPIs of a period (default: the last 30 business days up to today)."""
    if ctx.invoked_subcommand is not None:
        return
    from posgate.bootstrap.store import open_store
    from posgate.kpi.queries import Filters, check_period, summary_fresh

    settings = _settings(data_dir, database_url)
    today = dt.datetime.now(ZoneInfo(settings.timezone)).date()
    end = _day(date_to, "--to", today)
    start = _day(date_from, "--from", end - dt.timedelta(days=29))
    try:
        check_period(start, end)
        handle = open_store(settings, load_demo=False)
        try:
            result = summary_fresh(handle.store, start, end, Filters(mid, mcc, issuer, channel))
        finally:
            handle.store.close()
    except PosgateError as error:
        _fail(str(error))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    rate = result["approval_rate"]
    active = result["active_terminals"]
    lines = [
        f"KPIs {result['from']} .. {result['to']}",
        f"  approved              {result['approved_count']:>14,}",
        f"  declined              {result['declined_count']:>14,}",
        f"  approval rate         {'-' if rate is None else f'{rate:.2%}':>14}",
        f"  purchase volume (CNY) {_fen(result['approved_amount_fen']):>14}",
        f"  average ticket (CNY)  {_fen(result['average_ticket_fen']):>14}",
        f"  active terminals      {'-' if active is None else active:>14}",
        "  by response code      "
        + " ".join(f"{c or '--'}:{n}" for c, n in result["by_response_code"].items()),
    ]
    typer.echo("\n".join(lines))


@kpi_app.command("refresh")
def kpi_refresh(
    full: Annotated[
        bool, typer.Option("--full", help="re-group every day, not only the changed ones")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the rollup job now (KPI reads run it themselves when it is over 30 s old)."""
    import time

    from posgate.bootstrap.store import open_store
    from posgate.kpi.rollup import refresh

    settings = _settings(data_dir, database_url)
    handle = open_store(settings, load_demo=False)
    try:
        began = time.perf_counter()
        result = handle.store.transact(lambda s: refresh(s, full=full))
        took = time.perf_counter() - began
    finally:
        handle.store.close()
    typer.echo(
        f"rollups rebuilt: {result.days} business day(s){' (full)' if result.full else ''} in {took:.2f} s"
    )


@seed_app.command("history")
def seed_history_command(
    days: Annotated[int, typer.Option("--days", min=1, max=3660, help="business days of history")] = 90,
    transactions: Annotated[
        int, typer.Option("--transactions", min=1, max=100_000_000, help="how many transactions")
    ] = 100_000,
    seed: Annotated[int, typer.Option("--seed", help="random seed (the same seed, the same history)")] = 13,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Fill the store with a realistic past: merchants, terminals, cards and transactions up to yesterday
    (test data: refused in production)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from posgate.bootstrap.store import open_store
    from posgate.kpi.history import seed_history

    settings = _settings(data_dir, database_url)
    if settings.env == "production":
        _fail("seed history makes test data and is refused when POSGATE_ENV=production")
    handle = open_store(settings, load_demo=True)
    columns = (TextColumn("transactions"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task("seed", total=transactions)
            result = seed_history(
                handle.store,
                handle.vault,
                days=days,
                transactions=transactions,
                env=settings.env,
                timezone=settings.timezone,
                seed=seed,
                progress=lambda n: bar.advance(task, n),
            )
    except PosgateError as error:
        _fail(str(error))
    finally:
        handle.store.close()
    rate = result.transactions / result.seconds_insert if result.seconds_insert else 0
    typer.echo(
        f"seeded {result.transactions:,} transactions over {days} days, {result.merchants:,} merchants, "
        f"{result.terminals:,} terminals in {result.seconds_insert:.1f} s ({rate:,.0f}/s); "
        f"rollups rebuilt in {result.seconds_rollup:.1f} s"
    )


def bench_kpi_command(
    days: Annotated[
        int, typer.Option("--days", min=1, max=3660, help="the period: the last N business days")
    ] = 30,
    repeat: Annotated[int, typer.Option("--repeat", min=1, max=1000, help="calls of each page")] = 20,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Latency of each KPI page of numbers (summary, series, breakdowns, terminals) over the store as it
    is, rollups fresh: p50 and p95 of `--repeat` calls, plus one incremental rollup run."""
    import statistics
    import time

    from posgate.bootstrap.store import open_store
    from posgate.kpi import queries
    from posgate.kpi.queries import Filters
    from posgate.kpi.rollup import refresh
    from posgate.store.models import Transaction

    settings = _settings(data_dir, database_url)
    handle = open_store(settings, load_demo=False)
    store = handle.store
    try:
        from sqlalchemy import func, select

        rows = store.transact(lambda s: s.scalar(select(func.count(Transaction.id))))
        last = store.transact(lambda s: s.scalar(select(func.max(Transaction.business_date))))
        if last is None:
            _fail("the store has no transactions: run `posgate seed history` first")
        began = time.perf_counter()
        store.transact(lambda s: refresh(s))
        refresh_ms = (time.perf_counter() - began) * 1000
        start = last - dt.timedelta(days=days - 1)
        pages = {
            "summary": lambda s: queries.summary(s, start, last, Filters()),
            "series": lambda s: queries.series(s, start, last, Filters(), "day"),
            "breakdowns": lambda s: queries.breakdowns(s, start, last, Filters()),
            "terminals": lambda s: queries.terminals(s, start, last, Filters()),
            "summary, one issuer": lambda s: queries.summary(s, start, last, Filters(issuer=_some_issuer(s))),
        }
        typer.echo(
            f"{store.dialect}: {rows:,} transactions, period {start} .. {last}; "
            f"incremental rollup run {refresh_ms:.0f} ms"
        )
        for name, page in pages.items():
            times = []
            for _ in range(repeat):
                began = time.perf_counter()
                store.transact(page)
                times.append((time.perf_counter() - began) * 1000)
            p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
            typer.echo(f"  {name:<20} p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms")
    finally:
        store.close()


def _some_issuer(session) -> str | None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from posgate.store.models_kpi import KpiDaily

    return session.scalar(select(KpiDaily.issuer_name).where(KpiDaily.issuer_name != "").limit(1))
