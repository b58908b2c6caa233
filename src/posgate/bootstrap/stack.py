"""Long-running service sets: `start_all` (host, issuer simulator and console in one process, or any of
them) and their graceful stop. Shared by `posgate up|host|issuer|console|demo` and the end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.api.users import create_api_key, principal_for_api_key
from posgate.bootstrap.host import HostRuntime, start_host
from posgate.bootstrap.keyring_watch import KeyringWatch
from posgate.bootstrap.store import open_store
from posgate.config import Settings
from posgate.errors import ConfigError
from posgate.files import private_file
from posgate.issuer.server import IssuerSimulator
from posgate.ops.metrics import HostMetrics
from posgate.ops.server import OpsEndpoints, OpsServer
from posgate.security import tls_files
from posgate.security.link_tls import simulator_server_context
from posgate.store.models_simulator import SimBank
from posgate.store.runtime import StoreHandle


class Console:
    """The REST API and web console (uvicorn) on the event loop it is started from; over HTTPS when
    `console_tls_cert` and `console_tls_key` are set."""

    def __init__(self, handle: StoreHandle, settings: Settings) -> None:
        import uvicorn

        from posgate.api.app import create_app

        context = console_ssl_context(settings)
        self.scheme = "https" if context is not None else "http"
        self.app = create_app(handle, settings)
        config = uvicorn.Config(
            self.app,
            host=settings.listen_host,
            port=settings.console_port,
            log_level="warning",
            lifespan="off",
            ssl_context_factory=(lambda _config, _default: context) if context is not None else None,
            proxy_headers=False,  # the app believes X-Forwarded-For only from `trusted_proxies`
        )
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> tuple[str, int]:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():  # uvicorn logs the reason and exits (port taken …)
                raise ConfigError(
                    f"the console could not listen on {self.server.config.host}:{self.server.config.port}"
                    " (port in use?): set --console-port / POSGATE_CONSOLE_PORT"
                )
            await asyncio.sleep(0.02)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return host, port

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


@dataclass
class Running:
    """What `start_all` started."""

    handle: StoreHandle
    issuers: IssuerSimulator | None
    host: HostRuntime | None
    console: Console | None = None
    console_address: tuple[str, int] | None = None
    keyring_watch: KeyringWatch | None = None
    wallet_sims: Any = None  # wallets.sim.WalletSimulators (posgate up)
    wallets: Any = None  # wallets.runtime.WalletRuntime (with the console)
    ops: OpsServer | None = None  # /healthz, /readyz, /metrics (a host with `ops`)
    ops_address: tuple[str, int] | None = None

    @property
    def console_url(self) -> str | None:
        """The console's base URL (`https://…/` with console TLS), None when it is not running."""
        if self.console is None or self.console_address is None:
            return None
        host, port = self.console_address
        return f"{self.console.scheme}://{host}:{port}/"

    @property
    def pos_address(self) -> tuple[str, int]:
        assert self.host is not None
        return self.host.address

    async def stop(self) -> None:
        if self.ops is not None:
            await self.ops.stop()
        if self.keyring_watch is not None:
            await self.keyring_watch.stop()
        if self.console is not None:
            await self.console.stop()
        if self.wallets is not None:
            await self.wallets.stop()
        if self.wallet_sims is not None:
            await self.wallet_sims.stop()
        if self.host is not None:
            await self.host.stop()
        if self.issuers is not None:
            await self.issuers.stop()
        self.handle.store.close()


def sim_bank_ports(settings: Settings, bank_names: list[str]) -> dict[str, int] | None:
    """`--issuer-ports 6001,6002` maps onto the simulator's banks in name order."""
    if not settings.issuer_ports:
        return None
    return dict(zip(sorted(bank_names), settings.issuer_ports, strict=False))


def simulator_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The issuer simulator's TLS context (`issuer_sim_tls_*`), or None for plain TCP."""
    if settings.issuer_sim_tls_cert is None or settings.issuer_sim_tls_key is None:
        return None
    return simulator_server_context(
        settings.issuer_sim_tls_cert, settings.issuer_sim_tls_key, settings.issuer_sim_tls_client_ca
    )


def console_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The console's TLS context (`console_tls_*`), or None for plain HTTP."""
    if settings.console_tls_cert is None or settings.console_tls_key is None:
        return None
    return tls_files.server_context(
        settings.console_tls_cert, settings.console_tls_key, ("console_tls_cert", "console_tls_key")
    )


def simulated_bank_names(session: Session) -> list[str]:
    return list(session.scalars(select(SimBank.name)))


async def start_wallets(running: Running, settings: Settings, simulators: bool) -> None:
    """Wallet payments on this node: with `simulators` (posgate up) the three provider simulators, the demo
    acquirer's accounts registered with them; then the order service behind the console's `/api/qr/…`
    when provider accounts are stored (a console alone reaches the simulators at `wallet_sim_ports`)."""
    from posgate.wallets.codes import PROVIDERS
    from posgate.wallets.runtime import WalletRuntime, provider_urls, register_demo_accounts

    assert running.console is not None and running.console_url is not None
    notify_base = running.console_url.rstrip("/")
    if simulators:
        from posgate.wallets.sim import WalletSimulators

        sims = WalletSimulators(
            host=settings.listen_host,
            ports=dict(zip(PROVIDERS, settings.wallet_sim_ports, strict=True)),
            key_dir=settings.data_dir / "wallet-sim",
        )
        try:
            await sims.start()
        except OSError as exc:
            raise ConfigError(f"{exc}: set POSGATE_WALLET_SIM_PORTS (0,0,0: any free ports)") from None
        running.wallet_sims = sims
        await register_demo_accounts(running.handle, sims, notify_base)
        urls = sims.urls() | settings.wallet_urls
    else:
        urls = provider_urls(settings)
    runtime = WalletRuntime(running.handle, urls, notify_base, settings.wallet_timeout_s)
    if runtime.providers:
        runtime.start()
        running.wallets = runtime
        running.console.app.state.ctx.wallets = runtime
    else:
        await runtime.stop()


async def start_all(
    settings: Settings,
    host: bool = True,
    issuers: bool = True,
    console: bool = False,
    wallet_sims: bool = False,
    ops: bool = False,
) -> Running:
    """Start what is asked for on one event loop; `ops`: the host's operations port (`ops_host`,
    `ops_port`) with its metrics."""
    handle = await asyncio.to_thread(open_store, settings)
    simulator = None
    ports: dict[str, int] | None = None
    if issuers:
        simulator = IssuerSimulator(
            handle.store, handle.vault, host=settings.listen_host, ssl=simulator_ssl_context(settings)
        )
        names = await simulator.bank_names()
        await simulator.start(ports=sim_bank_ports(settings, names))
        ports = dict(simulator.ports)
    elif "issuer_ports" in settings.model_fields_set:
        # host alone, told where the simulator listens: its banks' routes take those ports (name order)
        ports = sim_bank_ports(settings, await handle.store.run(simulated_bank_names))
    metrics = HostMetrics() if ops and host else None
    runtime = await start_host(settings, handle, issuer_ports=ports, metrics=metrics) if host else None
    if runtime is not None:
        await runtime.services.links.wait_up(settings.issuer_connect_timeout_s * 2)
    watch = KeyringWatch(settings.master_key_path, handle.vault, settings.master_key_reload_s)
    watch.start()  # a master key rotation reaches this process without a restart
    running = Running(handle=handle, issuers=simulator, host=runtime, keyring_watch=watch)
    if metrics is not None and runtime is not None:
        endpoints = OpsEndpoints(handle.store, runtime.services.links, metrics, settings.ops_saf_ready_max)
        running.ops = OpsServer(endpoints)
        try:
            running.ops_address = await running.ops.start(settings.ops_host, settings.ops_port)
        except OSError as exc:
            await running.stop()
            raise ConfigError(
                f"the operations port could not listen on {settings.ops_host}:{settings.ops_port}"
                f" ({exc.strerror}): set POSGATE_OPS_PORT (0: any free port) or POSGATE_OPS_ENABLED=false"
            ) from None
    if console:
        running.console = Console(handle, settings)
        running.console_address = await running.console.start()
        await start_wallets(running, settings, simulators=wallet_sims)
    return running


async def serve_forever(running: Running) -> None:
    """Block until SIGINT/SIGTERM, then stop cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()


def cashier_api_key(handle: StoreHandle, data_dir: Path) -> str:
    """The cashier API key of this data dir: read from `<data dir>/cashier-api-key`, or created (role
    `operator`) and written there (0600) for the terminal commands."""
    from posgate.wallets.runtime import CASHIER_KEY_FILE

    path = data_dir / CASHIER_KEY_FILE
    if path.exists():
        key = path.read_text().strip()
        if handle.store.transact(lambda s: principal_for_api_key(s, key)) is not None:
            return key
    _, key = handle.store.transact(
        lambda s: create_api_key(s, "cashier (posgate up)", "operator", "posgate up")
    )
    private_file(path)
    path.write_text(key + "\n")
    return key
