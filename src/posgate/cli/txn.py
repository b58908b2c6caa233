"""`posgate txn list | show`: transactions as the host recorded them (masked PANs)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from posgate.cli.common import DatabaseUrl, DataDir, build_settings

txn_app = typer.Typer(help="Transactions as the host recorded them (masked PANs).", no_args_is_help=True)


@txn_app.command("list")
def txn_list(
    tid: Annotated[str | None, typer.Option("--tid")] = None,
    mid: Annotated[str | None, typer.Option("--mid")] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="approved, declined, reversed, voided …")
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="sale, void, refund, preauth …")] = None,
    date: Annotated[str | None, typer.Option("--date", help="business date YYYY-MM-DD")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List transactions, newest first."""
    import datetime as dt

    from rich.console import Console
    from rich.table import Table

    from posgate.bootstrap.store import open_store
    from posgate.money import yuan
    from posgate.store.txn_queries import LIST_COLUMNS, TxnFilter, list_transactions

    try:
        day = dt.date.fromisoformat(date) if date else None
    except ValueError:
        typer.echo(f"posgate txn list: --date must be YYYY-MM-DD, got {date!r}", err=True)
        raise typer.Exit(2) from None
    settings = build_settings(data_dir=data_dir, database_url=database_url)
    handle = open_store(settings, load_demo=False)
    where = TxnFilter(tid=tid, mid=mid, state=state, kind=kind, date=day, limit=limit)
    rows = handle.store.transact(lambda s: list_transactions(s, where))
    handle.store.close()
    table = Table(title=f"{len(rows)} transactions")
    for column in LIST_COLUMNS:
        table.add_column(column.replace("_fen", ""))
    for row in rows:
        table.add_row(
            *[yuan(v) if k == "amount_fen" else str(v if v is not None else "") for k, v in row.items()]
        )
    Console().print(table)


@txn_app.command("show")
def txn_show(
    rrn: Annotated[str, typer.Argument(help="the RRN (field 37) the host gave it")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """One transaction in full: fields, state, the step trace and the answer sent (JSON)."""
    from posgate.bootstrap.store import open_store
    from posgate.store.txn_queries import get_transaction

    settings = build_settings(data_dir=data_dir, database_url=database_url)
    handle = open_store(settings, load_demo=False)
    detail = handle.store.transact(lambda s: get_transaction(s, rrn))
    handle.store.close()
    if detail is None:
        typer.echo(f"posgate txn show: no transaction with RRN {rrn}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(detail, indent=2, default=str))
