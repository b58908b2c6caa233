"""KPI rollup summed over merchants (kpi_issuer_daily) for pages without a merchant filter, and the
(mid, day) index of kpi_daily for those with one

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kpi_issuer_daily",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("issuer_name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("response_code", sa.String(2), nullable=False),
        sa.Column("card_kind", sa.String(10), nullable=False),
        sa.Column("channel", sa.String(12), nullable=False),
        sa.Column("txn_count", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_kpi_issuer_daily_day", "kpi_issuer_daily", ["day"])
    op.create_index("ix_kpi_daily_mid_day", "kpi_daily", ["mid", "day"])
    # the rollups are rebuilt in full by the next run (the new table starts empty)
    op.execute("DELETE FROM kpi_refresh_state")


def downgrade() -> None:
    op.drop_index("ix_kpi_daily_mid_day", table_name="kpi_daily")
    op.drop_index("ix_kpi_issuer_daily_day", table_name="kpi_issuer_daily")
    op.drop_table("kpi_issuer_daily")
