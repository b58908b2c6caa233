"""POS transaction set: settlement, batch upload, reconciliation, stand-in

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:24:26.241245
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_settlements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tid", sa.String(length=8), nullable=False),
        sa.Column("mid", sa.String(length=15), nullable=False),
        sa.Column("batch_no", sa.String(length=6), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("terminal_totals", sa.String(length=62), nullable=False),
        sa.Column("host_totals", sa.String(length=62), nullable=False),
        sa.Column("result", sa.String(length=12), nullable=False),
        sa.Column("differences", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tid", "batch_no", "business_date", name="uq_settlement_batch"),
    )
    with op.batch_alter_table("batch_settlements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batch_settlements_tid"), ["tid"], unique=False)

    op.create_table(
        "batch_upload_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("settlement_id", sa.Integer(), nullable=False),
        sa.Column("card_org", sa.String(length=2), nullable=False),
        sa.Column("stan", sa.String(length=6), nullable=False),
        sa.Column("pan_hash", sa.String(length=64), nullable=True),
        sa.Column("pan_masked", sa.String(length=19), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("record_type", sa.String(length=3), nullable=False),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["batch_settlements.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("batch_upload_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_batch_upload_records_settlement_id"), ["settlement_id"], unique=False
        )

    op.create_table(
        "reconciliation_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("settlement_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("stan", sa.String(length=6), nullable=False),
        sa.Column("rrn", sa.String(length=12), nullable=True),
        sa.Column("host_amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("terminal_amount_fen", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["batch_settlements.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reconciliation_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reconciliation_items_settlement_id"), ["settlement_id"], unique=False
        )

    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mdr_debit_ppm", sa.Integer(), nullable=False, server_default="5000"))
        batch_op.add_column(sa.Column("mdr_debit_cap_fen", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("mdr_credit_ppm", sa.Integer(), nullable=False, server_default="6000"))
        batch_op.add_column(
            sa.Column("settlement_cycle", sa.String(length=4), nullable=False, server_default="T+1")
        )
        batch_op.add_column(sa.Column("d0_allowed", sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table("issuer_routes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stand_in_max_fen", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("stand_in_card_daily_fen", sa.BigInteger(), nullable=True))

    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("condition_code", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("card_seq", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("card_kind", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("fallback", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("stand_in", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("refunded_fen", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("settlement_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_transactions_settlement", "batch_settlements", ["settlement_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_constraint("fk_transactions_settlement", type_="foreignkey")
        batch_op.drop_column("settlement_id")
        batch_op.drop_column("refunded_fen")
        batch_op.drop_column("stand_in")
        batch_op.drop_column("fallback")
        batch_op.drop_column("card_kind")
        batch_op.drop_column("card_seq")
        batch_op.drop_column("condition_code")

    with op.batch_alter_table("merchants", schema=None) as batch_op:
        for column in (
            "d0_allowed",
            "settlement_cycle",
            "mdr_credit_ppm",
            "mdr_debit_cap_fen",
            "mdr_debit_ppm",
        ):
            batch_op.drop_column(column)

    with op.batch_alter_table("issuer_routes", schema=None) as batch_op:
        batch_op.drop_column("stand_in_card_daily_fen")
        batch_op.drop_column("stand_in_max_fen")

    with op.batch_alter_table("reconciliation_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconciliation_items_settlement_id"))

    op.drop_table("reconciliation_items")
    with op.batch_alter_table("batch_upload_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batch_upload_records_settlement_id"))

    op.drop_table("batch_upload_records")
    with op.batch_alter_table("batch_settlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batch_settlements_tid"))

    op.drop_table("batch_settlements")
