"""The wallet provider simulators: `WalletSimulators` runs the three of them (WeChat Pay v3–, Alipay– and
UnionPay QR–style), each on its own HTTP port, with `async start()` / `stop()`.

The names below are imported on first use, so that the pure `sim.book` can be imported without the HTTP
framework."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "AlipaySimulator": "posgate.wallets.sim.alipay_app",
    "Faults": "posgate.wallets.sim.base",
    "Merchant": "posgate.wallets.sim.base",
    "ProviderSimulator": "posgate.wallets.sim.base",
    "UnionPaySimulator": "posgate.wallets.sim.unionpay_app",
    "WalletSimulators": "posgate.wallets.sim.servers",
    "WeChatPaySimulator": "posgate.wallets.sim.wechat_app",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
