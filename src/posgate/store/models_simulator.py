"""SQLAlchemy models of the issuer simulator's books (banks, accounts, cards, authorizations): the simulated
issuers' side, apart from the acquirer's records (`models`). Same database, same metadata (`schema`).

Card data at rest as for the acquirer: a PAN only as AES-GCM ciphertext + keyed hash + masked form; a PIN
only as its IBM 3624 offset. Money is integer fen.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from posgate.store.base import Base, utcnow
from posgate.txnset import TxnState


class SimBank(Base):
    __tablename__ = "sim_banks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    bins: Mapped[str] = mapped_column(Text)
    port: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    mac_enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class SimAccount(Base):
    __tablename__ = "sim_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bank: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # debit | credit
    currency: Mapped[str] = mapped_column(String(3), default="156")
    balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # debit: funds; credit: used (owed)
    credit_limit_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    held_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class SimCard(Base):
    __tablename__ = "sim_cards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bank: Mapped[str] = mapped_column(String(64), index=True)
    pan_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    pan_hash: Mapped[str] = mapped_column(String(64), unique=True)
    pan_masked: Mapped[str] = mapped_column(String(19))
    expiry: Mapped[str] = mapped_column(String(4))
    service_code: Mapped[str] = mapped_column(String(3))
    psn: Mapped[str | None] = mapped_column(String(3), nullable=True)
    state: Mapped[str] = mapped_column(String(10), default="active")  # active | lost | stolen | blocked
    pin_offset: Mapped[str] = mapped_column(String(12))
    pin_failures: Mapped[int] = mapped_column(Integer, default=0)
    account_id: Mapped[int] = mapped_column(ForeignKey("sim_accounts.id"))


class SimAuthorization(Base):
    """What the issuer simulator approved; a reversal finds it by (bank, acquirer, STAN, date-time, MTI)."""

    __tablename__ = "sim_authorizations"
    __table_args__ = (
        UniqueConstraint(
            "bank", "acquirer_id", "stan", "transmission_dt", "mti", name="uq_sim_auth_original"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    bank: Mapped[str] = mapped_column(String(64))
    acquirer_id: Mapped[str] = mapped_column(String(11))
    stan: Mapped[str] = mapped_column(String(6))
    transmission_dt: Mapped[str] = mapped_column(String(10))
    mti: Mapped[str] = mapped_column(String(4))
    processing_code: Mapped[str] = mapped_column(String(6))
    rrn: Mapped[str | None] = mapped_column(String(12), nullable=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("sim_accounts.id"), nullable=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    effect: Mapped[str] = mapped_column(String(8), default="none")  # none | debit | hold | credit
    state: Mapped[str] = mapped_column(
        String(10), default=TxnState.APPROVED
    )  # approved | declined | reversed
    response_code: Mapped[str] = mapped_column(String(2))
    auth_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    reversed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
