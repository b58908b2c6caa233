"""The wallet provider simulators: `WalletSimulators` runs the three of them (WeChat Pay v3–, Alipay– and
UnionPay QR–style), each on its own HTTP port, with `async start()` / `stop()`."""

from __future__ import annotations

from posgate.wallets.sim.alipay_app import AlipaySimulator
from posgate.wallets.sim.base import Faults, Merchant, ProviderSimulator
from posgate.wallets.sim.servers import WalletSimulators
from posgate.wallets.sim.unionpay_app import UnionPaySimulator
from posgate.wallets.sim.wechat_app import WeChatPaySimulator

__all__ = [
    "AlipaySimulator",
    "Faults",
    "Merchant",
    "ProviderSimulator",
    "UnionPaySimulator",
    "WalletSimulators",
    "WeChatPaySimulator",
]
