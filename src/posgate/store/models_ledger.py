"""Models of clearing and settlement: ledger accounts and postings, clearing runs, payouts, reconciliation
reports (issue: clearing)."""

from __future__ import annotations

from posgate.store.models import Base  # noqa: F401
