"""The host's part of the composition root: its TLS contexts, the inline risk engine and `start_host` (issuer
links from the routes in the store, the store-and-forward queue, in-doubt recovery, the POS server)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from posgate.config import Settings
from posgate.host.links import IssuerLink, IssuerLinks
from posgate.host.recovery import InDoubtRecovery
from posgate.host.routing import BinTable
from posgate.host.saf import SafForwarder
from posgate.host.server import PosServer
from posgate.host.services import HostServices, TerminalCache
from posgate.host.stans import StanAllocator
from posgate.ops.metrics import HostMetrics
from posgate.risk.engine import RiskEngine
from posgate.risk.rules import RuleSet, default_rule_set, lists_only, load_rule_set
from posgate.security.link_tls import link_client_context
from posgate.security.pos_tls import server_context
from posgate.store.acquirer import RouteRecord, load_routes
from posgate.store.runtime import Store, StoreHandle

log = logging.getLogger("posgate")


def link_ssl_context(route: RouteRecord) -> ssl.SSLContext | None:
    """The client TLS context of a route's link, or None for plain TCP. `ConfigError` names a bad file."""
    if route.tls is None:
        return None

    def path(value: str | None) -> Path | None:
        return Path(value) if value is not None else None

    return link_client_context(
        route.name, path(route.tls.ca_file), path(route.tls.cert_file), path(route.tls.key_file)
    )


def pos_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The POS port's TLS context when `pos_tls_cert` is set (files read now: a bad one stops the start)."""
    if settings.pos_tls_cert is None or settings.pos_tls_key is None:
        return None
    return server_context(
        settings.pos_tls_cert,
        settings.pos_tls_key,
        settings.pos_tls_client_ca,
        settings.pos_tls_client_auth,
    )


@dataclass
class HostRuntime:
    services: HostServices
    server: PosServer
    address: tuple[str, int]
    recovery: InDoubtRecovery | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self) -> None:
        await self.server.stop()
        if self.recovery is not None:
            await self.recovery.stop()
        await self.services.saf.stop()
        await self.services.links.stop()
        if self.services.risk is not None:
            await self.services.risk.stop()


def risk_engine(settings: Settings, store: Store) -> RiskEngine | None:
    """The inline risk engine from `settings.risk_rules` ('off', 'default' or a file); a bad rule set stops
    the start here, its error naming the file, the rule and the field."""
    choice = settings.risk_rules.strip()
    if choice == "off":
        return None
    rules = _rule_set(choice)
    log.info("risk rules %s (%s), %d rules", rules.version, rules.source, len(rules.rules))
    shadow = _rule_set(settings.risk_shadow_rules.strip()) if settings.risk_shadow_rules else None
    if shadow is not None:
        log.info("risk rules in shadow %s (%s), %d rules", shadow.version, shadow.source, len(shadow.rules))
    return RiskEngine(store, rules, timezone=settings.timezone, shadow=shadow)


def _rule_set(choice: str) -> RuleSet:
    if choice in ("default", "lists"):
        return default_rule_set() if choice == "default" else lists_only(default_rule_set())
    return load_rule_set(Path(choice))


async def start_host(
    settings: Settings,
    handle: StoreHandle,
    issuer_ports: dict[str, int] | None = None,
    metrics: HostMetrics | None = None,
) -> HostRuntime:
    """Issuer links (from the routes in the store), the SAF forwarder and the POS server, started; with
    `metrics`, the POS server, the links and the store's commits feed them."""
    tls = pos_tls_context(settings)  # before anything starts: a bad certificate file stops here
    routes = await handle.store.run(lambda s: load_routes(s, handle.vault))
    if issuer_ports:
        routes = [dataclasses.replace(r, port=issuer_ports.get(r.name, r.port)) for r in routes]
    stans = StanAllocator(
        handle.store, block_max=settings.stan_block_max, max_age_s=settings.stan_block_max_age_s
    )
    links = IssuerLinks(
        [
            IssuerLink(
                route,
                settings.acquirer_id,
                stans,
                ssl=link_ssl_context(route),
                connect_timeout_s=settings.issuer_connect_timeout_s,
                echo_interval_s=settings.echo_interval_s,
                reconnect_max_s=settings.reconnect_max_s,
            )
            for route in routes
        ]
    )
    saf = SafForwarder(
        handle.store,
        handle.vault,
        links,
        settings.acquirer_id,
        retry_s=settings.saf_retry_s,
        timeout_s=settings.issuer_timeout_s,
        stans=stans,
    )
    services = HostServices(
        settings=settings,
        store=handle.store,
        vault=handle.vault,
        links=links,
        bins=BinTable(routes),
        saf=saf,
        stans=stans,
        terminals=TerminalCache(settings.terminal_cache_s),
        risk=risk_engine(settings, handle.store),
        metrics=metrics,
    )
    if metrics is not None:
        for link in links.by_name.values():
            link.observe_round_trip = metrics.issuer_observer(link.name)
        handle.store.observe_commit = metrics.commit_seconds.observe
    links.start()
    saf.start()
    if services.risk is not None:
        services.risk.start_pruning()
    # transactions a dead host left pending: looked for now (a restart) and on a timer (another node's)
    recovery = InDoubtRecovery(handle.store, saf, settings.in_doubt_after_s, settings.recovery_interval_s)
    recovery.start()
    server = PosServer(services, timezone=settings.timezone, tls=tls)
    address = await server.start(settings.listen_host, settings.pos_port)
    return HostRuntime(services=services, server=server, address=address, recovery=recovery)
