"""The host's composition object: what `bootstrap` builds once (settings, store, vault, issuer links, BIN
table, store-and-forward queue, STAN counters, this node's caches), and the ports the pipelines are built
with (`ports()`: SQLAlchemy and link implementations of `host.ports`)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from posgate.config import Settings
from posgate.host.context import Message, Route
from posgate.host.ports import HostPorts, Policy
from posgate.host.routing import BinTable
from posgate.security.at_rest import CardVault
from posgate.security.signin import KeyGenerations
from posgate.store.acquirer import RouteRecord, TerminalRecord
from posgate.store.runtime import Store

if TYPE_CHECKING:
    from posgate.host.links import IssuerLinks
    from posgate.host.saf import SafForwarder
    from posgate.host.stans import StanAllocator
    from posgate.ops.metrics import HostMetrics
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


class LinkIssuers:
    """The issuers port over the BIN table and the issuer links."""

    def __init__(self, links: IssuerLinks, bins: BinTable[RouteRecord]) -> None:
        self.links, self.bins = links, bins

    def route(self, pan: str) -> Route | None:
        route = self.bins.route(pan)
        if route is None:
            return None
        return Route(
            issuer_name=route.name,
            mac_enabled=route.mac_enabled,
            card_kind=route.kind,
            stand_in_max_fen=route.stand_in_max_fen,
            stand_in_card_daily_fen=route.stand_in_card_daily_fen,
        )

    def zpk(self, issuer: str) -> bytes:
        return self.links.get(issuer).route.zpk

    async def request(self, issuer: str, msg: Message, timeout_s: float) -> Message:
        return await self.links.get(issuer).request(msg, timeout_s)


@dataclass
class HostServices:
    """What the host is built with. Built once by `bootstrap`."""

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
    metrics: HostMetrics | None = None  # the operations port's counters (ops.metrics); None: not counted

    def ports(self) -> HostPorts:
        from posgate.host.sql_ports import SqlBatches, SqlTerminals, SqlTransactions

        settings = self.settings
        return HostPorts(
            policy=Policy(
                acquirer_id=settings.acquirer_id,
                max_amount_fen=settings.max_amount_fen,
                issuer_timeout_s=settings.issuer_timeout_s,
                sign_in_window_s=settings.sign_in_window_s,
                sign_in_limit=settings.sign_in_limit,
            ),
            transactions=SqlTransactions(self.store),
            terminals=SqlTerminals(self.store, self.vault, self.terminals, self.key_cache),
            batches=SqlBatches(self.store, self.vault),
            issuers=LinkIssuers(self.links, self.bins),
            forwarder=self.saf,
            stans=self.stans,
            cards=self.vault,
            clock=self.clock,
            risk=self.risk,
        )
