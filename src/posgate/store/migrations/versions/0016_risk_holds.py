"""Risk disposal: settlement holds (a held merchant is left out of payouts until released) and the
terminal's reported location (field 59, `lat,lon`) kept with each transaction

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settlement_holds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("mid", sa.String(15), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("rule", sa.String(64), nullable=True),
        sa.Column("rule_version", sa.String(64), nullable=True),
        sa.Column("released_at", sa.DateTime(), nullable=True),
        sa.Column("released_by", sa.String(64), nullable=True),
        sa.Column("release_note", sa.String(200), nullable=True),
    )
    op.create_index("ix_settlement_holds_mid", "settlement_holds", ["mid", "released_at"])
    with op.batch_alter_table("transactions") as batch_op:
        batch_op.add_column(sa.Column("location", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transactions") as batch_op:
        batch_op.drop_column("location")
    op.drop_index("ix_settlement_holds_mid", table_name="settlement_holds")
    op.drop_table("settlement_holds")
