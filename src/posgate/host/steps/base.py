"""The step contract and the services steps are built with."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from posgate.config import Settings
from posgate.host.context import TxnContext
from posgate.host.routing import BinTable
from posgate.security.at_rest import CardVault
from posgate.security.signin import KeyGenerations
from posgate.store.acquirer import RouteRecord, TerminalRecord
from posgate.store.runtime import Store

if TYPE_CHECKING:
    from posgate.host.links import IssuerLinks
    from posgate.host.saf import SafForwarder
    from posgate.host.stans import StanAllocator
    from posgate.risk.engine import RiskEngine


class TerminalCache:
    """Terminal records for `ttl_s` seconds: saves a database read per message. Another host node's change
    (a sign-in, a suspension) is seen within `ttl_s`; a MAC that fails on a cached record is checked again
    on a fresh one, so a sign-in elsewhere never causes a false A0. Changes made here invalidate at once."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._records: dict[str, tuple[float, TerminalRecord]] = {}

    def get(self, tid: str) -> TerminalRecord | None:
        hit = self._records.get(tid)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, record: TerminalRecord) -> None:
        if self.ttl_s > 0:
            self._records[record.tid] = (time.monotonic() + self.ttl_s, record)

    def forget(self, tid: str) -> None:
        self._records.pop(tid, None)


@dataclass
class HostServices:
    """What steps may use. Built once by `bootstrap`."""

    settings: Settings
    store: Store
    vault: CardVault
    links: IssuerLinks
    bins: BinTable[RouteRecord]
    saf: SafForwarder
    stans: StanAllocator
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    # (tid, signed_in_at, pending_at, key period) → opened working keys; any change to the row's key
    # generations (a sign-in, a promotion, a key-period rotation) makes a new cache key
    key_cache: dict[tuple[str, dt.datetime | None, dt.datetime | None, int], KeyGenerations] = field(
        default_factory=dict
    )
    terminals: TerminalCache = field(default_factory=lambda: TerminalCache(ttl_s=0.0))
    risk: RiskEngine | None = None  # None: no inline risk rules (settings.risk_rules = "off")


class Step:
    """One small, stateless piece of a pipeline.

    `prepare` decides (and may act); `abort` compensates when a later step failed unexpectedly.
    """

    def __init__(self, services: HostServices) -> None:
        self.services = services

    @property
    def name(self) -> str:
        return type(self).__name__

    async def prepare(self, ctx: TxnContext) -> None:
        raise NotImplementedError

    async def abort(self, ctx: TxnContext) -> None:
        return None
