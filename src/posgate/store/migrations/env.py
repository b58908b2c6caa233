"""Alembic environment: the engine comes from `posgate.store.db.alembic_config` (never from an ini file)."""

from alembic import context

from posgate.store.schema import metadata

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
