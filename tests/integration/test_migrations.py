"""Alembic migrations upgrade an empty database to the models' schema and downgrade back, on SQLite and
PostgreSQL; the models and the newest migration agree (no pending autogenerate diff)."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from posgate.store.db import alembic_config, make_engine, migrate
from posgate.store.schema import metadata


def test_migrations_reach_the_models_schema_and_go_back(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        assert {"transactions", "saf_entries", "keys", "sim_cards"} <= set(inspect(engine).get_table_names())
        command.downgrade(alembic_config(engine), "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate(engine)  # and up again
    finally:
        engine.dispose()
