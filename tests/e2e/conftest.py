"""End-to-end fixtures: the whole stack (issuer simulator + acquirer host) on loopback ports chosen by the
OS, over a real store, and terminal clients talking to it over real TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from posgate.bootstrap.stack import Running, start_all
from posgate.config import Settings
from posgate.logs import configure_logging
from posgate.terminal import TerminalClient, demo_terminal_state


def stack_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "pos_port": 0,
        "issuer_ports": [0, 0],
        "issuer_timeout_s": 1.0,
        "issuer_connect_timeout_s": 1.0,
        "saf_retry_s": 0.3,
        "reconnect_max_s": 0.5,
        "env": "test",
        "terminal_cache_s": 0.0,  # tests change statuses in the store directly; see test_multi_node.py
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def stack(tmp_path: Path, database_url: str) -> AsyncIterator[Running]:
    settings = stack_settings(tmp_path, database_url)
    configure_logging(settings.data_dir, "INFO", console=False)
    running = await start_all(settings)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def terminal_factory(stack: Running) -> Callable[[], TerminalClient]:
    host, port = stack.pos_address

    def make() -> TerminalClient:
        return TerminalClient(host, port, demo_terminal_state(), timeout_s=5.0)

    return make


@pytest.fixture
async def terminal(terminal_factory: Callable[[], TerminalClient]) -> AsyncIterator[TerminalClient]:
    client = terminal_factory()
    await client.connect()
    try:
        result = await client.sign_in()
        assert result.approved, result
        yield client
    finally:
        await client.close()
