"""Risk alerts: what a rule asked a risk officer to look at (reviews, alerts, proposed holds and suspensions)

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "risk_alerts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("rule_version", sa.String(64), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("txn_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("tid", sa.String(8), nullable=False),
        sa.Column("mid", sa.String(15), nullable=False),
        sa.Column("pan_masked", sa.String(19), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("response_code", sa.String(2), nullable=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("assigned_to", sa.String(64), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
    )
    op.create_index("ix_risk_alerts_state_created", "risk_alerts", ["state", "created_at"])
    op.create_index("ix_risk_alerts_txn_id", "risk_alerts", ["txn_id"])
    op.create_index("ix_risk_alerts_tid", "risk_alerts", ["tid"])
    op.create_index("ix_risk_alerts_mid", "risk_alerts", ["mid"])


def downgrade() -> None:
    for name in (
        "ix_risk_alerts_mid",
        "ix_risk_alerts_tid",
        "ix_risk_alerts_txn_id",
        "ix_risk_alerts_state_created",
    ):
        op.drop_index(name, table_name="risk_alerts")
    op.drop_table("risk_alerts")
