"""SQLAlchemy models: the acquirer's records (merchants, terminals, issuer routes, transactions, the
store-and-forward queue, sealed keys). The issuer simulator's books are in `models_simulator`, the other
capabilities' tables in `models_*`, `Base` and `utcnow` in `base`; `schema` gathers them all.

Card data at rest: a PAN is kept only as AES-GCM ciphertext + keyed hash (look-up) + masked form. No track,
CVV, PIN or PIN block is ever a column. Keys are sealed under the local master key (`security.at_rest`).
Money is integer fen (`*_fen`, BIGINT) with an ISO 4217 numeric currency. Times are UTC.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from posgate.store.base import Base, utcnow
from posgate.txnset import TxnState


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mid: Mapped[str] = mapped_column(String(15), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    mcc: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(20), default="live")
    # fee plan (MDR) in parts per million of the amount: 0.50 % = 5000 ppm; caps in fen
    mdr_debit_ppm: Mapped[int] = mapped_column(Integer, default=5000)
    mdr_debit_cap_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mdr_credit_ppm: Mapped[int] = mapped_column(Integer, default=6000)
    mdr_wallet_ppm: Mapped[int] = mapped_column(Integer, default=3800, server_default="3800")  # QR wallets
    settlement_cycle: Mapped[str] = mapped_column(String(4), default="T+1")  # T+1 | D0
    d0_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    live_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)  # test swipe done
    suspended_from: Mapped[str | None] = mapped_column(String(20), nullable=True)  # status `resume` restores


# Merchant.status: live | testing (terminal provisioned, test swipe pending) | suspended | closed
# Terminal.status: live | testing | suspended | closed
class Terminal(Base):
    __tablename__ = "terminals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tid: Mapped[str] = mapped_column(String(8), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    nii: Mapped[str] = mapped_column(String(4), default="0003")
    status: Mapped[str] = mapped_column(String(20), default="live")
    batch_no: Mapped[str] = mapped_column(String(6), default="000001")
    # the working keys in use (keys table, purposes PIK, MAK, TDK): their key period and when they were issued
    signed_in_period: Mapped[int | None] = mapped_column(Integer, nullable=True)
    signed_in_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    live_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    suspended_from: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # the MAC the terminal computes (security.pos_mac.MacAlgorithm): rows that predate migration 0005 are
    # terminals in the field and keep the legacy CUP ECB (server default); new terminals get X9.19
    mac_algorithm: Mapped[str] = mapped_column(String(8), default="x919", server_default="cup_ecb")
    # the working keys issued at the last sign-in and not used yet (purposes PIK.next, MAK.next, TDK.next)
    pending_period: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pending_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # sign-in rate limit, shared by every host node: the current window's start and its count
    sign_in_window_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    sign_in_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # the registered shop's location, `lat,lon` in decimal degrees (risk: distance to field 59)
    location: Mapped[str | None] = mapped_column(String(40), nullable=True)


class SealedKey(Base):
    """A key sealed (AES-GCM) under the master key; `label` = owner_kind/owner_ref/purpose is the AAD."""

    __tablename__ = "keys"
    __table_args__ = (UniqueConstraint("owner_kind", "owner_ref", "purpose", name="uq_keys_owner_purpose"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(20))
    owner_ref: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(16))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    kcv: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class HostState(Base):
    """Single-row table: the current working-key period (bumped to force every terminal to sign in again)."""

    __tablename__ = "host_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_period: Mapped[int] = mapped_column(Integer, default=1)


class IssuerRoute(Base):
    """An issuing bank as the acquirer host routes to it (configuration, not code)."""

    __tablename__ = "issuer_routes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    bins: Mapped[str] = mapped_column(Text)  # comma-separated prefixes
    host: Mapped[str] = mapped_column(String(255), default="127.0.0.1")
    port: Mapped[int] = mapped_column(Integer)
    mac_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    kind: Mapped[str] = mapped_column(String(10), default="debit")
    # stand-in: approve within these limits while the issuer is down (None = no stand-in)
    stand_in_max_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    stand_in_card_daily_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # TLS on the link (tls_ca_file None: the system's trust store; cert and key: a client certificate)
    tls: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    tls_ca_file: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    tls_cert_file: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    tls_key_file: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    tls_server_name: Mapped[str | None] = mapped_column(String(255), nullable=True)


class NetworkStanCounter(Base):
    """Per issuer link, how many network STANs (field 11) the host nodes have taken: a node takes them in
    blocks (`host.stans`), and STAN = taken value mod 999,999 + 1 (`store.stans.stan_of`)."""

    __tablename__ = "network_stan_counters"

    issuer_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    taken: Mapped[int] = mapped_column(BigInteger, default=0)


# Transaction.kind: balance, sale, void, refund, preauth, preauth_void, completion, completion_void,
#   reversal, settlement, batch_upload
# Transaction.state: pending, approved, declined, timed_out, reversed, voided (a sale or completion that a
#   void cancelled), completed (a pre-authorization a completion used), cancelled (a voided pre-authorization)
class Transaction(Base):
    """One POS request as the host handled it; the unique key is the duplicate check."""

    __tablename__ = "transactions"
    __table_args__ = (
        UniqueConstraint(
            "tid", "batch_no", "stan", "mti", "processing_code", "business_date", name="uq_txn_duplicate"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tid: Mapped[str] = mapped_column(String(8), index=True)
    mid: Mapped[str] = mapped_column(String(15), index=True)
    batch_no: Mapped[str] = mapped_column(String(6))
    stan: Mapped[str] = mapped_column(String(6))
    mti: Mapped[str] = mapped_column(String(4))
    processing_code: Mapped[str] = mapped_column(String(6))
    business_date: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(20))
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="156")
    pan_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    pan_hash: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    pan_masked: Mapped[str | None] = mapped_column(String(19), nullable=True)
    entry_mode: Mapped[str | None] = mapped_column(String(3), nullable=True)
    issuer_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    network_stan: Mapped[str | None] = mapped_column(String(6), nullable=True)
    transmission_dt: Mapped[str | None] = mapped_column(String(10), nullable=True)
    rrn: Mapped[str | None] = mapped_column(String(12), unique=True, nullable=True)
    auth_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    response_code: Mapped[str | None] = mapped_column(String(2), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default=TxnState.PENDING, index=True)
    original_id: Mapped[int | None] = mapped_column(ForeignKey("transactions.id"), nullable=True)
    condition_code: Mapped[str | None] = mapped_column(String(2), nullable=True)
    card_seq: Mapped[str | None] = mapped_column(String(3), nullable=True)
    card_kind: Mapped[str | None] = mapped_column(String(10), nullable=True)  # debit | credit
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    stand_in: Mapped[bool] = mapped_column(Boolean, default=False)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # on an original: refunds so far
    settlement_id: Mapped[int | None] = mapped_column(ForeignKey("batch_settlements.id"), nullable=True)
    response_fields: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON, never card data
    trace: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow, index=True)
    # set when a host node resolved it after the host handling it died (store/in_doubt.py)
    recovered_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # the inline risk decision (issue 11): its 0–100 score and summary (rule-set version, action, hits; JSON)
    risk_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    risk: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the terminal's reported location (field 59, `lat,lon`) as sent, when well formed: no card data
    location: Mapped[str | None] = mapped_column(String(32), nullable=True)


class BatchSettlement(Base):
    """A terminal's 0500 settlement of one batch: its totals, the host's, and the outcome."""

    __tablename__ = "batch_settlements"
    __table_args__ = (UniqueConstraint("tid", "batch_no", "business_date", name="uq_settlement_batch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tid: Mapped[str] = mapped_column(String(8), index=True)
    mid: Mapped[str] = mapped_column(String(15))
    batch_no: Mapped[str] = mapped_column(String(6))
    business_date: Mapped[dt.date] = mapped_column(Date)
    terminal_totals: Mapped[str] = mapped_column(String(62))  # field 48 as sent
    host_totals: Mapped[str] = mapped_column(String(62))
    result: Mapped[str] = mapped_column(String(12))  # balanced | unbalanced | reconciled
    differences: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class BatchUploadRecord(Base):
    """One transaction as the terminal reported it in batch upload (0320); PAN only as hash + mask."""

    __tablename__ = "batch_upload_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    settlement_id: Mapped[int] = mapped_column(ForeignKey("batch_settlements.id"), index=True)
    card_org: Mapped[str] = mapped_column(String(2))
    stan: Mapped[str] = mapped_column(String(6))
    pan_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pan_masked: Mapped[str | None] = mapped_column(String(19), nullable=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    record_type: Mapped[str] = mapped_column(String(3))  # 201 magstripe | 203 IC


class ReconciliationItem(Base):
    """A difference found between the terminal's batch and the host's record."""

    __tablename__ = "reconciliation_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    settlement_id: Mapped[int] = mapped_column(ForeignKey("batch_settlements.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))  # missing_on_host | missing_on_terminal | amount_differs
    stan: Mapped[str] = mapped_column(String(6))
    rrn: Mapped[str | None] = mapped_column(String(12), nullable=True)
    host_amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    terminal_amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class SafEntry(Base):
    """Store-and-forward queue: a 0420 reversal (or a 0220 stand-in advice) to deliver to an issuer until
    it answers."""

    __tablename__ = "saf_entries"
    __table_args__ = (UniqueConstraint("transaction_id", "mti", name="uq_saf_txn_mti"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id"))
    issuer_name: Mapped[str] = mapped_column(String(64), index=True)
    mti: Mapped[str] = mapped_column(String(4), default="0420")
    reason_code: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # the message's own STAN (11) and transmission date-time (7), fixed at its first attempt: repeats
    # carry the same ones (a 0420's; a 0220 advice keeps its transaction's)
    network_stan: Mapped[str | None] = mapped_column(String(6), nullable=True)
    transmission_dt: Mapped[str | None] = mapped_column(String(10), nullable=True)
