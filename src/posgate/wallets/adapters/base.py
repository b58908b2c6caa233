"""The provider adapter interface (acquirer side): what the order state machine asks of any wallet provider,
in provider-neutral words, and the HTTP plumbing the three adapters share.

| call | provider-neutral result |
|---|---|
| `create_order` (merchant-presented) | `OrderCreated`: the provider's code URL to put in the EMVCo payload |
| `charge_code` (customer-presented) | `ProviderTrade`: `paid`, or `paying` (poll `query`) |
| `query` | `ProviderTrade` in `waiting`, `paying`, `paid`, `closed`, `reversed` |
| `close` / `reverse` | end an unpaid order / undo a charge |
| `refund` | `RefundResult`; more than is left: `ProviderError(reason="refund_exceeds")` |
| `read_notification` | `WalletNotification` once verified (and decrypted), else `NotificationRejected` |
| `notification_ack` | what to answer the provider for an accepted or refused notification |
| `bill` / `parse_bill` | the day's bill as `bills.BillLine`s |

Failures: `ProviderTimeout` (no answer in `timeout_s`: the outcome is unknown — query later),
`ProviderUnavailable` (no connection), `ProviderError` (the provider refused; `reason` is one of
`REASONS`), `SignatureInvalid` (the answer's signature is wrong: treat as no answer).
"""

from __future__ import annotations

import datetime as dt
import functools
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import httpx

from posgate.wallets.bills import BillLine
from posgate.wallets.errors import NotificationRejected, ProviderError, ProviderTimeout, ProviderUnavailable

WAITING, PAYING, PAID, CLOSED, REVERSED = "waiting", "paying", "paid", "closed", "reversed"
STATES = (WAITING, PAYING, PAID, CLOSED, REVERSED)
REASONS = (
    "not_found",
    "order_paid",
    "order_closed",
    "balance",
    "code_invalid",
    "refund_exceeds",
    "not_paid",
    "state",
    "duplicate",
    "param",
    "signature",
    "system",
)


@dataclass(frozen=True)
class OrderCreated:
    out_trade_no: str
    code_url: str


@dataclass(frozen=True)
class ProviderTrade:
    """What the provider says of one trade. `raw_state` is the provider's own word for it."""

    out_trade_no: str
    state: str
    raw_state: str
    amount_fen: int | None = None
    trade_no: str | None = None
    paid_at: dt.datetime | None = None
    refunded_fen: int | None = None


@dataclass(frozen=True)
class RefundResult:
    out_refund_no: str
    refund_id: str
    amount_fen: int
    succeeded: bool


@dataclass(frozen=True)
class WalletNotification:
    """A verified notification. `kind` is `payment` or `refund`; `event_id` identifies the event across
    the provider's retries; `duplicate` is True when this adapter has seen the event before (acknowledge it,
    apply nothing)."""

    provider: str
    kind: str
    event_id: str
    out_trade_no: str
    trade_no: str
    state: str
    amount_fen: int
    sent_at: dt.datetime
    out_refund_no: str | None = None
    refund_fen: int | None = None
    duplicate: bool = False


@dataclass(frozen=True)
class Ack:
    status: int
    body: bytes
    media_type: str


P = ParamSpec("P")
R = TypeVar("R")


def checked_answer(operation: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """A verified answer that lacks what we need (a missing field, a malformed amount) is a
    `ProviderError` naming the operation, never a KeyError from deep inside an adapter."""

    def wrap(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(func)
        async def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await func(*args, **kwargs)
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                provider = getattr(args[0], "provider", "provider")
                raise ProviderError(
                    provider, f"{operation}: unusable answer ({type(exc).__name__})", reason="system"
                ) from None

        return inner

    return wrap


def checked_notification(func: Callable[P, R]) -> Callable[P, R]:
    """A notification that verifies but lacks a field we need is rejected (`format`), never a KeyError."""

    @functools.wraps(func)
    def inner(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise NotificationRejected("format", f"notification unusable ({type(exc).__name__})") from None

    return inner


class NotificationGuard:
    """Duplicate and replay control for notifications (per adapter, in memory): a notification whose
    signed send time is more than `window_s` from now is refused (`stale`: an old one replayed); one whose
    event id was seen within the window is marked `duplicate`. With `remember=False` it checks the window
    only: the order service (`wallets.orders`) keeps the seen events in the store, in the unit of work that
    applies them, so duplicates are caught across nodes and restarts."""

    def __init__(self, window_s: float = 300.0, remember: bool = True) -> None:
        self.window_s = window_s
        self.remember = remember
        self._seen: dict[str, dt.datetime] = {}

    def check(self, event_id: str, sent_at: dt.datetime, now: dt.datetime) -> bool:
        """True if the event is new; False for a duplicate; raises `NotificationRejected('stale')`."""
        if abs((now - sent_at).total_seconds()) > self.window_s:
            raise NotificationRejected(
                "stale",
                f"notification sent at {sent_at.isoformat()} is outside the {self.window_s:g} s window",
            )
        if not self.remember:
            return True
        horizon = now - dt.timedelta(seconds=2 * self.window_s)
        for key in [k for k, at in self._seen.items() if at < horizon]:
            del self._seen[key]
        if event_id in self._seen:
            return False
        self._seen[event_id] = now
        return True


class WalletAdapter(ABC):
    """One provider, seen from the acquirer. Subclasses implement the calls below over `self.http`."""

    provider = "provider"

    def __init__(self, base_url: str, timeout_s: float = 10.0, window_s: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s)
        self.guard = NotificationGuard(window_s)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(self, operation: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One HTTP exchange, its failures translated."""
        try:
            return await self.http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise ProviderTimeout(self.provider, operation, self.timeout_s) from None
        except httpx.TransportError as exc:
            raise ProviderUnavailable(self.provider, operation, type(exc).__name__) from None

    def system_failure(self, operation: str, response: httpx.Response) -> ProviderError:
        return ProviderError(
            self.provider, f"{operation}: HTTP {response.status_code}", "SYSTEM_ERROR", response.status_code
        )

    @abstractmethod
    async def create_order(
        self, out_trade_no: str, amount_fen: int, description: str, expires_at: dt.datetime, notify_url: str
    ) -> OrderCreated: ...

    @abstractmethod
    async def charge_code(
        self, out_trade_no: str, code: str, amount_fen: int, description: str, notify_url: str | None = None
    ) -> ProviderTrade: ...

    @abstractmethod
    async def query(self, out_trade_no: str) -> ProviderTrade: ...

    @abstractmethod
    async def close(self, out_trade_no: str) -> None: ...

    @abstractmethod
    async def reverse(self, out_trade_no: str) -> None: ...

    @abstractmethod
    async def refund(
        self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str = ""
    ) -> RefundResult: ...

    @abstractmethod
    def read_notification(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> WalletNotification: ...

    @abstractmethod
    def notification_ack(self, accepted: bool) -> Ack: ...

    @abstractmethod
    async def bill(self, day: dt.date) -> list[BillLine]: ...

    @abstractmethod
    def parse_bill(self, text: str) -> list[BillLine]: ...
