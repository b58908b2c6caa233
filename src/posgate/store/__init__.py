"""The store: SQLAlchemy models, engine set-up (SQLite WAL or PostgreSQL), Alembic migrations,
repositories."""
