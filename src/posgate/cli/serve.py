"""`posgate up`, `host`, `issuer` and `console`: run the whole stack or one of its processes in the
foreground (the composition root, `posgate.bootstrap`, builds it)."""

from __future__ import annotations

import asyncio

import typer

from posgate.cli.common import ConsolePort, DatabaseUrl, DataDir, IssuerPorts, PosPort, build_settings, run
from posgate.config import Settings


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
    run(_serve(settings, host=True, issuers=True, console=True, wallet_sims=True))


def console(
    data_dir: DataDir = None, console_port: ConsolePort = None, database_url: DatabaseUrl = None
) -> None:
    """Run the REST API (OpenAPI at /docs) and the web console alone."""
    settings = build_settings(data_dir=data_dir, console_port=console_port, database_url=database_url)
    run(_serve(settings, host=False, issuers=False, console=True))


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
    run(_serve(settings, host=True, issuers=False))


issuer_app = typer.Typer(
    invoke_without_command=True, help="Run the issuer simulator alone (one port per bank), or its tools."
)


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
    run(_serve(settings, host=False, issuers=True))


async def _serve(
    settings: Settings, host: bool, issuers: bool, console: bool = False, wallet_sims: bool = False
) -> None:
    from posgate.bootstrap.stack import serve_forever, start_all
    from posgate.logs import configure_logging

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
        from posgate.bootstrap.stack import cashier_api_key
        from posgate.wallets.runtime import CASHIER_KEY_FILE

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
