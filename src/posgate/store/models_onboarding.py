"""Models of merchant onboarding: applications, uploads, review audit, users and API keys."""

from __future__ import annotations

from posgate.store.models import Base  # noqa: F401
