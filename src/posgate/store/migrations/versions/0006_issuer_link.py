"""Issuer link: network STAN counters, a reversal's own STAN and date-time, TLS on issuer routes

Revision ID: 0006
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "network_stan_counters",
        sa.Column("issuer_name", sa.String(length=64), nullable=False),
        sa.Column("taken", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("issuer_name"),
    )
    with op.batch_alter_table("saf_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("network_stan", sa.String(length=6), nullable=True))
        batch_op.add_column(sa.Column("transmission_dt", sa.String(length=10), nullable=True))
    with op.batch_alter_table("issuer_routes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tls", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("tls_ca_file", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("tls_cert_file", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("tls_key_file", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("tls_server_name", sa.String(length=255), nullable=True))
    # The network STAN used to be derived from the row id and written only when the transaction finished:
    # give the rows still in flight the STAN they were sent with, now that the column is the only source.
    modulo = "printf('%06d', id % 1000000)"
    if op.get_bind().dialect.name == "postgresql":
        modulo = "lpad((id % 1000000)::text, 6, '0')"
    op.execute(
        f"UPDATE transactions SET network_stan = {modulo} "
        "WHERE network_stan IS NULL AND issuer_name IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("issuer_routes", schema=None) as batch_op:
        batch_op.drop_column("tls_server_name")
        batch_op.drop_column("tls_key_file")
        batch_op.drop_column("tls_cert_file")
        batch_op.drop_column("tls_ca_file")
        batch_op.drop_column("tls")
    with op.batch_alter_table("saf_entries", schema=None) as batch_op:
        batch_op.drop_column("transmission_dt")
        batch_op.drop_column("network_stan")
    op.drop_table("network_stan_counters")
