"""Wallet payments inside a running posgate: the provider accounts sealed in the store (`credentials`)
turned into adapters, the order service (`orders.WalletOrders`) and its expiry sweep (`WalletRuntime`); and
for `posgate up`, the demo acquirer's accounts at the three simulators (`register_demo_accounts`: made and
sealed on first start, registered with the simulators — which forget merchants — on every start). The
cashier API key the terminal commands use lives in `<data dir>/cashier-api-key` (`CASHIER_KEY_FILE`, made by
`bootstrap.stack.cashier_api_key`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.config import Settings
from posgate.store.models import Merchant as MerchantRow
from posgate.store.models import SealedKey, Terminal
from posgate.store.runtime import StoreHandle
from posgate.wallets import rsakeys
from posgate.wallets.adapters import ADAPTERS, WalletAdapter
from posgate.wallets.codes import PROVIDERS
from posgate.wallets.credentials import (
    OWNER_KIND,
    Credentials,
    open_credentials,
    seal,
    simulator_registration,
)
from posgate.wallets.errors import WalletError
from posgate.wallets.orders import Merchant, WalletOrders

log = logging.getLogger("posgate.wallets.runtime")

#: the demo acquirer's account at each simulator: merchant id, app id, our key's serial
DEMO_ACCOUNTS = {
    "wechat": ("1900000109", "wxd678efh567hg6787", "3775B6A45ACD588826D15E583A95F5DD3C1A1B8E"),
    "alipay": ("2021000000000001", "2021000000000001", ""),
    "unionpay": ("777290058110048", "777290058110048", "69042905377"),
}
CASHIER_KEY_FILE = "cashier-api-key"
NOTIFY_PATH = "/api/qr/notify"


def stored_accounts(session: Session) -> dict[str, str]:
    """provider → merchant id of the provider accounts sealed in the store (the first of each provider)."""
    refs = session.scalars(
        select(SealedKey.owner_ref)
        .where(SealedKey.owner_kind == OWNER_KIND, SealedKey.purpose == "config")
        .order_by(SealedKey.id)
    )
    accounts: dict[str, str] = {}
    for ref in refs:
        provider, _, merchant_id = ref.partition(":")
        accounts.setdefault(provider, merchant_id)
    return accounts


def merchant_of_terminal(session: Session, tid: str, city: str) -> Merchant | None:
    """The merchant a terminal belongs to, as a wallet order shows it (None: no such live terminal)."""
    row = session.execute(
        select(MerchantRow.mid, MerchantRow.name, MerchantRow.mcc)
        .join(Terminal, Terminal.merchant_id == MerchantRow.id)
        .where(Terminal.tid == tid, Terminal.status.in_(("live", "testing")))
    ).one_or_none()
    if row is None:
        return None
    return Merchant(row.mid, row.name[:25], city, row.mcc)


def provider_urls(settings: Settings) -> dict[str, str]:
    """Each provider's base URL: `wallet_urls` (a real provider), else its simulator at `wallet_sim_ports`."""
    host = "127.0.0.1" if settings.listen_host in ("0.0.0.0", "::") else settings.listen_host
    urls = {p: f"http://{host}:{port}" for p, port in zip(PROVIDERS, settings.wallet_sim_ports, strict=True)}
    return urls | settings.wallet_urls


def stored_adapters(
    handle: StoreHandle, provider_urls: dict[str, str], timeout_s: float
) -> dict[str, WalletAdapter]:
    """An adapter for each provider account sealed in the store that has a URL in `provider_urls`."""
    store, vault = handle.store, handle.vault
    adapters: dict[str, WalletAdapter] = {}
    for provider, merchant_id in store.transact(stored_accounts).items():
        if provider not in provider_urls:
            continue
        creds = store.transact(
            lambda s, p=provider, m=merchant_id: open_credentials(s, vault, p, m, actor="wallets")
        )
        if creds is not None:
            adapters[provider] = ADAPTERS[provider](creds, provider_urls[provider], timeout_s)  # type: ignore[call-arg]
    return adapters


class WalletRuntime:
    """The adapters of the stored provider accounts, the order service and the expiry sweep."""

    def __init__(
        self,
        handle: StoreHandle,
        provider_urls: dict[str, str],
        notify_base: str,
        timeout_s: float = 10.0,
        city: str = "上海",
        sweep_s: float = 5.0,
    ) -> None:
        self.handle = handle
        self.city = city
        self.sweep_s = sweep_s
        adapters = stored_adapters(handle, provider_urls, timeout_s)
        self.orders = WalletOrders(handle.store.sessions, adapters, notify_base.rstrip("/") + NOTIFY_PATH)
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def providers(self) -> list[str]:
        return sorted(self.orders.adapters)

    def merchant(self, tid: str) -> Merchant:
        merchant = self.handle.store.transact(lambda s: merchant_of_terminal(s, tid, self.city))
        if merchant is None:
            raise WalletError(f"no live terminal {tid[:8]!r}")
        return merchant

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_s)
            try:
                await self.orders.expire_due()
                self.orders.prune_notifications()
            except Exception:  # the sweep must outlive one bad round; the next one retries
                log.exception("wallet order sweep failed")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for adapter in self.orders.adapters.values():
            await adapter.aclose()


async def register_demo_accounts(
    handle: StoreHandle, sims: object, notify_base: str, actor: str = "posgate up"
) -> dict[str, str]:
    """The demo acquirer's account at each simulator: made and sealed on first start (our RSA key, the API
    v3 key; the simulator's platform key as the provider's), then registered with the simulator (our public
    key, the API v3 key, the notify URL) as through its portal. Returns provider → merchant id."""
    from posgate.wallets.sim import WalletSimulators

    assert isinstance(sims, WalletSimulators)
    store, vault = handle.store, handle.vault
    done: dict[str, str] = {}
    for provider in PROVIDERS:
        merchant_id, app_id, serial = DEMO_ACCOUNTS[provider]
        sim = sims.providers[provider]
        provider_serial = "" if provider == "alipay" else sim.platform_serial
        creds = store.transact(lambda s, p=provider, m=merchant_id: open_credentials(s, vault, p, m))
        platform = sim.platform_key.public_key()
        if creds is None or rsakeys.fingerprint(creds.provider_keys.get(provider_serial, platform)) != (
            rsakeys.fingerprint(platform)
        ):
            creds = Credentials(
                provider=provider,
                merchant_id=merchant_id,
                app_id=app_id,
                key_serial=serial,
                private_key=creds.private_key if creds is not None else rsakeys.generate(),
                provider_keys={provider_serial: platform},
                apiv3_key=(
                    (creds.apiv3_key if creds is not None else None) or secrets.token_hex(16).encode()
                    if provider == "wechat"
                    else None
                ),
            )
            store.transact(lambda s, c=creds: seal(s, vault, c, actor=actor))
        registration = simulator_registration(creds, f"{notify_base.rstrip('/')}{NOTIFY_PATH}/{provider}")
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(sim.base_url + "/sim/merchants", json=registration)
        if answer.status_code != 200:
            raise WalletError(f"{provider} simulator refused the demo account: HTTP {answer.status_code}")
        done[provider] = merchant_id
    return done
