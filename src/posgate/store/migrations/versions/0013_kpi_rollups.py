"""KPI rollups (kpi_daily, kpi_terminal_daily, kpi_refresh_state), the index the refresh job scans
(transactions.updated_at), and the partner-bank scope of users and API keys (issuer)

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "kpi_daily",
        _id(),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("mid", sa.String(15), nullable=False),
        sa.Column("issuer_name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("response_code", sa.String(2), nullable=False),
        sa.Column("card_kind", sa.String(10), nullable=False),
        sa.Column("channel", sa.String(12), nullable=False),
        sa.Column("txn_count", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_kpi_daily_day", "kpi_daily", ["day"])
    op.create_table(
        "kpi_terminal_daily",
        _id(),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("tid", sa.String(8), nullable=False),
        sa.Column("mid", sa.String(15), nullable=False),
        sa.Column("issuer_name", sa.String(64), nullable=False),
        sa.Column("txn_count", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_kpi_terminal_daily_day", "kpi_terminal_daily", ["day"])
    op.create_index("ix_kpi_terminal_daily_tid", "kpi_terminal_daily", ["tid"])
    op.create_table(
        "kpi_refresh_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("built_to", sa.DateTime(), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_transactions_updated_at", "transactions", ["updated_at"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("issuer", sa.String(64), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("issuer", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("issuer")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("issuer")
    op.drop_index("ix_transactions_updated_at", table_name="transactions")
    op.drop_table("kpi_refresh_state")
    for name in ("ix_kpi_terminal_daily_tid", "ix_kpi_terminal_daily_day"):
        op.drop_index(name, table_name="kpi_terminal_daily")
    op.drop_table("kpi_terminal_daily")
    op.drop_index("ix_kpi_daily_day", table_name="kpi_daily")
    op.drop_table("kpi_daily")
