"""The whole schema: every models module imported, so `metadata` holds every table (what the Alembic
migrations are checked against, and what key re-encryption walks)."""

from __future__ import annotations

from posgate.store import (  # noqa: F401 (imported for their tables)
    models,
    models_kpi,
    models_ledger,
    models_onboarding,
    models_risk,
    models_simulator,
    models_wallet,
)
from posgate.store.base import Base

metadata = Base.metadata
