"""Provider adapters (acquirer side): one per provider behind the `WalletAdapter` interface, and
`adapter_for` to build the right one from sealed credentials and the provider's base URL."""

from __future__ import annotations

from posgate.wallets.adapters.alipay import AlipayAdapter
from posgate.wallets.adapters.base import (
    Ack,
    NotificationGuard,
    OrderCreated,
    ProviderTrade,
    RefundResult,
    WalletAdapter,
    WalletNotification,
)
from posgate.wallets.adapters.unionpay import UnionPayAdapter
from posgate.wallets.adapters.wechat import WeChatPayAdapter
from posgate.wallets.codes import route_code
from posgate.wallets.credentials import Credentials

ADAPTERS: dict[str, type[WalletAdapter]] = {
    "wechat": WeChatPayAdapter,
    "alipay": AlipayAdapter,
    "unionpay": UnionPayAdapter,
}


def adapter_for(credentials: Credentials, base_url: str, timeout_s: float = 10.0) -> WalletAdapter:
    return ADAPTERS[credentials.provider](credentials, base_url, timeout_s)  # type: ignore[call-arg]


def adapter_for_code(code: str, adapters: dict[str, WalletAdapter]) -> WalletAdapter:
    """The adapter of the provider that issued a scanned payment code (`UnknownCodePrefix` otherwise)."""
    return adapters[route_code(code, enabled=adapters).provider]


__all__ = [
    "ADAPTERS",
    "Ack",
    "AlipayAdapter",
    "NotificationGuard",
    "OrderCreated",
    "ProviderTrade",
    "RefundResult",
    "UnionPayAdapter",
    "WalletAdapter",
    "WalletNotification",
    "WeChatPayAdapter",
    "adapter_for",
    "adapter_for_code",
]
