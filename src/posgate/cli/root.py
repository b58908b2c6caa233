"""The root `posgate` command: mounts every command group (one module each in this package) in the order
`posgate --help` lists them, and `main`, the console script's entry point."""

from __future__ import annotations

import sys

import typer

from posgate.cli import decode, demo, serve
from posgate.cli.bench import bench_auth_command, bench_compare_command
from posgate.cli.keys import keys_app
from posgate.cli.kpi import bench_kpi_command, kpi_app, seed_app
from posgate.cli.merchants import merchant_app, provision_terminal_command
from posgate.cli.risk import risk_app
from posgate.cli.settlement import (
    bench_clearing_command,
    clearing_app,
    issuer_file_command,
    reconcile_app,
    settlement_app,
)
from posgate.cli.terminal import app as terminal_app
from posgate.cli.terminal_wallet import register as register_wallet_terminal
from posgate.cli.txn import txn_app
from posgate.cli.wallet import wallet_app
from posgate.files import restrict_umask

app = typer.Typer(
    help="posgate — bank-card acquiring host, issuer and terminal simulators.", no_args_is_help=True
)
app.add_typer(terminal_app, name="terminal", help="POS terminal simulator.")
register_wallet_terminal(terminal_app)  # posgate terminal qr | scan | qr-refund
terminal_app.command("provision", help="Provision terminal(s) for a merchant (acquirer side).")(
    provision_terminal_command
)
app.add_typer(merchant_app, name="merchant", help="Merchant onboarding: apply, review, approve, list.")
app.add_typer(keys_app, name="keys")
app.command()(serve.up)
app.command()(serve.console)
app.command()(serve.host)
app.add_typer(serve.issuer_app, name="issuer")
serve.issuer_app.command("clearing-file")(issuer_file_command)
app.add_typer(clearing_app, name="clearing")
app.add_typer(settlement_app, name="settlement")
app.add_typer(risk_app, name="risk")
app.add_typer(reconcile_app, name="reconcile")
app.add_typer(wallet_app, name="wallet")
app.add_typer(kpi_app, name="kpi")
app.add_typer(seed_app, name="seed")
app.command()(decode.decode)
app.command()(demo.demo)
bench_app = typer.Typer(
    help="Benchmarks (the figures quoted in the docs come from these).", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")
bench_app.command("clearing")(bench_clearing_command)
bench_app.command("kpi")(bench_kpi_command)
bench_app.command("auth")(bench_auth_command)
bench_app.command("compare")(bench_compare_command)
app.add_typer(txn_app, name="txn")


def main() -> None:
    """The `posgate` console script."""
    restrict_umask()  # whatever posgate (or SQLite for it) creates is private to its user
    try:
        app()
    except BrokenPipeError:
        sys.exit(0)
