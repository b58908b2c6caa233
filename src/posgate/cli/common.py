"""What every command group shares: the common options, `build_settings` (settings from the environment and
posgate.toml with the command line's options on top) and `run` (an asyncio entry point with posgate's exit
codes). Every group imports this module; it imports no group, so the package has no import cycle."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from posgate.config import Settings, load_settings
from posgate.errors import ConfigError, PosgateError

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


def run(coro: Coroutine[Any, Any, None]) -> None:
    """Run a command's coroutine: Ctrl-C ends it quietly, a configuration or posgate error exits 2."""
    try:
        asyncio.run(coro)
    except KeyboardInterrupt:
        pass
    except (ConfigError, PosgateError) as exc:
        typer.echo(f"posgate: {exc}", err=True)
        raise typer.Exit(2) from None
