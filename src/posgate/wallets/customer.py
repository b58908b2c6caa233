"""The simulated customer's wallet app (a shell over the simulators' `/sim/` endpoints): pay a scanned
merchant-presented QR, show a fresh payment code, look at the balance. Used by `posgate wallet pay|code`
and by the tests; it talks only to the simulators."""

from __future__ import annotations

from typing import Any

import httpx

from posgate.wallets.errors import WalletError
from posgate.wallets.orderqr import provider_url


class CustomerError(WalletError):
    """The wallet app could not do it (unknown customer, order closed, balance too low …)."""


async def _post(base_url: str, path: str, payload: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.post(base_url.rstrip("/") + path, json=payload)
    except httpx.HTTPError as exc:
        raise CustomerError(f"wallet simulator at {base_url} unreachable: {type(exc).__name__}") from None
    data = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 200:
        raise CustomerError(str(data.get("error") or f"HTTP {response.status_code}"))
    return data


async def pay_payload(
    payload: str, customer: str, urls: dict[str, str], timeout_s: float = 10.0
) -> dict[str, Any]:
    """Pay a merchant-presented EMVCo payload as `customer` with the provider its template names."""
    provider, code_url = provider_url(payload)
    if provider not in urls:
        raise CustomerError(f"no {provider} simulator configured")
    result = await _post(urls[provider], "/sim/pay", {"code_url": code_url, "customer": customer}, timeout_s)
    return {"provider": provider, **result}


async def payment_code(provider: str, customer: str, urls: dict[str, str], timeout_s: float = 10.0) -> str:
    """A fresh one-time payment code for `customer` at `provider`."""
    if provider not in urls:
        raise CustomerError(f"no {provider} simulator configured")
    data = await _post(urls[provider], "/sim/codes", {"customer": customer}, timeout_s)
    return str(data["code"])
