"""`posgate` command line (Typer): up, host, issuer, console, decode, terminal, merchant, txn, clearing,
settlement, reconcile, demo, bench, keys, wallet, kpi, seed."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from posgate.cli_bench import bench_auth_command, bench_compare_command
from posgate.cli_kpi import bench_kpi_command, kpi_app, seed_app
from posgate.cli_merchants import merchant_app, provision_terminal_command
from posgate.cli_risk import risk_app
from posgate.cli_settlement import (
    bench_clearing_command,
    clearing_app,
    issuer_file_command,
    reconcile_app,
    settlement_app,
)
from posgate.cli_wallet import wallet_app
from posgate.config import Settings, load_settings
from posgate.errors import ConfigError, PosgateError
from posgate.files import restrict_umask
from posgate.terminal.cli import app as terminal_app
from posgate.terminal.wallet_cli import register as register_wallet_terminal

app = typer.Typer(
    help="posgate — bank-card acquiring host, issuer and terminal simulators.", no_args_is_help=True
)
app.add_typer(terminal_app, name="terminal", help="POS terminal simulator.")
register_wallet_terminal(terminal_app)  # posgate terminal qr | scan | qr-refund
terminal_app.command("provision", help="Provision terminal(s) for a merchant (acquirer side).")(
    provision_terminal_command
)
app.add_typer(merchant_app, name="merchant", help="Merchant onboarding: apply, review, approve, list.")
keys_app = typer.Typer(help="Key management.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="data directory [POSGATE_DATA_DIR]")]
PosPort = Annotated[int | None, typer.Option("--pos-port", help="POS port [POSGATE_POS_PORT]")]
ConsolePort = Annotated[
    int | None, typer.Option("--console-port", help="console port [POSGATE_CONSOLE_PORT]")
]
IssuerPorts = Annotated[
    str | None, typer.Option("--issuer-ports", help="issuer simulator ports, e.g. 6001,6002")
]
DatabaseUrl = Annotated[str | None, typer.Option("--database-url", help="[POSGATE_DATABASE_URL]")]


def build_settings(**overrides: Any) -> Settings:
    """Settings from the environment / posgate.toml, with the command line's options on top."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:  # load_settings names the setting, never echoes its value (it may be a key)
        return load_settings(**given)
    except ConfigError as exc:
        typer.echo(f"posgate: {exc}", err=True)
        raise typer.Exit(2) from None


def _run(coro: Any) -> None:
    try:
        asyncio.run(coro)
    except KeyboardInterrupt:
        pass
    except (ConfigError, PosgateError) as exc:
        typer.echo(f"posgate: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def up(
    data_dir: DataDir = None,
    pos_port: PosPort = None,
    console_port: ConsolePort = None,
    issuer_ports: IssuerPorts = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the host, the issuer simulators and the console in one process (demo fixture loaded into an
    empty store)."""
    settings = build_settings(
        data_dir=data_dir,
        pos_port=pos_port,
        console_port=console_port,
        issuer_ports=issuer_ports,
        database_url=database_url,
    )
    _run(_serve(settings, host=True, issuers=True, console=True, wallet_sims=True))


@app.command()
def console(
    data_dir: DataDir = None, console_port: ConsolePort = None, database_url: DatabaseUrl = None
) -> None:
    """Run the REST API (OpenAPI at /docs) and the web console alone."""
    settings = build_settings(data_dir=data_dir, console_port=console_port, database_url=database_url)
    _run(_serve(settings, host=False, issuers=False, console=True))


@app.command()
def host(
    data_dir: DataDir = None,
    pos_port: PosPort = None,
    issuer_ports: IssuerPorts = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the acquirer host alone (issuers reached as configured; --issuer-ports points the simulator's
    banks' routes at other ports)."""
    settings = build_settings(
        data_dir=data_dir, pos_port=pos_port, issuer_ports=issuer_ports, database_url=database_url
    )
    _run(_serve(settings, host=True, issuers=False))


issuer_app = typer.Typer(
    invoke_without_command=True, help="Run the issuer simulator alone (one port per bank), or its tools."
)
app.add_typer(issuer_app, name="issuer")


@issuer_app.callback()
def issuer(
    ctx: typer.Context,
    data_dir: DataDir = None,
    issuer_ports: IssuerPorts = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the issuer simulator alone (one port per bank)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = build_settings(data_dir=data_dir, issuer_ports=issuer_ports, database_url=database_url)
    _run(_serve(settings, host=False, issuers=True))


issuer_app.command("clearing-file")(issuer_file_command)
app.add_typer(clearing_app, name="clearing")
app.add_typer(settlement_app, name="settlement")
app.add_typer(risk_app, name="risk")
app.add_typer(reconcile_app, name="reconcile")
app.add_typer(wallet_app, name="wallet")
app.add_typer(kpi_app, name="kpi")
app.add_typer(seed_app, name="seed")


async def _serve(
    settings: Settings, host: bool, issuers: bool, console: bool = False, wallet_sims: bool = False
) -> None:
    from posgate.logs import configure_logging
    from posgate.services import serve_forever, start_all

    configure_logging(settings.data_dir, settings.log_level, fmt=settings.log_format)
    running = await start_all(
        settings,
        host=host,
        issuers=issuers,
        console=console,
        wallet_sims=wallet_sims,
        ops=host and settings.ops_enabled,
    )
    if running.console_url is not None:
        print(f"posgate console {running.console_url}", flush=True)
    if running.wallet_sims is not None:
        for name, url in running.wallet_sims.urls().items():
            print(f"posgate wallet {name} {url}", flush=True)
    if running.wallets is not None:
        from posgate.wallets.runtime import CASHIER_KEY_FILE, cashier_api_key

        await asyncio.to_thread(cashier_api_key, running.handle, settings.data_dir)
        print(
            f"posgate wallets {','.join(running.wallets.providers)} (cashier API key in "
            f"{settings.data_dir / CASHIER_KEY_FILE})",
            flush=True,
        )
    if running.issuers is not None:
        ports = ",".join(f"{name}={port}" for name, port in sorted(running.issuers.ports.items()))
        print(f"posgate issuers {ports}", flush=True)
    if running.ops_address is not None:
        print(f"posgate ops http://{running.ops_address[0]}:{running.ops_address[1]}/", flush=True)
    if running.host is not None:
        address = running.pos_address
        print(f"posgate ready pos={address[0]}:{address[1]}", flush=True)
    await serve_forever(running)


@app.command()
def decode(
    hex_text: Annotated[str, typer.Argument(metavar="HEX", help="the message (or frame) as hex")],
    dialect: Annotated[str, typer.Option("--dialect", help="pos or network")] = "pos",
    frame: Annotated[
        bool, typer.Option("--frame", help="HEX starts with length (+ TPDU and header)")
    ] = False,
    reveal: Annotated[bool, typer.Option("--reveal", help="show PAN and track data in clear")] = False,
) -> None:
    """Decode a POS or network ISO 8583 message and print its fields as JSON."""
    from posgate.iso8583.inspect import describe

    if dialect not in ("pos", "network"):
        typer.echo(f"posgate decode: --dialect must be pos or network, got {dialect!r}", err=True)
        raise typer.Exit(2)
    try:
        result = describe(hex_text, dialect, framed=frame, reveal=reveal)
    except PosgateError as exc:
        typer.echo(f"posgate decode: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(result, indent=2))


@app.command()
def demo(
    data_dir: DataDir = None,
    pos_port: PosPort = None,
    issuer_ports: IssuerPorts = None,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="leave everything up afterwards")
    ] = False,
) -> None:
    """The guided end-to-end demo on a fresh SQLite store (what `make demo` runs)."""
    from rich.console import Console

    from posgate.demo import fresh_demo_dir, run_demo
    from posgate.logs import configure_logging

    base = build_settings(data_dir=data_dir, pos_port=pos_port, issuer_ports=issuer_ports)
    demo_dir = fresh_demo_dir(base.data_dir / "demo")
    settings = base.model_copy(update={"data_dir": demo_dir, "database_url": None})
    configure_logging(demo_dir, "WARNING", console=False)
    console = Console()
    passed = False

    async def main() -> None:
        nonlocal passed
        passed = await run_demo(settings, keep_running, console)

    _run(main())
    console.print(f"logs: {demo_dir / 'posgate.log'}")
    raise typer.Exit(0 if passed else 1)


bench_app = typer.Typer(
    help="Benchmarks (the figures quoted in the docs come from these).", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")
bench_app.command("clearing")(bench_clearing_command)
bench_app.command("kpi")(bench_kpi_command)
bench_app.command("auth")(bench_auth_command)
bench_app.command("compare")(bench_compare_command)


txn_app = typer.Typer(help="Transactions as the host recorded them (masked PANs).", no_args_is_help=True)
app.add_typer(txn_app, name="txn")


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

    from posgate.bootstrap import open_store
    from posgate.demo import yuan
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
    from posgate.bootstrap import open_store
    from posgate.store.txn_queries import get_transaction

    settings = build_settings(data_dir=data_dir, database_url=database_url)
    handle = open_store(settings, load_demo=False)
    detail = handle.store.transact(lambda s: get_transaction(s, rrn))
    handle.store.close()
    if detail is None:
        typer.echo(f"posgate txn show: no transaction with RRN {rrn}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(detail, indent=2, default=str))


@keys_app.command("rotate")
def keys_rotate(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Start a new working-key period: every terminal gets 97 until it signs in again."""
    from posgate.bootstrap import open_store
    from posgate.store.acquirer import rotate_key_period

    settings = build_settings(data_dir=data_dir, database_url=database_url)
    handle = open_store(settings, load_demo=False)
    period = handle.store.transact(rotate_key_period)
    handle.store.close()
    typer.echo(f"key period is now {period}")


@keys_app.command("rotate-master")
def keys_rotate_master(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    wait_s: Annotated[
        float | None,
        typer.Option("--wait-s", min=0, help="how long running processes get to load the new key"),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000, help="rows per unit")] = 500,
    add_only: Annotated[
        bool, typer.Option("--add-only", help="only add the new version (copy master.key to every machine)")
    ] = False,
    keep_old: Annotated[bool, typer.Option("--keep-old", help="do not retire the older versions")] = False,
) -> None:
    """Rotate the master key while the hosts run: add a version, re-encrypt every PAN and sealed key under
    it in batches, retire the older versions."""
    _rotate_master(data_dir, database_url, wait_s, batch_size, add=True, add_only=add_only, keep_old=keep_old)


@keys_app.command("reencrypt")
def keys_reencrypt(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    wait_s: Annotated[
        float | None, typer.Option("--wait-s", min=0, help="wait before the last pass and the retirement")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000, help="rows per unit")] = 500,
    keep_old: Annotated[bool, typer.Option("--keep-old", help="do not retire the older versions")] = False,
) -> None:
    """Finish a rotation: re-encrypt everything under the newest master key version, retire the others."""
    _rotate_master(data_dir, database_url, wait_s, batch_size, add=False, add_only=False, keep_old=keep_old)


def _rotate_master(
    data_dir: Path | None,
    database_url: str | None,
    wait_s: float | None,
    batch_size: int,
    add: bool,
    add_only: bool,
    keep_old: bool,
) -> None:
    from posgate.bootstrap import open_store
    from posgate.key_rotation import add_version, rotate

    settings = build_settings(data_dir=data_dir, database_url=database_url)
    wait = wait_s if wait_s is not None else 2 * settings.master_key_reload_s + 1
    handle = open_store(settings, load_demo=False)
    try:
        if add_only:
            keyring = add_version(settings.master_key_path, handle.store, handle.vault)
            typer.echo(
                f"master key version {keyring.current} ({keyring.fingerprint(keyring.current)}) added to "
                f"{settings.master_key_path}; copy it to every machine, then run `posgate keys reencrypt`"
            )
            return
        report = rotate(
            settings.master_key_path,
            handle.store,
            handle.vault,
            wait,
            batch_size,
            add=add,
            retire=not keep_old,
            progress=typer.echo,
        )
    except PosgateError as exc:
        typer.echo(f"posgate keys: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        handle.store.close()
    typer.echo(
        f"master key version {report.current} seals everything: {sum(report.resealed.values())} values "
        f"re-encrypted in {report.seconds:.1f} s"
    )


def main() -> None:
    restrict_umask()  # whatever posgate (or SQLite for it) creates is private to its user
    try:
        app()
    except BrokenPipeError:
        sys.exit(0)
