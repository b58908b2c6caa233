"""`WalletSimulators`: the three provider simulators together, each on its own port, with `async start()`
and `stop()` like the issuer simulator — for `posgate wallet serve`, later `posgate up`, and the tests.

With a `key_dir`, each simulator's platform key is kept there (`<provider>-platform.pem`, mode 0600) so
that a restart keeps the keys merchants were given; without one, fresh keys are made for the run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

from posgate.wallets import rsakeys
from posgate.wallets.sim.alipay_app import AlipaySimulator
from posgate.wallets.sim.base import ProviderSimulator, utc_now
from posgate.wallets.sim.unionpay_app import UnionPaySimulator
from posgate.wallets.sim.wechat_app import WeChatPaySimulator

DEFAULT_PORTS = {"wechat": 6101, "alipay": 6102, "unionpay": 6103}


def platform_key(key_dir: Path | None, provider: str) -> rsakeys.PrivateKey:
    if key_dir is None:
        return rsakeys.generate()
    path = key_dir / f"{provider}-platform.pem"
    if path.exists():
        return rsakeys.load_private(path.read_bytes())
    key_dir.mkdir(parents=True, exist_ok=True)
    key = rsakeys.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(rsakeys.private_pem(key))
    return key


class WalletSimulators:
    """WeChat Pay–, Alipay– and UnionPay QR–style simulators. `retry_schedule_s` overrides every
    provider's notification retry schedule (tests use short ones)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        ports: dict[str, int] | None = None,
        key_dir: Path | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        retry_schedule_s: tuple[float, ...] | None = None,
        platform_keys: dict[str, rsakeys.PrivateKey] | None = None,
    ) -> None:
        """`platform_keys` (by provider) take precedence over `key_dir` (tests reuse keys)."""
        self.host = host
        self.ports = {**DEFAULT_PORTS, **(ports or {})}
        common = {"clock": clock, "retry_schedule_s": retry_schedule_s}
        keys = dict(platform_keys or {})
        for name in DEFAULT_PORTS:
            if name not in keys:
                keys[name] = platform_key(key_dir, name)
        self.wechat = WeChatPaySimulator(platform_key=keys["wechat"], **common)  # type: ignore[arg-type]
        self.alipay = AlipaySimulator(platform_key=keys["alipay"], **common)  # type: ignore[arg-type]
        self.unionpay = UnionPaySimulator(platform_key=keys["unionpay"], **common)  # type: ignore[arg-type]

    @property
    def providers(self) -> dict[str, ProviderSimulator]:
        return {"wechat": self.wechat, "alipay": self.alipay, "unionpay": self.unionpay}

    def urls(self) -> dict[str, str]:
        return {name: sim.base_url for name, sim in self.providers.items()}

    async def start(self) -> dict[str, tuple[str, int]]:
        started: list[ProviderSimulator] = []
        try:
            for name, sim in self.providers.items():
                await sim.start(self.host, self.ports[name])
                started.append(sim)
        except BaseException:
            for sim in started:
                await sim.stop()
            raise
        return {name: sim.address for name, sim in self.providers.items()}  # type: ignore[misc]

    async def stop(self) -> None:
        await asyncio.gather(*(sim.stop() for sim in self.providers.values()))
