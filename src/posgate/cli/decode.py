"""`posgate decode`: an ISO 8583 message (POS or network dialect) as JSON; PAN and track masked unless
asked."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from posgate.errors import PosgateError


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
