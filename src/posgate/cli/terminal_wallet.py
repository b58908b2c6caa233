"""`posgate terminal qr|scan|qr-refund`: wallet (QR) payments at the terminal, over the cashier API
(`/api/qr/…` on the console port) — the terminal's screen and the cashier's scanner.

- `posgate terminal qr AMOUNT [--provider P] [--pay-as CUSTOMER] [--json]` creates a merchant-presented order,
  shows its QR on the screen and waits (spinner) until the order ends, then prints the receipt; `--pay-as`
  has that simulated customer pay it at once (the provider simulators at `wallet_sim_ports`);
- `posgate terminal scan CODE AMOUNT [--json]` charges a customer's payment code (an unknown prefix is one
  line naming it, exit 2, before anything is sent);
- `posgate terminal qr-refund ORDER AMOUNT [--json]` refunds part of a paid order.

`--json` prints one object `{"order_id", "qr_payload", "state", "amount_fen", "provider"}` (qr-refund: the
refund). The API key is `--api-key` / `POSGATE_API_KEY`, else `<data dir>/cashier-api-key` (written by
`posgate up`). Exit codes: 0 paid (refund: done) · 1 not paid (closed, failed, unknown) or refused · 2 usage
· 3 the console cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.text import Text

from posgate.cli.common import build_settings
from posgate.cli.terminal import parse_amount_fen
from posgate.errors import PosgateError
from posgate.money import yuan
from posgate.terminal.state import DEMO_TID
from posgate.wallets import customer, qrimage
from posgate.wallets.codes import PROVIDERS, route_code
from posgate.wallets.errors import UnknownCodePrefix

EXIT_PAID, EXIT_NOT_PAID, EXIT_USAGE, EXIT_CONNECTION = 0, 1, 2, 3
FINAL = ("paid", "closed", "failed")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

HostOpt = Annotated[str, typer.Option("--host", help="posgate console address")]
ConsolePortOpt = Annotated[
    int | None, typer.Option("--console-port", help="console port [POSGATE_CONSOLE_PORT, 8000]")
]
TidOpt = Annotated[str, typer.Option("--tid", help="terminal id")]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="POSGATE_API_KEY", help="cashier API key [<data dir>/cashier-api-key]"),
]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="data directory [POSGATE_DATA_DIR]")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object when the order ends")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=1, help="seconds to wait for the order to end")]
AmountArg = Annotated[str, typer.Argument(help="amount in yuan, e.g. 23.72")]


def _fail(code: int, text: str) -> NoReturn:
    err.print(Text(f"posgate: {text}"))
    raise typer.Exit(code)


class _Cashier:
    """The cashier API as the terminal calls it."""

    def __init__(
        self, host: str, console_port: int | None, api_key: str | None, data_dir: Path | None
    ) -> None:
        from posgate.wallets.runtime import CASHIER_KEY_FILE

        self.settings = build_settings(data_dir=data_dir, console_port=console_port)
        key = api_key
        if key is None:
            path = self.settings.data_dir / CASHIER_KEY_FILE
            if not path.exists():
                _fail(EXIT_USAGE, f"no cashier API key: give --api-key or run posgate up (it writes {path})")
            key = path.read_text().strip()
        scheme = "https" if self.settings.console_tls else "http"
        self.http = httpx.Client(
            base_url=f"{scheme}://{host}:{self.settings.console_port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            _fail(EXIT_CONNECTION, f"the console cannot be reached: {type(exc).__name__}")
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if answer.status_code != 200:
            message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
            _fail(
                EXIT_NOT_PAID if answer.status_code in (409, 502) else EXIT_USAGE,
                message or answer.text[:200],
            )
        if not isinstance(body, dict):
            _fail(EXIT_USAGE, f"the console answered {method} {path} with something other than a JSON object")
        return body

    def sim_urls(self) -> dict[str, str]:
        host = "127.0.0.1" if self.settings.listen_host in ("0.0.0.0", "::") else self.settings.listen_host
        return {
            p: f"http://{host}:{port}"
            for p, port in zip(PROVIDERS, self.settings.wallet_sim_ports, strict=True)
        }


def _fen(amount: str) -> int:
    try:
        return parse_amount_fen(amount)
    except ValueError as exc:
        _fail(EXIT_USAGE, str(exc))


def _contract(order: dict[str, Any]) -> dict[str, Any]:
    return {key: order.get(key) for key in ("order_id", "qr_payload", "state", "amount_fen", "provider")}


def _finish(order: dict[str, Any], as_json: bool) -> NoReturn:
    if as_json:
        typer.echo(json.dumps(_contract(order), ensure_ascii=False))
    else:
        out.print("-" * 32)
        title = "SALE" if order["state"] == "paid" else order["state"].upper()
        out.print(f"WALLET {order['provider'].upper()}  {title}")
        out.print(f"TID {order['tid']}  MID {order['mid']}")
        out.print(f"ORDER {order['order_id']}")
        if order.get("trade_no"):
            out.print(f"TRADE {order['trade_no']}")
        if order.get("code"):
            out.print(f"CODE {order['code']}")
        out.print(f"AMOUNT CNY {yuan(order['amount_fen'])}")
        if order.get("failure") and order["state"] != "paid":
            out.print(Text(f"({order['failure']})"))
        out.print("-" * 32)
    raise typer.Exit(EXIT_PAID if order["state"] == "paid" else EXIT_NOT_PAID)


def qr_command(
    amount: AmountArg,
    provider: Annotated[str, typer.Option("--provider", help="wechat, alipay or unionpay")] = "wechat",
    pay_as: Annotated[
        str | None, typer.Option("--pay-as", help="a simulated customer pays the QR at once (tests, demo)")
    ] = None,
    as_json: JsonOpt = False,
    host: HostOpt = "127.0.0.1",
    console_port: ConsolePortOpt = None,
    tid: TidOpt = DEMO_TID,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = None,
    timeout: TimeoutOpt = 180.0,
) -> None:
    """Merchant-presented: show the order's QR and wait until it is paid (or expires)."""
    fen = _fen(amount)
    if provider not in PROVIDERS:
        _fail(EXIT_USAGE, f"unknown provider {provider!r} (one of {', '.join(PROVIDERS)})")
    cashier = _Cashier(host, console_port, api_key, data_dir)
    order = cashier.call("POST", "/api/qr/orders", json={"amount_fen": fen, "tid": tid, "provider": provider})
    if order["state"] in FINAL or not order.get("qr_payload"):
        _finish(order, as_json)
    if not as_json:
        out.print(qrimage.terminal_text(order["qr_payload"], invert=True), end="")
        out.print(f"{order['provider']}  CNY {yuan(fen)}  order {order['order_id']}")
    if pay_as is not None:
        try:
            asyncio.run(customer.pay_payload(order["qr_payload"], pay_as, cashier.sim_urls()))
        except PosgateError as exc:
            err.print(Text(f"posgate: {pay_as} could not pay: {exc}"))
    deadline = time.monotonic() + timeout
    path = f"/api/qr/orders/{order['order_id']}"
    with out.status("waiting for the customer …", spinner="dots") if not as_json else _Quiet():
        while order["state"] not in FINAL and time.monotonic() < deadline:
            time.sleep(0.5)
            order = cashier.call("GET", path)
    _finish(order, as_json)


class _Quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def scan_command(
    code: Annotated[str, typer.Argument(help="the customer's payment code (scanned)")],
    amount: AmountArg,
    as_json: JsonOpt = False,
    host: HostOpt = "127.0.0.1",
    console_port: ConsolePortOpt = None,
    tid: TidOpt = DEMO_TID,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Customer-presented: charge a scanned payment code (routed to its provider by its prefix)."""
    fen = _fen(amount)
    try:
        route_code(code)
    except UnknownCodePrefix as exc:
        _fail(EXIT_USAGE, str(exc))
    cashier = _Cashier(host, console_port, api_key, data_dir)
    with out.status("charging …", spinner="dots") if not as_json else _Quiet():
        order = cashier.call(
            "POST", "/api/qr/scans", json={"code": code.strip(), "amount_fen": fen, "tid": tid}
        )
    _finish(order, as_json)


def qr_refund_command(
    order_id: Annotated[str, typer.Argument(metavar="ORDER", help="the wallet order id")],
    amount: AmountArg,
    as_json: Annotated[bool, typer.Option("--json", help="print the refund as one JSON object")] = False,
    host: HostOpt = "127.0.0.1",
    console_port: ConsolePortOpt = None,
    api_key: ApiKeyOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Refund part of a paid wallet order (never more than is left)."""
    fen = _fen(amount)
    cashier = _Cashier(host, console_port, api_key, data_dir)
    refund = cashier.call("POST", f"/api/qr/orders/{order_id}/refunds", json={"amount_fen": fen})
    if as_json:
        typer.echo(json.dumps(refund, ensure_ascii=False))
    else:
        out.print(f"REFUND {refund['refund_no']}  CNY {yuan(refund['amount_fen'])}  {refund['state']}")
        out.print(f"ORDER {order_id}  refunded in all CNY {yuan(refund['refunded_fen'])}")
    raise typer.Exit(EXIT_PAID if refund["state"] in ("succeeded", "pending") else EXIT_NOT_PAID)


def register(app: typer.Typer) -> None:
    app.command("qr")(qr_command)
    app.command("scan")(scan_command)
    app.command("qr-refund")(qr_refund_command)
