"""Wallet orders in the KPI rollups: the rollup job finds the wallet orders and refunds changed since its
last run by `updated_at`

Revision ID: 0018
Revises: 0017
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_wallet_orders_updated", "wallet_orders", ["updated_at"])
    op.create_index("ix_wallet_refunds_updated", "wallet_refunds", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_wallet_refunds_updated", table_name="wallet_refunds")
    op.drop_index("ix_wallet_orders_updated", table_name="wallet_orders")
