"""Clearing and settlement: ledger (append-only), clearing runs and entries, payouts, reconciliation reports

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

APPEND_ONLY = ("ledger_entries", "ledger_postings")


def _append_only_triggers() -> None:
    """The journal refuses UPDATE and DELETE: a correction is a new entry."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in APPEND_ONLY:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
    elif dialect == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION posgate_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql"
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION posgate_append_only()"
            )


def upgrade() -> None:
    op.create_table(
        "clearing_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clearing_date", sa.Date(), nullable=False),
        sa.Column("cut_off_local", sa.String(length=8), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("cleared_count", sa.Integer(), nullable=False),
        sa.Column("adjusted_count", sa.Integer(), nullable=False),
        sa.Column("pending_count", sa.Integer(), nullable=False),
        sa.Column("postings_count", sa.Integer(), nullable=False),
        sa.Column("sales_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunds_fen", sa.BigInteger(), nullable=False),
        sa.Column("adjusted_fen", sa.BigInteger(), nullable=False),
        sa.Column("mdr_fen", sa.BigInteger(), nullable=False),
        sa.Column("interchange_fen", sa.BigInteger(), nullable=False),
        sa.Column("network_fen", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("clearing_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clearing_runs_clearing_date"), ["clearing_date"], unique=False)

    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=96), nullable=False),
        sa.Column("type", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=4), nullable=False),
        sa.Column("mid", sa.String(length=15), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("surcharge_fen", sa.BigInteger(), nullable=False),
        sa.Column("net_fen", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=True),
        sa.Column("confirmation_file", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payouts_mid"), ["mid"], unique=False)
        batch_op.create_index(batch_op.f("ix_payouts_value_date"), ["value_date"], unique=False)

    op.create_table(
        "recon_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("clearing_date", sa.Date(), nullable=False),
        sa.Column("bank", sa.String(length=64), nullable=True),
        sa.Column("file_name", sa.String(length=200), nullable=True),
        sa.Column("file_sha256", sa.String(length=64), nullable=True),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("missing_on_host", sa.Integer(), nullable=False),
        sa.Column("missing_on_issuer", sa.Integer(), nullable=False),
        sa.Column("amount_mismatch", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("recon_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recon_reports_clearing_date"), ["clearing_date"], unique=False)

    op.create_table(
        "ledger_balances",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("debit_fen", sa.BigInteger(), nullable=False),
        sa.Column("credit_fen", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
        ),
        sa.PrimaryKeyConstraint("account_id", "value_date"),
    )
    op.create_table(
        "recon_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("rrn", sa.String(length=12), nullable=True),
        sa.Column("stan", sa.String(length=6), nullable=True),
        sa.Column("issuer_amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("host_amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["recon_reports.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("recon_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recon_lines_report_id"), ["report_id"], unique=False)

    op.create_table(
        "clearing_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("transaction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("adjusts_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("clearing_date", sa.Date(), nullable=False),
        sa.Column("mid", sa.String(length=15), nullable=False),
        sa.Column("issuer_name", sa.String(length=64), nullable=True),
        sa.Column("card_kind", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("mdr_fen", sa.BigInteger(), nullable=False),
        sa.Column("interchange_fen", sa.BigInteger(), nullable=False),
        sa.Column("network_fen", sa.BigInteger(), nullable=False),
        sa.Column("network_issuer_fen", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["adjusts_id"],
            ["transactions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["clearing_runs.id"],
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["transactions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("transaction_id"),
    )
    with op.batch_alter_table("clearing_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clearing_entries_adjusts_id"), ["adjusts_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_clearing_entries_clearing_date"), ["clearing_date"], unique=False
        )

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("transaction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("payout_id", sa.Integer(), nullable=True),
        sa.Column("memo", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["payout_id"],
            ["payouts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["transactions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_table(
        "ledger_postings",
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("line_no", sa.SmallInteger(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["ledger_entries.id"],
        ),
        sa.PrimaryKeyConstraint("entry_id", "line_no"),
        sqlite_with_rowid=False,
    )
    _append_only_triggers()


def downgrade() -> None:
    op.drop_table("ledger_postings")
    op.drop_table("ledger_entries")
    with op.batch_alter_table("clearing_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clearing_entries_clearing_date"))
        batch_op.drop_index(batch_op.f("ix_clearing_entries_adjusts_id"))

    op.drop_table("clearing_entries")
    with op.batch_alter_table("recon_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recon_lines_report_id"))

    op.drop_table("recon_lines")
    op.drop_table("ledger_balances")
    with op.batch_alter_table("recon_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recon_reports_clearing_date"))

    op.drop_table("recon_reports")
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payouts_value_date"))
        batch_op.drop_index(batch_op.f("ix_payouts_mid"))

    op.drop_table("payouts")
    op.drop_table("ledger_accounts")
    with op.batch_alter_table("clearing_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clearing_runs_clearing_date"))

    op.drop_table("clearing_runs")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS posgate_append_only()")
