"""Wallet payments against a fresh `posgate up` as a user runs them, every command a subprocess over real
HTTP and TCP: `posgate terminal qr --json --pay-as demo` (merchant-presented, WeChat Pay–style), a merchant
QR paid with `posgate wallet pay`, a code from `posgate wallet code` scanned with `posgate terminal scan`
(Alipay–style), partial refunds with `posgate terminal qr-refund` (over the rest refused), an unknown
prefix refused naming it; the orders and their states through the cashier API with the API key; then
`posgate clearing run` clears the wallet orders with the cards and `posgate reconcile wallets` finds each
provider's bill in agreement."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from posgate.settlement.clearing_day import clearing_date
from posgate.wallets import emvqr

pytestmark = pytest.mark.default_risk_rules  # the host's own default risk rules

POSGATE = [sys.executable, "-m", "posgate"]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class Up:
    def __init__(self, tmp_path: Path, console_port: int, wallet_ports: list[int]) -> None:
        self.tmp_path = tmp_path
        self.data = tmp_path / "data"
        self.console_port = console_port
        self.env = dict(os.environ, POSGATE_WALLET_SIM_PORTS=",".join(map(str, wallet_ports)))
        self.lines: list[str] = []

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [*POSGATE, *args]
        if args[0] == "terminal":
            command += ["--data-dir", str(self.data), "--console-port", str(self.console_port)]
        return subprocess.run(
            command, cwd=self.tmp_path, capture_output=True, text=True, timeout=timeout, env=self.env
        )

    def api(self) -> httpx.Client:
        key = (self.data / "cashier-api-key").read_text().strip()
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.console_port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    console_port, *wallet_ports = free_ports(4)
    running = Up(tmp_path, console_port, wallet_ports)
    proc = subprocess.Popen(
        [
            *POSGATE,
            "up",
            "--data-dir",
            str(running.data),
            "--pos-port",
            "0",
            "--issuer-ports",
            "0,0",
            "--console-port",
            str(console_port),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=running.env,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            running.lines.append(line.strip())
            if line.startswith("posgate ready pos="):
                break
        assert running.lines and running.lines[-1].startswith("posgate ready"), running.lines
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.slow
def test_wallet_payments_against_posgate_up(up: Up) -> None:
    assert any(line.startswith("posgate wallet wechat http://") for line in up.lines), up.lines
    assert (up.data / "cashier-api-key").stat().st_mode & 0o077 == 0

    # merchant-presented, paid at once by the simulated customer (WeChat Pay–style)
    done = up.run("terminal", "qr", "23.72", "--json", "--pay-as", "demo")
    assert done.returncode == 0, done.stdout + done.stderr
    order = json.loads(done.stdout)
    assert set(order) == {"order_id", "qr_payload", "state", "amount_fen", "provider"}
    assert (order["state"], order["amount_fen"], order["provider"]) == ("paid", 2372, "wechat")
    qr = emvqr.MerchantQr.from_payload(order["qr_payload"])  # CRC checked
    assert (qr.point_of_initiation, qr.currency, qr.amount, qr.country) == ("12", "156", "23.72", "CN")
    assert qr.name and qr.city

    # the cashier API makes an order; the customer pays its QR with `posgate wallet pay`
    with up.api() as api:
        created = api.post(
            "/api/qr/orders", json={"amount": "8.80", "tid": "10000001", "provider": "unionpay"}
        )
        assert created.status_code == 200, created.text
        made = created.json()
        assert {"order_id", "qr_payload", "expires_at"} <= set(made)
        paid = up.run("wallet", "pay", made["qr_payload"], "--customer", "demo")
        assert paid.returncode == 0, paid.stdout + paid.stderr
        for _ in range(60):
            state = api.get(f"/api/qr/orders/{made['order_id']}").json()["state"]
            if state == "paid":
                break
            time.sleep(0.5)
        assert state == "paid"
        # the same Idempotency-Key is the same order
        again = [
            api.post(
                "/api/qr/orders",
                json={"amount_fen": 100, "tid": "10000001"},
                headers={"Idempotency-Key": "till-7-sale-1"},
            ).json()["order_id"]
            for _ in range(2)
        ]
        assert again[0] == again[1]
        # no API key: refused; a notification that is not the provider's: refused, nothing applied
        anonymous = httpx.post(
            f"http://127.0.0.1:{up.console_port}/api/qr/orders", json={"amount": "1.00", "tid": "10000001"}
        )
        assert anonymous.status_code == 401
        forged = httpx.post(
            f"http://127.0.0.1:{up.console_port}/api/qr/notify/wechat",
            json={"id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "resource": {}},
            headers={"Wechatpay-Timestamp": str(int(time.time())), "Wechatpay-Signature": "AAAA"},
        )
        assert forged.status_code >= 400
        assert api.get(f"/api/qr/orders/{again[0]}").json()["state"] == "created"

    # customer-presented: a code from the wallet app, scanned at the terminal (Alipay–style)
    code = up.run("wallet", "code", "--customer", "demo", "--provider", "alipay")
    assert code.returncode == 0, code.stderr
    scanned = up.run("terminal", "scan", code.stdout.strip().splitlines()[-1], "50.00", "--json")
    assert scanned.returncode == 0, scanned.stdout + scanned.stderr
    sale = json.loads(scanned.stdout)
    assert (sale["state"], sale["amount_fen"], sale["provider"], sale["qr_payload"]) == (
        "paid",
        5000,
        "alipay",
        None,
    )

    # refunds: partial, then the rest, then anything more refused
    first = up.run("terminal", "qr-refund", sale["order_id"], "20.00", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads(first.stdout)["refunded_fen"] == 2000
    over = up.run("terminal", "qr-refund", sale["order_id"], "30.01")
    assert over.returncode == 1 and "above what is left (30.00)" in over.stderr
    rest = up.run("terminal", "qr-refund", sale["order_id"], "30.00", "--json")
    assert rest.returncode == 0 and json.loads(rest.stdout)["refunded_fen"] == 5000

    # an unknown prefix: one line naming it, non-zero
    unknown = up.run("terminal", "scan", "991234567890123456", "1.00", "--json")
    assert unknown.returncode != 0 and unknown.stdout == ""
    assert unknown.stderr.strip().splitlines() == ["posgate: unknown payment code prefix '99'"]

    # one settlement: the day's clearing takes the wallet orders with the cards; each provider's bill agrees
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    clearing_day = clearing_date(now, ZoneInfo("Asia/Shanghai"), dt.time(23, 0))
    data = ["--data-dir", str(up.data)]
    cleared = up.run("clearing", "run", "--date", clearing_day.isoformat(), "--allow-open-day", *data)
    assert cleared.returncode == 0, cleared.stdout + cleared.stderr
    # the WeChat Pay and UnionPay QR sales, the Alipay sale and its two refunds
    assert "of which 5 wallet payments and refunds" in cleared.stdout, cleared.stdout
    bill_day = (now + dt.timedelta(hours=8)).date()
    if bill_day == (now + dt.timedelta(hours=8, seconds=-30)).date():  # not across Beijing midnight
        checked = up.run("reconcile", "wallets", "--date", bill_day.isoformat(), *data)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        summary = {line.split()[2]: line for line in checked.stdout.splitlines() if line.startswith("reconc")}
        assert "lines, matched 1, amount_mismatch 0" in summary["wechat"], checked.stdout
        assert "lines, matched 3, amount_mismatch 0" in summary["alipay"], checked.stdout
        assert "lines, matched 1, amount_mismatch 0" in summary["unionpay"], checked.stdout
        assert all("missing_in_posgate 0, missing_at_provider 0" in line for line in summary.values())
