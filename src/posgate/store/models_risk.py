"""Models of risk control's state (issue 11): the sliding-window counters and the distinct-count members the
rules' aggregates are read from (`risk.aggregates`, `risk.counters_store`). Shared by every host node through
the store, so they survive a restart and count one card's sales on any node together.

Card keys are the store's keyed PAN hash (`pan_hash`), never a PAN. Times are naive UTC; money is fen.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from posgate.store.base import Base


class RiskCounter(Base):
    """One key's counts in one time bucket (`resolution` m / h / d); writers add to it with an upsert."""

    __tablename__ = "risk_counters"
    __table_args__ = (Index("ix_risk_counters_prune", "resolution", "bucket_at"),)  # prune's range delete

    # key_kind card | card_merchant | terminal | merchant | bin | merchant_hour;
    # key_value pan hash | pan hash:mid | tid | mid | bin | mid:HH
    key_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key_value: Mapped[str] = mapped_column(String(96), primary_key=True)
    resolution: Mapped[str] = mapped_column(String(1), primary_key=True)
    bucket_at: Mapped[dt.datetime] = mapped_column(DateTime, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    approved: Mapped[int] = mapped_column(BigInteger, default=0)
    amount: Mapped[int] = mapped_column(BigInteger, default=0)  # fen
    declined: Mapped[int] = mapped_column(BigInteger, default=0)
    refunds: Mapped[int] = mapped_column(BigInteger, default=0)
    refund_amount: Mapped[int] = mapped_column(BigInteger, default=0)  # fen
    wrong_pin: Mapped[int] = mapped_column(BigInteger, default=0)
    stolen: Mapped[int] = mapped_column(BigInteger, default=0)


class RiskSeen(Base):
    """A member (card, merchant, terminal) of a key, and when it was last seen: distinct counts per window."""

    __tablename__ = "risk_seen"
    __table_args__ = (Index("ix_risk_seen_key_last", "key_kind", "key_value", "last_at"),)

    key_kind: Mapped[str] = mapped_column(String(24), primary_key=True)  # e.g. terminal.card
    key_value: Mapped[str] = mapped_column(String(96), primary_key=True)
    member: Mapped[str] = mapped_column(String(96), primary_key=True)
    last_at: Mapped[dt.datetime] = mapped_column(DateTime)


class RiskListEntry(Base):
    """One entry of a risk list (issue 11): a card (by PAN hash, with its masked form), terminal, merchant or
    BIN on the block, allow or watch list, with its reason and optional expiry. Removing an entry keeps the
    row (`removed_at`): the lists as they were at any time can be read back. Every change is audited."""

    __tablename__ = "risk_list_entries"
    __table_args__ = (Index("ix_risk_list_lookup", "list_kind", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_kind: Mapped[str] = mapped_column(String(10))  # card | terminal | merchant | bin
    action: Mapped[str] = mapped_column(String(8))  # block | allow | watch
    value: Mapped[str] = mapped_column(String(64))  # PAN hash | TID | MID | BIN
    masked: Mapped[str | None] = mapped_column(String(19), nullable=True)  # a card's masked PAN
    reason: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    removed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    removed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RiskAlert(Base):
    """Something a risk officer should look at: a rule that asked for a review or an alert, or proposed a
    hold or a suspension, on one transaction (issue 11). `state`: open → dismissed | confirmed."""

    __tablename__ = "risk_alerts"
    __table_args__ = (Index("ix_risk_alerts_state_created", "state", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    rule: Mapped[str] = mapped_column(String(64))  # the rule id, or "score"
    rule_version: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(20))  # review | alert | hold_settlement | suspend_*
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    txn_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(20))
    tid: Mapped[str] = mapped_column(String(8), index=True)
    mid: Mapped[str] = mapped_column(String(15), index=True)
    pan_masked: Mapped[str | None] = mapped_column(String(19), nullable=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    score: Mapped[int] = mapped_column(Integer)
    response_code: Mapped[str | None] = mapped_column(String(2), nullable=True)
    state: Mapped[str] = mapped_column(String(12), default="open")
    assigned_to: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class SettlementHold(Base):
    """A merchant's settlement held by risk (issue 11): while a hold is active (`released_at` null) the
    merchant is left out of T+1 and D0 payouts — its funds stay in the payable — until an officer releases
    it. Placed by a `hold_settlement` rule (with its alert and rule version) or by an officer."""

    __tablename__ = "settlement_holds"
    __table_args__ = (Index("ix_settlement_holds_mid", "mid", "released_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mid: Mapped[str] = mapped_column(String(15))
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    alert_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rule: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rule_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    released_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    released_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    release_note: Mapped[str | None] = mapped_column(String(200), nullable=True)
