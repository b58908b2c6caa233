"""The KPI rollups (issue 13, docs/kpi.md): per business day, the transactions grouped by what the KPIs filter
and break down on, and per terminal the approved purchases; plus the refresh job's watermark. Rebuilt from
`transactions` by `posgate.kpi.rollup.refresh` — never written by the host's request path.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from posgate.store.base import Base


class KpiDaily(Base):
    """One business day's recorded transactions of one (merchant, issuer, kind, response code, card kind,
    channel): their count and the sum of their amounts. `channel` is `posgate.kpi.definitions.channel_of`
    of field 22; empty strings stand for unknown (NULL in `transactions`)."""

    __tablename__ = "kpi_daily"
    __table_args__ = (Index("ix_kpi_daily_mid_day", "mid", "day"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    mid: Mapped[str] = mapped_column(String(15))
    issuer_name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    response_code: Mapped[str] = mapped_column(String(2))
    card_kind: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(12))
    txn_count: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class KpiIssuerDaily(Base):
    """`kpi_daily` summed over merchants: what a page without a merchant or MCC filter reads (a few hundred
    rows a day, however many merchants)."""

    __tablename__ = "kpi_issuer_daily"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    issuer_name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    response_code: Mapped[str] = mapped_column(String(2))
    card_kind: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(12))
    txn_count: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class KpiTerminalDaily(Base):
    """One business day's approved purchases (`definitions.PURCHASE_KINDS`, response 00) of one terminal
    with one issuer's cards: what active terminals, activation and merchant churn count."""

    __tablename__ = "kpi_terminal_daily"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    tid: Mapped[str] = mapped_column(String(8), index=True)
    mid: Mapped[str] = mapped_column(String(15))
    issuer_name: Mapped[str] = mapped_column(String(64))
    txn_count: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class KpiRefreshState(Base):
    """Single row: up to when (UTC, `transactions.updated_at`) the rollups are built, and when the job ran."""

    __tablename__ = "kpi_refresh_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    built_to: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    refreshed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
