"""Risk control: sliding-window counters and distinct-count members; a terminal's registered location; the
risk score and decision stored with a transaction

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "risk_counters",
        sa.Column("key_kind", sa.String(16), primary_key=True),
        sa.Column("key_value", sa.String(96), primary_key=True),
        sa.Column("resolution", sa.String(1), primary_key=True),
        sa.Column("bucket_at", sa.DateTime(), primary_key=True),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in (
                "count",
                "approved",
                "amount",
                "declined",
                "refunds",
                "refund_amount",
                "wrong_pin",
                "stolen",
            )
        ),
    )
    op.create_table(
        "risk_seen",
        sa.Column("key_kind", sa.String(24), primary_key=True),
        sa.Column("key_value", sa.String(96), primary_key=True),
        sa.Column("member", sa.String(96), primary_key=True),
        sa.Column("last_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_risk_seen_key_last", "risk_seen", ["key_kind", "key_value", "last_at"])
    with op.batch_alter_table("terminals") as batch:
        batch.add_column(sa.Column("location", sa.String(40), nullable=True))
    with op.batch_alter_table("transactions") as batch:
        batch.add_column(sa.Column("risk_score", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("risk", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.drop_column("risk")
        batch.drop_column("risk_score")
    with op.batch_alter_table("terminals") as batch:
        batch.drop_column("location")
    op.drop_index("ix_risk_seen_key_last", table_name="risk_seen")
    op.drop_table("risk_seen")
    op.drop_table("risk_counters")
