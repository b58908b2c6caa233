"""In-memory stand-ins for what host steps are built with: no socket, no database. `FakeStore.run` does not
run the unit of work it is given; it records it and returns the next scripted answer, so a test says what
the store answers and checks that a write was asked for."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from posgate.host.context import TxnContext
from posgate.host.routing import BinTable
from posgate.host.steps.base import HostServices, TerminalCache
from posgate.iso8583.framing import PosFrame
from posgate.store.acquirer import RouteRecord, TerminalRecord

NOW = dt.datetime(2026, 12, 3, 2, 30, tzinfo=dt.UTC)
PAN = "6229990000000012"  # Luhn-valid, BIN 622999
ZPK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


@dataclass
class FakeStore:
    answers: list[Any] = field(default_factory=list)
    calls: list[Callable[..., Any]] = field(default_factory=list)

    async def run(self, fn: Callable[..., Any]) -> Any:
        self.calls.append(fn)
        return self.answers.pop(0) if self.answers else None

    def called(self, name: str) -> bool:
        """Whether a unit of work that calls store function `name` was asked for."""
        return any(name in fn.__code__.co_names for fn in self.calls)


@dataclass
class FakeLink:
    reply: dict[str, str] | Exception = field(default_factory=lambda: {"39": "00", "38": "123456"})
    sent: list[dict[str, str]] = field(default_factory=list)
    route: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(zpk=ZPK))

    async def request(self, msg: dict[str, str], timeout_s: float) -> dict[str, str]:
        self.sent.append(msg)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


@dataclass
class FakeLinks:
    link: FakeLink = field(default_factory=FakeLink)

    def get(self, name: str) -> FakeLink:
        return self.link


@dataclass
class FakeSaf:
    kicks: int = 0

    def kick(self) -> None:
        self.kicks += 1

    async def deliver_for(self, original_id: int, timeout_s: float) -> None:
        return None


class FakeVault:
    def pan_hash(self, pan: str) -> str:
        return hashlib.sha256(pan.encode()).hexdigest()


class FakeStans:
    async def next(self, issuer: str) -> str:
        return "000001"


def route(**overrides: Any) -> RouteRecord:
    values: dict[str, Any] = {
        "name": "Bank A",
        "bins": ("622999",),
        "host": "127.0.0.1",
        "port": 1,
        "mac_enabled": False,
        "kind": "debit",
        "zpk": ZPK,
        "zak": None,
    }
    return RouteRecord(**(values | overrides))


def services(store: FakeStore | None = None, link: FakeLink | None = None) -> HostServices:
    settings = SimpleNamespace(
        max_amount_fen=5_000_000,
        acquirer_id="49990000",
        issuer_timeout_s=1.0,
        sign_in_window_s=60.0,
        sign_in_limit=10,
    )
    return HostServices(
        settings=settings,  # type: ignore[arg-type]
        store=store or FakeStore(),  # type: ignore[arg-type]
        vault=FakeVault(),  # type: ignore[arg-type]
        links=FakeLinks(link or FakeLink()),  # type: ignore[arg-type]
        bins=BinTable([route()]),
        saf=FakeSaf(),  # type: ignore[arg-type]
        stans=FakeStans(),  # type: ignore[arg-type]
        clock=lambda: NOW,
        terminals=TerminalCache(ttl_s=0.0),
    )


def terminal(**overrides: Any) -> TerminalRecord:
    values: dict[str, Any] = {
        "id": 1,
        "tid": "10000001",
        "mid": "898440153110001",
        "merchant_id": 1,
        "merchant_name": "Demo",
        "status": "live",
        "merchant_status": "live",
        "batch_no": "000001",
        "signed_in_period": 1,
        "signed_in_at": NOW.replace(tzinfo=None),
        "mac_algorithm": "cup-ecb",
        "pending_period": None,
        "pending_at": None,
        "key_period": 1,
    }
    return TerminalRecord(**(values | overrides))


def sale(**fields: str) -> dict[str, str]:
    request = {
        "t": "0200",
        "2": PAN,
        "3": "000000",
        "4": "000000001234",
        "11": "000007",
        "14": "3012",
        "22": "012",
        "25": "00",
        "41": "10000001",
        "42": "898440153110001",
        "49": "156",
        "60": "2200000100060",
    }
    return {name: value for name, value in (request | fields).items() if value}


def context(request: dict[str, str]) -> TxnContext:
    from posgate.host.pipeline import classify

    return TxnContext(
        frame=PosFrame(b"", b"", b""),
        request=request,
        received_at=NOW,
        local_now=NOW.replace(tzinfo=None) + dt.timedelta(hours=8),
        kind=classify(request),
    )
