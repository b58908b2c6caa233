"""`posgate wallet serve|pay|code|show` as a user runs them: the simulators in their own process, the
acquirer's adapters in this one, the customer's commands as subprocesses."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from posgate.wallets import rsakeys
from posgate.wallets.adapters import ADAPTERS, adapter_for_code
from posgate.wallets.adapters.base import PAID
from posgate.wallets.credentials import Credentials
from posgate.wallets.orderqr import order_payload

POSGATE = [sys.executable, "-m", "posgate"]
PROVIDERS = ("wechat", "alipay", "unionpay")


def run(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        POSGATE + args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, str]]:
    proc = subprocess.Popen(
        [*POSGATE, "wallet", "serve", "--data-dir", str(tmp_path / "data"), "--ports", "0,0,0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    urls: dict[str, str] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            match = re.match(r"posgate wallet (\w+) (http://\S+)", line)
            if match:
                urls[match.group(1)] = match.group(2)
            if len(urls) == 3:
                break
        assert set(urls) == set(PROVIDERS), urls
        yield urls
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert (tmp_path / "data" / "wallet-sim" / "wechat-platform.pem").stat().st_mode & 0o077 == 0


def _ports(urls: dict[str, str]) -> str:
    return ",".join(urls[p].rsplit(":", 1)[1] for p in PROVIDERS)


async def _adapter(provider: str, url: str):  # type: ignore[no-untyped-def]
    """Register a merchant with the running simulator (its portal) and build the acquirer's adapter."""
    async with httpx.AsyncClient() as client:
        platform = (await client.get(url + "/sim/platform")).json()
        key = rsakeys.generate()
        creds = Credentials(
            provider=provider,
            merchant_id={"wechat": "1900000109", "alipay": "2021000000000001", "unionpay": "777290058110048"}[
                provider
            ],
            app_id="wx1" if provider == "wechat" else "2021000000000001",
            key_serial={"wechat": "ABC", "alipay": "", "unionpay": "1"}[provider],
            private_key=key,
            provider_keys={
                "" if provider == "alipay" else platform["serial"]: rsakeys.load_public(
                    platform["public_key_pem"]
                )
            },
            apiv3_key=b"k" * 32 if provider == "wechat" else None,
        )
        registration = {
            "merchant_id": creds.merchant_id,
            "app_id": creds.app_id,
            "public_key_pem": rsakeys.public_pem(key.public_key()).decode(),
            "key_serial": creds.key_serial,
        }
        if provider == "wechat":
            registration["apiv3_key"] = "k" * 32
        assert (await client.post(url + "/sim/merchants", json=registration)).status_code == 200
    return ADAPTERS[provider](creds, url)  # type: ignore[call-arg]


@pytest.mark.slow
async def test_customer_pays_a_shop_qr_and_shows_payment_codes(
    served: dict[str, str], tmp_path: Path
) -> None:
    ports = _ports(served)
    payload = ""
    for provider in PROVIDERS:
        adapter = await _adapter(provider, served[provider])
        no = "E" + secrets.token_hex(6)
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        created = await adapter.create_order(no, 2372, "小杨生煎", expires, "http://127.0.0.1:9/notify")
        payload = order_payload(
            provider, created.code_url, 2372, "小杨生煎(吴江路店)", "上海", "5812", no, "T0000001"
        )
        paid = await asyncio.to_thread(
            run, ["wallet", "pay", payload, "--customer", "demo", "--ports", ports], tmp_path
        )
        assert paid.returncode == 0, paid.stderr
        assert paid.stdout.startswith(f"paid 23.72 CNY with {provider} (trade ")
        assert (await adapter.query(no)).state == PAID
        if provider == "wechat":  # (each command is a new process: a few seconds each on a busy machine)
            again = await asyncio.to_thread(run, ["wallet", "pay", payload, "--ports", ports], tmp_path)
            assert again.returncode == 1 and again.stderr == "posgate: the order is already paid\n"

        args = ["wallet", "code", "--customer", "demo", "--provider", provider, "--ports", ports]
        code = await asyncio.to_thread(run, args, tmp_path)
        assert code.returncode == 0, code.stderr
        value = code.stdout.strip().splitlines()[-1]
        routed = adapter_for_code(value, {provider: adapter})
        assert (await routed.charge_code("C" + secrets.token_hex(6), value, 100, "tea")).state == PAID
        await adapter.aclose()

    shown = await asyncio.to_thread(
        run, ["wallet", "show", payload, "--png", str(tmp_path / "qr.png")], tmp_path
    )
    assert shown.returncode == 0 and "merchant  小杨生煎(吴江路店) (上海), MCC 5812" in shown.stdout
    assert (tmp_path / "qr.png").read_bytes()[:4] == b"\x89PNG"
    bad = await asyncio.to_thread(run, ["wallet", "pay", payload[:-4] + "0000", "--ports", ports], tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("posgate: tag 63 at position ")
    unknown = await asyncio.to_thread(
        run, ["wallet", "code", "--customer", "nobody", "--ports", ports], tmp_path
    )
    assert unknown.returncode == 1 and unknown.stderr == "posgate: no customer 'nobody'\n"
