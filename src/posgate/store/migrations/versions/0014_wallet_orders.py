"""Wallet orders, their refunds and the notifications applied (issue 12)

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wallet_orders",
        sa.Column("order_id", sa.String(32), primary_key=True),
        sa.Column("provider", sa.String(10), nullable=False),
        sa.Column("flow", sa.String(4), nullable=False),
        sa.Column("mid", sa.String(15), nullable=False),
        sa.Column("tid", sa.String(8), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("provider_state", sa.String(24), nullable=True),
        sa.Column("trade_no", sa.String(64), nullable=True),
        sa.Column("qr_payload", sa.String(512), nullable=True),
        sa.Column("code_masked", sa.String(24), nullable=True),
        sa.Column("idempotency_key", sa.String(64), nullable=True),
        sa.Column("failure", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("paid_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("tid", "idempotency_key", name="uq_wallet_orders_idempotency"),
    )
    op.create_index("ix_wallet_orders_state_expires", "wallet_orders", ["state", "expires_at"])
    op.create_index("ix_wallet_orders_created", "wallet_orders", ["created_at"])
    op.create_table(
        "wallet_refunds",
        sa.Column("refund_no", sa.String(32), primary_key=True),
        sa.Column("order_id", sa.String(32), sa.ForeignKey("wallet_orders.order_id"), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("provider_refund_id", sa.String(64), nullable=True),
        sa.Column("idempotency_key", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("order_id", "idempotency_key", name="uq_wallet_refunds_idempotency"),
    )
    op.create_index("ix_wallet_refunds_order_id", "wallet_refunds", ["order_id"])
    op.create_table(
        "wallet_notifications",
        sa.Column("provider", sa.String(10), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
    )
    op.create_index("ix_wallet_notifications_received_at", "wallet_notifications", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_wallet_notifications_received_at", table_name="wallet_notifications")
    op.drop_table("wallet_notifications")
    op.drop_index("ix_wallet_refunds_order_id", table_name="wallet_refunds")
    op.drop_table("wallet_refunds")
    op.drop_index("ix_wallet_orders_created", table_name="wallet_orders")
    op.drop_index("ix_wallet_orders_state_expires", table_name="wallet_orders")
    op.drop_table("wallet_orders")
