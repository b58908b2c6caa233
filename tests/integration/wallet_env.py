"""A wallet test bench on loopback: the three provider simulators (port 0, short notification retries),
one merchant account per provider registered with them over HTTP (as through the providers' portals), the
acquirer's adapters, and a notification receiver (uvicorn, port 0) that runs each adapter's
`read_notification` and answers with its `notification_ack` — the acquirer's notify endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from posgate.wallets import rsakeys
from posgate.wallets.adapters import ADAPTERS, WalletAdapter, WalletNotification
from posgate.wallets.credentials import Credentials, simulator_registration
from posgate.wallets.errors import NotificationRejected
from posgate.wallets.sim import WalletSimulators

PROVIDERS = ("wechat", "alipay", "unionpay")
_KEYS: dict[str, rsakeys.PrivateKey] = {}


def cached_key(name: str) -> rsakeys.PrivateKey:
    """RSA keys made once per test session (key generation is the slow part of a bench)."""
    if name not in _KEYS:
        _KEYS[name] = rsakeys.generate()
    return _KEYS[name]


MERCHANT_IDS = {"wechat": "1900000109", "alipay": "2021000000000001", "unionpay": "777290058110048"}


@dataclass
class Received:
    """What the receiver saw: accepted notifications, rejections (reason), raw requests."""

    accepted: list[WalletNotification] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    raw: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    refuse_next: dict[str, int] = field(default_factory=dict)  # provider → answers to refuse first
    # set: the notify endpoint is this (e.g. `WalletOrders.notify`) instead of the adapter alone
    handler: Callable[[str, Mapping[str, str], bytes], Any] | None = None
    outcomes: list[tuple[str, str]] = field(default_factory=list)  # (provider, outcome) from `handler`
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, provider: str, kind: str | None = None) -> list[WalletNotification]:
        return [n for n in self.accepted if n.provider == provider and (kind is None or n.kind == kind)]


@dataclass
class Bench:
    sims: WalletSimulators
    adapters: dict[str, WalletAdapter]
    credentials: dict[str, Credentials]
    received: Received
    notify_base: str

    def notify_url(self, provider: str) -> str:
        return f"{self.notify_base}/notify/{provider}"

    async def wait_for(self, predicate: Any, timeout_s: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("timed out waiting")
            await asyncio.sleep(0.05)


def make_credentials(provider: str, sims: WalletSimulators) -> Credentials:
    sim = sims.providers[provider]
    serial = {"wechat": "3775B6A45ACD588826D15E583A95F5DD3C1A1B8E", "alipay": "", "unionpay": "69042905377"}[
        provider
    ]
    provider_serial = "" if provider == "alipay" else sim.platform_serial
    return Credentials(
        provider=provider,
        merchant_id=MERCHANT_IDS[provider],
        app_id="wxd678efh567hg6787" if provider == "wechat" else MERCHANT_IDS[provider],
        key_serial=serial,
        private_key=cached_key(f"merchant-{provider}"),
        provider_keys={provider_serial: sim.platform_key.public_key()},
        apiv3_key=secrets.token_hex(16).encode() if provider == "wechat" else None,
    )


async def register(sims: WalletSimulators, creds: Credentials, notify_url: str) -> None:
    """As the merchant does in the provider's portal: upload the public key (and the API v3 key)."""
    sim = sims.providers[creds.provider]
    payload = simulator_registration(creds, notify_url)
    async with httpx.AsyncClient() as client:
        answer = await client.post(sim.base_url + "/sim/merchants", json=payload)
    assert answer.status_code == 200, answer.text


def receiver_app(bench_adapters: dict[str, WalletAdapter], received: Received) -> Starlette:
    async def notify(request: Request) -> Response:
        provider = request.path_params["provider"]
        adapter = bench_adapters[provider]
        body = await request.body()
        received.raw.append((provider, dict(request.headers), body))
        if received.refuse_next.get(provider, 0) > 0:
            received.refuse_next[provider] -= 1
            ack = adapter.notification_ack(False)
            return Response(ack.body, ack.status, media_type=ack.media_type)
        if received.handler is not None:
            outcome = received.handler(provider, request.headers, body)
            received.outcomes.append((provider, outcome.outcome))
            received.event.set()
            return Response(outcome.ack.body, outcome.ack.status, media_type=outcome.ack.media_type)
        try:
            notification = adapter.read_notification(request.headers, body, dt.datetime.now(dt.UTC))
        except NotificationRejected as exc:
            received.rejected.append(exc.reason)
            ack = adapter.notification_ack(False)
        else:
            received.accepted.append(notification)
            ack = adapter.notification_ack(True)
        received.event.set()
        return Response(ack.body, ack.status, media_type=ack.media_type)

    return Starlette(routes=[Route("/notify/{provider}", notify, methods=["POST"])])


@contextlib.asynccontextmanager
async def wallet_bench(
    retry_schedule_s: tuple[float, ...] = (0.3, 0.3, 0.5), timeout_s: float = 5.0, window_s: float = 300.0
) -> AsyncIterator[Bench]:
    sims = WalletSimulators(
        ports=dict.fromkeys(PROVIDERS, 0),
        retry_schedule_s=retry_schedule_s,
        platform_keys={p: cached_key(f"platform-{p}") for p in PROVIDERS},
    )
    await sims.start()
    adapters: dict[str, WalletAdapter] = {}
    received = Received()
    server = uvicorn.Server(
        uvicorn.Config(
            receiver_app(adapters, received), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
        )
    )
    serve = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        notify_base = f"http://{host}:{port}"
        credentials = {}
        for provider in PROVIDERS:
            creds = make_credentials(provider, sims)
            credentials[provider] = creds
            await register(sims, creds, f"{notify_base}/notify/{provider}")
            adapter = ADAPTERS[provider](creds, sims.providers[provider].base_url, timeout_s, window_s)  # type: ignore[call-arg]
            adapters[provider] = adapter
        yield Bench(sims, adapters, credentials, received, notify_base)
    finally:
        for adapter in adapters.values():
            await adapter.aclose()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serve
        await sims.stop()
