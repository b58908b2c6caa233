"""Models of wallet payments (issue 12): wallet orders beside the card transactions, their refunds, and the
notifications applied — the durable replay record that every host node shares (`wallets.orders`).

Money is fen; times are naive UTC. A payment code is never stored whole: `code_masked` is its prefix and last
four digits (`codes.mask_code`).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from posgate.store.base import Base


class WalletOrder(Base):
    """One wallet payment: a merchant-presented order (`flow` = `qr`) or a scanned payment code (`scan`).
    `state` follows `wallets.orderstate`; `refunded_fen` counts refunds reserved or done (never above
    `amount_fen`)."""

    __tablename__ = "wallet_orders"
    __table_args__ = (
        UniqueConstraint("tid", "idempotency_key", name="uq_wallet_orders_idempotency"),
        Index("ix_wallet_orders_state_expires", "state", "expires_at"),
        Index("ix_wallet_orders_created", "created_at"),
        Index("ix_wallet_orders_updated", "updated_at"),  # the KPI rollup's changed days
    )

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # our out_trade_no
    provider: Mapped[str] = mapped_column(String(10))  # wechat | alipay | unionpay
    flow: Mapped[str] = mapped_column(String(4))  # qr | scan
    mid: Mapped[str] = mapped_column(String(15))
    tid: Mapped[str] = mapped_column(String(8))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(8))
    provider_state: Mapped[str | None] = mapped_column(String(24), nullable=True)
    trade_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    qr_payload: Mapped[str | None] = mapped_column(String(512), nullable=True)
    code_masked: Mapped[str | None] = mapped_column(String(24), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failure: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    paid_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)


class WalletRefund(Base):
    """A refund of a wallet order: `pending` (reserved in the order's `refunded_fen`, asked of the provider),
    `succeeded`, `failed` (its reservation released) or `unknown` (no answer: reserved until resolved)."""

    __tablename__ = "wallet_refunds"
    __table_args__ = (
        UniqueConstraint("order_id", "idempotency_key", name="uq_wallet_refunds_idempotency"),
        Index("ix_wallet_refunds_updated", "updated_at"),  # the KPI rollup's changed days
    )

    refund_no: Mapped[str] = mapped_column(String(32), primary_key=True)  # our out_refund_no
    order_id: Mapped[str] = mapped_column(ForeignKey("wallet_orders.order_id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(10))
    provider_refund_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)


class WalletNotificationSeen(Base):
    """A verified provider notification, recorded in the unit of work that applies it: a second delivery of
    the same event (a retry, a replay inside the time window, another node) finds its row and applies
    nothing. Rows older than twice the window are pruned (older notifications are refused as stale)."""

    __tablename__ = "wallet_notifications"

    provider: Mapped[str] = mapped_column(String(10), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # payment | refund
    order_id: Mapped[str] = mapped_column(String(32))
    sent_at: Mapped[dt.datetime] = mapped_column(DateTime)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # applied | unchanged | unknown_order | mismatch


class WalletSubMerchant(Base):
    """A merchant's sub-merchant id at a wallet provider (WeChat `sub_mchid`, Alipay `smid`, UnionPay
    `merId`), allocated when onboarding approves the merchant."""

    __tablename__ = "wallet_sub_merchants"
    __table_args__ = (UniqueConstraint("provider", "sub_merchant_id", name="uq_wallet_sub_merchants_id"),)

    mid: Mapped[str] = mapped_column(String(15), primary_key=True)
    provider: Mapped[str] = mapped_column(String(10), primary_key=True)
    sub_merchant_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


__all__ = ["WalletNotificationSeen", "WalletOrder", "WalletRefund", "WalletSubMerchant"]
