"""The step contract and the services steps are built with."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from posgate.config import Settings
from posgate.host.context import TxnContext
from posgate.host.routing import BinTable
from posgate.security.at_rest import CardVault
from posgate.security.signin import WorkingKeys
from posgate.store.acquirer import RouteRecord
from posgate.store.runtime import Store

if TYPE_CHECKING:
    from posgate.host.links import IssuerLinks
    from posgate.host.saf import SafForwarder


@dataclass
class HostServices:
    """What steps may use. Built once by `bootstrap`."""

    settings: Settings
    store: Store
    vault: CardVault
    links: IssuerLinks
    bins: BinTable[RouteRecord]
    saf: SafForwarder
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    # (tid, signed_in_at) → opened working keys; the row's signed_in_at invalidates it on re-sign-in
    key_cache: dict[tuple[str, dt.datetime | None], WorkingKeys] = field(default_factory=dict)


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
