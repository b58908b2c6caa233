"""Models of clearing and settlement: the double-entry ledger (accounts, journal entries, postings), clearing
runs and the clearing entry of each cleared transaction, payouts, reconciliation reports (issue: clearing).

The ledger is append-only: `ledger_entries` and `ledger_postings` refuse UPDATE and DELETE (database
triggers, migration 0004); a correction is a new entry. Every entry has a unique business `key`
(`clear:<txn id>`, `adjust:<txn id>:<n>`, `payout:<payout id>`), so posting twice is a no-op by constraint.
A posting's `amount_fen` is signed: positive = debit, negative = credit; the lines of an entry sum to zero.
`ledger_balances` keeps each account's debits and credits per value date alongside (derived, verifiable).
Money is integer fen (BIGINT); dates are clearing (value) dates; times are UTC.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from posgate.store import models as _acquirer  # noqa: F401 (transactions: its foreign keys name them)
from posgate.store import models_wallet as _wallet  # noqa: F401 (wallet_orders: its foreign key names them)
from posgate.store.base import Base, utcnow

_BIGID = BigInteger().with_variant(Integer, "sqlite")


class LedgerAccount(Base):
    """An account of the chart (`settlement.ledger`): `merchant_payable:<MID>`, `issuer_receivable:<bank>`,
    `fee_income:mdr`, `fee_income:d0_surcharge`, `interchange_expense`, `network_fee_expense`,
    `settlement_cash`, `suspense`. `type` is asset | liability | income | expense."""

    __tablename__ = "ledger_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(96), unique=True)
    type: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class LedgerEntry(Base):
    """One balanced journal entry (its lines are `LedgerPosting`s)."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # clear | unwind | reclear | payout
    value_date: Mapped[dt.date] = mapped_column(Date)
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("transactions.id"), nullable=True)
    payout_id: Mapped[int | None] = mapped_column(ForeignKey("payouts.id"), nullable=True)
    memo: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class LedgerPosting(Base):
    """One line of a journal entry: signed fen on one account (+ debit, − credit). Keyed by (entry, line
    number) and, on SQLite, stored clustered that way (WITHOUT ROWID): the lines of an entry sit together
    and no secondary index slows the millions of inserts of a clearing run."""

    __tablename__ = "ledger_postings"
    __table_args__ = ({"sqlite_with_rowid": False},)

    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class LedgerBalance(Base):
    """Σ debits and Σ credits of an account per value date, kept in the same unit of work as the postings
    (`ledger_store.post`): balances as of a date read a few rows per account instead of every posting.
    Derived data — `ledger_store.verify_balances` recomputes it from the postings."""

    __tablename__ = "ledger_balances"

    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), primary_key=True)
    value_date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    debit_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class ClearingRun(Base):
    """One `posgate clearing run --date D`: what it found new (a re-run finds nothing: all zeros).
    `pending_count`: transactions of the window still waiting for their issuer when it ran (a re-run of
    the date clears those that end approved)."""

    __tablename__ = "clearing_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clearing_date: Mapped[dt.date] = mapped_column(Date, index=True)
    cut_off_local: Mapped[str] = mapped_column(String(8))
    timezone: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default="running")  # running | finished | failed
    cleared_count: Mapped[int] = mapped_column(Integer, default=0)
    adjusted_count: Mapped[int] = mapped_column(Integer, default=0)
    pending_count: Mapped[int] = mapped_column(Integer, default=0)  # still pending in the window: re-run
    postings_count: Mapped[int] = mapped_column(Integer, default=0)
    sales_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    refunds_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    adjusted_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    mdr_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    interchange_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    network_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    wallet_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    provider_fee_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ClearingEntry(Base):
    """A transaction as cleared, once: `transaction_id` is unique. `kind` sale | completion | refund — or,
    for a void / completion void / reversal that changed an original after that original had cleared,
    `unwind` (the original's clearing negated) or `reclear` (a reversed void gave the original back: its
    clearing again); then `adjusts_id` is that original. Signs are the merchant's view: `amount_fen` > 0
    is owed to the merchant; fees are charges (negative when an unwind gives them back)."""

    __tablename__ = "clearing_entries"

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id"), unique=True)
    adjusts_id: Mapped[int | None] = mapped_column(ForeignKey("transactions.id"), index=True, nullable=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("clearing_runs.id"))
    clearing_date: Mapped[dt.date] = mapped_column(Date, index=True)
    mid: Mapped[str] = mapped_column(String(15))
    issuer_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    card_kind: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(12))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    mdr_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    interchange_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    network_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # acquirer side, paid by us
    network_issuer_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # issuer side, for reports


class WalletClearingEntry(Base):
    """A wallet payment (`kind` sale: `ref` = the order id) or refund (`refund`: `ref` = the refund number)
    as cleared, once: `ref` is unique. Merchant's view: `amount_fen` > 0 is owed to the merchant; `mdr_fen`
    the merchant's wallet MDR, `provider_fee_fen` the wallet provider's fee (our cost) — both negative on a
    refund, which gives back the fee of the refunded part. `at` is when the money moved (UTC)."""

    __tablename__ = "wallet_clearing_entries"
    __table_args__ = (
        Index("ix_wallet_clearing_entries_date", "clearing_date"),
        Index("ix_wallet_clearing_entries_order", "order_id"),
    )

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    ref: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # sale | refund
    order_id: Mapped[str] = mapped_column(ForeignKey("wallet_orders.order_id"))
    provider: Mapped[str] = mapped_column(String(10))
    run_id: Mapped[int] = mapped_column(ForeignKey("clearing_runs.id"))
    clearing_date: Mapped[dt.date] = mapped_column(Date)
    mid: Mapped[str] = mapped_column(String(15))
    tid: Mapped[str] = mapped_column(String(8))
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    mdr_fen: Mapped[int] = mapped_column(BigInteger)
    provider_fee_fen: Mapped[int] = mapped_column(BigInteger)


# Payout.status: instructed (in the bank file, not yet confirmed) → paid | rejected
class Payout(Base):
    """A transfer to a merchant: `t1` (the day's batch) or `d0` (same-day, on request). `amount_fen` is
    drawn from the merchant's payable; the bank moves `net_fen` = amount − surcharge. Posted to the ledger
    only when a confirmation file says paid."""

    __tablename__ = "payouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(4))  # t1 | d0
    mid: Mapped[str] = mapped_column(String(15), index=True)
    value_date: Mapped[dt.date] = mapped_column(Date, index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    surcharge_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    net_fen: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="156")
    status: Mapped[str] = mapped_column(String(10), default="instructed")
    file_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    confirmation_file: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class ReconReport(Base):
    """One reconciliation of an issuer clearing file against the host's records (`kind` issuer; the
    terminals' batch report is read live from the host's batch settlements, not stored). Matched lines
    are counted, every other line is a `ReconLine`."""

    __tablename__ = "recon_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    clearing_date: Mapped[dt.date] = mapped_column(Date, index=True)
    bank: Mapped[str | None] = mapped_column(String(64), nullable=True)
    file_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    file_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    missing_on_host: Mapped[int] = mapped_column(Integer, default=0)
    missing_on_issuer: Mapped[int] = mapped_column(Integer, default=0)
    amount_mismatch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ReconLine(Base):
    """One difference of a reconciliation report."""

    __tablename__ = "recon_lines"

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("recon_reports.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))  # missing_on_host | missing_on_issuer | amount_mismatch
    rrn: Mapped[str | None] = mapped_column(String(12), nullable=True)
    stan: Mapped[str | None] = mapped_column(String(6), nullable=True)
    issuer_amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    host_amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    transaction_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
