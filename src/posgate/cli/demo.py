"""`posgate demo`: the guided end-to-end story (`posgate.tools.demo`) on a fresh SQLite store."""

from __future__ import annotations

from typing import Annotated

import typer

from posgate.cli.common import DataDir, IssuerPorts, PosPort, build_settings, run


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

    from posgate.logs import configure_logging
    from posgate.tools.demo import fresh_demo_dir, run_demo

    base = build_settings(data_dir=data_dir, pos_port=pos_port, issuer_ports=issuer_ports)
    demo_dir = fresh_demo_dir(base.data_dir / "demo")
    settings = base.model_copy(update={"data_dir": demo_dir, "database_url": None})
    configure_logging(demo_dir, "WARNING", console=False)
    console = Console()
    passed = False

    async def main() -> None:
        nonlocal passed
        passed = await run_demo(settings, keep_running, console)

    run(main())
    console.print(f"logs: {demo_dir / 'posgate.log'}")
    raise typer.Exit(0 if passed else 1)
