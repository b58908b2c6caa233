"""Risk lists: cards (by PAN hash), terminals, merchants and BINs on the block, allow or watch list

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "risk_list_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("list_kind", sa.String(10), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("masked", sa.String(19), nullable=True),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("removed_at", sa.DateTime(), nullable=True),
        sa.Column("removed_by", sa.String(64), nullable=True),
    )
    op.create_index("ix_risk_list_lookup", "risk_list_entries", ["list_kind", "value"])


def downgrade() -> None:
    op.drop_index("ix_risk_list_lookup", table_name="risk_list_entries")
    op.drop_table("risk_list_entries")
