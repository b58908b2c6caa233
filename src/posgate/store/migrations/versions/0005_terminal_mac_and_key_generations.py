"""Terminals: MAC algorithm (existing terminals keep CUP ECB), the pending working-key generation, the
sign-in rate-limit window

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("terminals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mac_algorithm", sa.String(length=8), server_default="cup_ecb", nullable=False)
        )
        batch_op.add_column(sa.Column("pending_period", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pending_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("sign_in_window_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("sign_in_count", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.execute("DELETE FROM keys WHERE owner_kind = 'terminal' AND purpose LIKE '%.next'")
    with op.batch_alter_table("terminals", schema=None) as batch_op:
        batch_op.drop_column("sign_in_count")
        batch_op.drop_column("sign_in_window_at")
        batch_op.drop_column("pending_at")
        batch_op.drop_column("pending_period")
        batch_op.drop_column("mac_algorithm")
