"""`posgate wallet …`: the wallet provider simulators and the simulated customer's wallet app.

- `posgate wallet serve` runs the WeChat Pay–, Alipay– and UnionPay QR–style simulators (ports from
  `wallet_sim_ports`; platform keys kept in `<data dir>/wallet-sim/`);
- `posgate wallet pay PAYLOAD --customer NAME` pays a merchant-presented EMVCo QR payload;
- `posgate wallet code --customer NAME --provider P` prints a fresh payment code as its last line;
- `posgate wallet show PAYLOAD` decodes a payload and draws its QR on the terminal.

The simulators are found at `http://<listen_host>:<port>` with the configured ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Annotated

import typer

from posgate.cli.common import build_settings
from posgate.config import Settings
from posgate.errors import PosgateError
from posgate.wallets import customer, qrimage
from posgate.wallets.codes import PROVIDERS
from posgate.wallets.emvqr import MerchantQr

wallet_app = typer.Typer(
    help="Wallet (QR) payments: the provider simulators and the simulated customer.", no_args_is_help=True
)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="data directory [POSGATE_DATA_DIR]")]
Ports = Annotated[
    str | None,
    typer.Option("--ports", help="WeChat Pay, Alipay, UnionPay QR simulator ports, e.g. 6101,6102,6103"),
]
Customer = Annotated[
    str, typer.Option("--customer", help="the simulated customer (every simulator knows demo)")
]


def _settings(**overrides: object) -> Settings:
    return build_settings(**overrides)


def _urls(settings: Settings) -> dict[str, str]:
    return {
        name: f"http://{settings.listen_host}:{port}"
        for name, port in zip(PROVIDERS, settings.wallet_sim_ports, strict=True)
    }


def _fail(message: str) -> typer.Exit:
    typer.echo(f"posgate: {message}", err=True)
    return typer.Exit(1)


@wallet_app.command("serve")
def serve(data_dir: DataDir = None, ports: Ports = None) -> None:
    """Run the three wallet provider simulators until interrupted."""
    settings = _settings(data_dir=data_dir, wallet_sim_ports=ports)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> None:
    from posgate.wallets.sim import WalletSimulators

    sims = WalletSimulators(
        host=settings.listen_host,
        ports=dict(zip(PROVIDERS, settings.wallet_sim_ports, strict=True)),
        key_dir=settings.data_dir / "wallet-sim",
    )
    try:
        addresses = await sims.start()
    except OSError as exc:
        raise _fail(f"{exc}: set --ports / POSGATE_WALLET_SIM_PORTS") from None
    for name, (host, port) in addresses.items():
        print(f"posgate wallet {name} http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sims.stop()


@wallet_app.command("pay")
def pay(
    payload: Annotated[str, typer.Argument(metavar="PAYLOAD", help="the EMVCo payload of the shop's QR")],
    customer_name: Customer = "demo",
    as_json: Annotated[bool, typer.Option("--json", help="print the result as one JSON object")] = False,
    ports: Ports = None,
) -> None:
    """Pay a merchant-presented QR as a simulated customer."""
    settings = _settings(wallet_sim_ports=ports)
    try:
        result = asyncio.run(
            customer.pay_payload(payload, customer_name, _urls(settings), settings.wallet_timeout_s)
        )
    except PosgateError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
    else:
        whole, cents = divmod(int(result["amount_fen"]), 100)
        typer.echo(f"paid {whole}.{cents:02d} CNY with {result['provider']} (trade {result['trade_no']})")


@wallet_app.command("code")
def code(
    customer_name: Customer = "demo",
    provider: Annotated[str, typer.Option("--provider", help="wechat, alipay or unionpay")] = "wechat",
    ports: Ports = None,
) -> None:
    """Print a fresh one-time payment code of a simulated customer (as its last line)."""
    if provider not in PROVIDERS:
        raise _fail(f"unknown provider {provider!r} (one of {', '.join(PROVIDERS)})")
    settings = _settings(wallet_sim_ports=ports)
    try:
        value = asyncio.run(
            customer.payment_code(provider, customer_name, _urls(settings), settings.wallet_timeout_s)
        )
    except PosgateError as exc:
        raise _fail(str(exc)) from None
    typer.echo(value)


@wallet_app.command("show")
def show(
    payload: Annotated[str, typer.Argument(metavar="PAYLOAD", help="an EMVCo merchant-presented payload")],
    png: Annotated[Path | None, typer.Option("--png", help="also write the QR as a PNG file")] = None,
    svg: Annotated[Path | None, typer.Option("--svg", help="also write the QR as an SVG file")] = None,
) -> None:
    """Decode an EMVCo payload (CRC checked) and draw its QR code."""
    try:
        qr = MerchantQr.from_payload(payload)
    except PosgateError as exc:
        raise _fail(str(exc)) from None
    typer.echo(qrimage.terminal_text(payload, invert=True), nl=False)
    typer.echo(f"merchant  {qr.name} ({qr.city}), MCC {qr.mcc}")
    typer.echo(f"amount    {qr.amount or '(customer enters it)'} ({'dynamic' if qr.dynamic else 'static'})")
    for account in qr.merchant_accounts:
        typer.echo(f"account   {account.tag} {account.gui} {dict(account.fields)}")
    if qr.additional:
        typer.echo(f"reference {dict(qr.additional)}")
    if png is not None:
        png.write_bytes(qrimage.png(payload))
    if svg is not None:
        svg.write_text(qrimage.svg(payload), encoding="utf-8")
