"""Shared fixtures: a fresh database per test on SQLite (a file in tmp_path) or on the real PostgreSQL
server (`POSGATE_TEST_PG_URL`, default postgresql+psycopg://postgres@127.0.0.1:5432/test): each test gets
its own database, created and dropped around it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

# every `posgate up` / `posgate host` a test starts as a child process: its operations port on any free port,
# never the fixed default (9180), which another test or another worktree's suite may hold at the same time
os.environ.setdefault("POSGATE_OPS_PORT", "0")


@pytest.fixture(autouse=True)
def _list_risk_rules_unless_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that are not about risk send many sales on one demo card within seconds — far faster than any
    shopper — and the default risk rules would rightly decline them (`65`, `59`): they run the list rules
    only (`POSGATE_RISK_RULES=lists`, also for the `posgate` processes they start). Tests marked
    `default_risk_rules` (risk, the demo, `posgate up`, `posgate terminal day`) run the host's real
    default."""
    if request.node.get_closest_marker("default_risk_rules") is None:
        monkeypatch.setenv("POSGATE_RISK_RULES", "lists")


PG_URL = os.environ.get("POSGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_admin():  # type: ignore[no-untyped-def]
    return create_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


@pytest.fixture(scope="session")
def pg_available() -> bool:
    try:
        engine = _pg_admin()
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture
def fresh_pg_database(pg_available: bool) -> Iterator[str]:
    """A brand-new PostgreSQL database for one test; its URL."""
    if not pg_available:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL}")
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}")
    name = f"posgate_t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'posgate.sqlite'}"
    return request.getfixturevalue("fresh_pg_database")
