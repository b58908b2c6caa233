"""Wallet orders in clearing (issue 12): the wallet MDR of a merchant's fee plan, the clearing entry of each
cleared wallet payment and refund, wallet totals of a clearing run, and the wallet sub-merchant ids a merchant
is given at approval

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "merchants", sa.Column("mdr_wallet_ppm", sa.Integer(), nullable=False, server_default="3800")
    )
    op.add_column(
        "clearing_runs", sa.Column("wallet_count", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "clearing_runs", sa.Column("provider_fee_fen", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.create_table(
        "wallet_clearing_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("ref", sa.String(40), nullable=False, unique=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("order_id", sa.String(32), sa.ForeignKey("wallet_orders.order_id"), nullable=False),
        sa.Column("provider", sa.String(10), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("clearing_runs.id"), nullable=False),
        sa.Column("clearing_date", sa.Date(), nullable=False),
        sa.Column("mid", sa.String(15), nullable=False),
        sa.Column("tid", sa.String(8), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("mdr_fen", sa.BigInteger(), nullable=False),
        sa.Column("provider_fee_fen", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_wallet_clearing_entries_date", "wallet_clearing_entries", ["clearing_date"])
    op.create_index("ix_wallet_clearing_entries_order", "wallet_clearing_entries", ["order_id"])
    op.create_table(
        "wallet_sub_merchants",
        sa.Column("mid", sa.String(15), primary_key=True),
        sa.Column("provider", sa.String(10), primary_key=True),
        sa.Column("sub_merchant_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("provider", "sub_merchant_id", name="uq_wallet_sub_merchants_id"),
    )


def downgrade() -> None:
    op.drop_table("wallet_sub_merchants")
    op.drop_index("ix_wallet_clearing_entries_order", table_name="wallet_clearing_entries")
    op.drop_index("ix_wallet_clearing_entries_date", table_name="wallet_clearing_entries")
    op.drop_table("wallet_clearing_entries")
    with op.batch_alter_table("clearing_runs") as batch:
        batch.drop_column("provider_fee_fen")
        batch.drop_column("wallet_count")
    with op.batch_alter_table("merchants") as batch:
        batch.drop_column("mdr_wallet_ppm")
