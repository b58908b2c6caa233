"""Risk counters: an index on (resolution, bucket_at) for the periodic prune's range delete

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_risk_counters_prune", "risk_counters", ["resolution", "bucket_at"])


def downgrade() -> None:
    op.drop_index("ix_risk_counters_prune", table_name="risk_counters")
