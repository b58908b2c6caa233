"""Models of merchant onboarding: applications, their uploads, the audit trail, console users, API keys,
console sessions and the login throttle's counters (the login limits live in the database, never in memory).

Personal data at rest: the applicant's ID number and the settlement card are kept only as a sealed
ciphertext (AES-GCM under the master key's sealing sub-key), a keyed look-up hash and a masked form.
Uploaded photos are files outside the database (`<data_dir>/uploads/<sha256[:2]>/<sha256>.<ext>`); a row
holds their hash, kind, MIME type, size and original name. Times are UTC.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from posgate.store import models as _acquirer  # noqa: F401 (the table its foreign key names)
from posgate.store.base import Base, utcnow

# Application.status: submitted → under_review → approved | rejected | more_info_needed;
#   more_info_needed → submitted (the operator resubmits)


# the labels (AES-GCM associated data) the applicant's sealed fields are sealed under
ID_NUMBER_LABEL = "application/id_number"
CARD_LABEL = "application/settlement_card"


class Application(Base):
    """A merchant's application for a POS terminal, as filed by an operator and decided by a reviewer."""

    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="submitted", index=True)
    applicant_name: Mapped[str] = mapped_column(String(40))
    id_number_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_hash: Mapped[str] = mapped_column(String(64), index=True)
    id_number_masked: Mapped[str] = mapped_column(String(18))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    mobile: Mapped[str] = mapped_column(String(11))
    settlement_card_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    settlement_card_hash: Mapped[str] = mapped_column(String(64), index=True)
    settlement_card_masked: Mapped[str] = mapped_column(String(19))
    settlement_bank: Mapped[str] = mapped_column(String(64))
    shop_name: Mapped[str] = mapped_column(String(60))
    address: Mapped[str] = mapped_column(String(200))
    area_code: Mapped[str] = mapped_column(String(4))
    business_type: Mapped[str] = mapped_column(String(32))
    mcc: Mapped[str] = mapped_column(String(4))
    licence_number: Mapped[str | None] = mapped_column(String(18), nullable=True)
    checks: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of {name, outcome, detail}
    decision_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), nullable=True)
    submitted_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ApplicationUpload(Base):
    """One photo of an application; the bytes are a file named by their SHA-256."""

    __tablename__ = "application_uploads"
    __table_args__ = (UniqueConstraint("application_id", "kind", name="uq_upload_application_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    kind: Mapped[str] = mapped_column(
        String(20)
    )  # id_card_front | id_card_back | storefront | interior | cashier
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    mime: Mapped[str] = mapped_column(String(20))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    original_name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AuditEvent(Base):
    """Who did what to which record, when (`detail` is JSON, never card data, keys or passwords)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_subject", "subject_kind", "subject_ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    subject_kind: Mapped[str] = mapped_column(String(20))  # application | merchant | terminal | user | key
    subject_ref: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="{}")


# User.role: operator | reviewer | risk | finance | admin | bank (a partner bank's user: `issuer` set)
class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    # role bank: the issuer (issuer_routes.name) whose cards alone the user may see
    issuer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ApiKey(Base):
    """A machine's key: only its SHA-256 is stored (the key is shown once, at creation)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    label: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    issuer: Mapped[str | None] = mapped_column(String(64), nullable=True)  # role bank: its one issuer
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class ConsoleSession(Base):
    """A signed-in console user; the cookie carries the signed token whose SHA-256 is `token_hash`."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)


class LoginThrottle(Base):
    """One counter of the console's login limits: `key` names what is counted (a username at an address,
    or an address), `count` the attempts reserved in the window that began at `window_start`. Counted by one
    atomic upsert per attempt, before the password is checked (`api/throttle.py`)."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(DateTime)
    count: Mapped[int] = mapped_column(Integer)
