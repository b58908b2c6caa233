"""Integration fixtures: a migrated store with the settlement examples' merchants, cards and issuers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from posgate.store.db import make_engine, migrate
from posgate.store.runtime import Store
from posgate.tools.clearing_day_factory import DayBuilder, provision_example


@pytest.fixture
def example_store(database_url: str) -> Iterator[Store]:
    """A fresh store (SQLite and PostgreSQL) holding `tools.clearing_day_factory`'s example merchants and
    cards."""
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=1, inline=True)
    with DayBuilder().writing(store) as b:
        provision_example(b)
    yield store
    store.close()
