"""The acquirer host's records: terminals and their working keys, transactions (with the duplicate key),
issuer routes and the store-and-forward reversal queue. Plain functions of a Session; callers own the unit
of work (`Store.run`)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from posgate.errors import ConfigError
from posgate.store.audit import audit
from posgate.store.base import utcnow
from posgate.store.keys import KeySealer, get_keys, put_key
from posgate.store.models import HostState, IssuerRoute, Merchant, SafEntry, SealedKey, Terminal, Transaction
from posgate.txnset import TxnState

# ---- host state and terminals ----------


def current_key_period(session: Session) -> int:
    state = session.get(HostState, 1)
    if state is None:
        state = HostState(id=1, key_period=1)
        session.add(state)
        session.flush()
    return state.key_period


def rotate_key_period(session: Session, actor: str = "operator") -> int:
    """Start a new working-key period: every terminal must sign in again (97 until it does). Audited
    (`key_period_rotated`)."""
    previous = current_key_period(session)
    period = previous + 1
    session.execute(update(HostState).where(HostState.id == 1).values(key_period=period))
    audit(session, actor, "key_period_rotated", "key", "working_keys", period=period, previous=previous)
    return period


@dataclass(frozen=True)
class TerminalRecord:
    id: int
    tid: str
    mid: str
    merchant_id: int
    merchant_name: str
    status: str
    merchant_status: str
    batch_no: str
    signed_in_period: int | None
    signed_in_at: dt.datetime | None
    mac_algorithm: str
    pending_period: int | None
    pending_at: dt.datetime | None
    key_period: int

    @property
    def current_keys_valid(self) -> bool:
        """The keys in use were issued during the current working-key period."""
        return self.signed_in_period == self.key_period

    @property
    def pending_keys_valid(self) -> bool:
        """Keys issued at the last sign-in, not used yet, belong to the current working-key period."""
        return self.pending_at is not None and self.pending_period == self.key_period

    @property
    def had_keys_of_an_earlier_period(self) -> bool:
        """No keys in use of this period, but keys (in use, or issued and never used) of an earlier one."""
        return self.signed_in_period is not None and not self.current_keys_valid

    @property
    def signed_in(self) -> bool:
        """Signed in during the current working-key period: it holds keys the host accepts."""
        return self.current_keys_valid or self.pending_keys_valid


_TERMINAL_QUERY = (
    select(
        Terminal.id,
        Terminal.tid,
        Merchant.mid,
        Merchant.id,
        Merchant.name,
        Terminal.status,
        Merchant.status,
        Terminal.batch_no,
        Terminal.signed_in_period,
        Terminal.signed_in_at,
        Terminal.mac_algorithm,
        Terminal.pending_period,
        Terminal.pending_at,
        select(HostState.key_period).where(HostState.id == 1).scalar_subquery(),
    )
    .join(Merchant, Merchant.id == Terminal.merchant_id)
    .where(Terminal.tid == bindparam("tid"))
)


def load_terminal(session: Session, tid: str) -> TerminalRecord | None:
    row = session.connection().execute(_TERMINAL_QUERY, {"tid": tid}).first()
    if row is None:
        return None
    return TerminalRecord(*row[:-1], key_period=row[-1] or 1)


def terminal_keys(session: Session, sealer: KeySealer, tid: str, use: str) -> dict[str, bytes]:
    """The terminal's keys (TMK and working keys), opened; audited as the host's, for `use`."""
    return get_keys(session, sealer, "terminal", tid, actor="host", use=use)


def complete_test_swipe(session: Session, tid: str) -> None:
    """The terminal's test sale was voided or reversed: the terminal goes live, and so does its merchant if
    it was still testing. Audited as actor "host". Does nothing unless the terminal is testing (so a repeated
    call, or a call for a suspended terminal, changes nothing). Plain Session function: the caller commits."""
    terminal = session.scalar(select(Terminal).where(Terminal.tid == tid))
    if terminal is None or terminal.status != "testing":
        return
    now = utcnow()
    terminal.status, terminal.live_at = "live", now
    audit(session, "host", "test_swipe_passed", "terminal", tid, now, **{"from": "testing", "to": "live"})
    merchant = session.get(Merchant, terminal.merchant_id)
    if merchant is not None and merchant.status == "testing":
        merchant.status, merchant.live_at = "live", now
        audit(
            session,
            "host",
            "go_live",
            "merchant",
            merchant.mid,
            now,
            **{"from": "testing", "to": "live"},
            tid=tid,
        )


# ---- transactions ----------


@dataclass(frozen=True)
class Recorded:
    """A freshly inserted pending transaction."""

    id: int
    rrn: str
    network_stan: str


@dataclass(frozen=True)
class Existing:
    """The duplicate key hit an earlier transaction."""

    id: int
    state: str
    response: dict[str, str] | None


_TXN = Transaction.__table__
_INSERT_TXN = insert(_TXN).returning(_TXN.c.id)


def rrn_of(txn_id: int) -> str:
    """The RRN the host gives a transaction: its row id, 12 digits (unique across host nodes).

    >>> rrn_of(42)
    '000000000042'
    """
    return f"{txn_id:012d}"


def insert_transaction(session: Session, **values: Any) -> Recorded:
    """Insert a transaction row; raises IntegrityError on a duplicate (caller then calls `find_duplicate`).
    Its RRN derives from the row id (`finish_transaction` writes the RRN column); its network STAN is the
    `network_stan` value given (taken from the link's counter, `host.stans`), if any."""
    txn_id = session.connection().execute(_INSERT_TXN, values).scalar_one()
    return Recorded(id=txn_id, rrn=rrn_of(txn_id), network_stan=str(values.get("network_stan") or ""))


def find_duplicate(
    session: Session,
    tid: str,
    batch_no: str,
    stan: str,
    mti: str,
    processing_code: str,
    business_date: dt.date,
) -> Existing | None:
    row = session.scalar(
        select(Transaction).where(
            Transaction.tid == tid,
            Transaction.batch_no == batch_no,
            Transaction.stan == stan,
            Transaction.mti == mti,
            Transaction.processing_code == processing_code,
            Transaction.business_date == business_date,
        )
    )
    if row is None:
        return None
    response = json.loads(row.response_fields) if row.response_fields else None
    return Existing(id=row.id, state=row.state, response=response)


_FINISH_COLUMNS = (
    "rrn",
    "response_fields",
    "trace",
    "updated_at",
    "stand_in",
    "original_id",
)
# the outcome, written only while the row is pending: a terminal's reversal that arrived while we waited
# for the issuer, or a host node that resolved the row as in doubt (store/in_doubt.py), wins
_FINISH_PENDING = (
    update(_TXN)
    .where(_TXN.c.id == bindparam("txn_id"), _TXN.c.state == TxnState.PENDING)
    .values(
        state=bindparam("new_state"),
        response_code=bindparam("new_response_code"),
        auth_code=bindparam("new_auth_code"),
        **{column: bindparam(f"new_{column}") for column in _FINISH_COLUMNS},
    )
)
# someone else settled it: keep their state, code and authorization code; record our answer and trace
_FINISH_SETTLED = (
    update(_TXN)
    .where(_TXN.c.id == bindparam("txn_id"))
    .values(**{column: bindparam(f"new_{column}") for column in _FINISH_COLUMNS})
    .returning(_TXN.c.state, _TXN.c.recovered_at)
)


@dataclass(frozen=True)
class Finished:
    """What `finish_transaction` found: whether it wrote the outcome (the row was still pending) and the
    row's state now."""

    applied: bool
    state: str
    recovered: bool = False  # a host node resolved it as in doubt (its effects are done)


def finish_transaction(
    session: Session,
    txn_id: int,
    state: str,
    response_code: str,
    auth_code: str | None,
    response: dict[str, str],
    trace: str,
    stand_in: bool = False,
    original_id: int | None = None,
) -> Finished:
    """Record the outcome and the answer sent (no card data in `response`). The outcome is written only
    while the row is pending (one conditional UPDATE on the hot path); otherwise the row keeps the state
    another request gave it, and the caller must answer accordingly."""
    params = {
        "txn_id": txn_id,
        "new_state": state,
        "new_response_code": response_code,
        "new_auth_code": auth_code,
        "new_rrn": rrn_of(txn_id),
        "new_response_fields": json.dumps(response, sort_keys=True),
        "new_trace": trace,
        "new_updated_at": utcnow(),
        "new_stand_in": stand_in,
        "new_original_id": original_id,
    }
    connection = session.connection()
    if connection.execute(_FINISH_PENDING, params).rowcount:
        return Finished(applied=True, state=state)
    row = connection.execute(_FINISH_SETTLED, params).first()
    if row is None:
        return Finished(applied=False, state="missing")
    return Finished(applied=False, state=row.state, recovered=row.recovered_at is not None)


def store_answer(session: Session, txn_id: int, response: dict[str, str]) -> None:
    """Replace the stored answer (what a duplicate gets) with the one actually sent."""
    session.execute(
        update(Transaction)
        .where(Transaction.id == txn_id)
        .values(response_fields=json.dumps(response, sort_keys=True))
        .execution_options(synchronize_session=False)
    )


def transaction_state(session: Session, txn_id: int) -> str | None:
    return session.scalar(select(Transaction.state).where(Transaction.id == txn_id))


def find_original(
    session: Session, tid: str, stan: str, business_date: dt.date, processing_code: str, mtis: tuple[str, ...]
) -> Transaction | None:
    """The latest transaction of this terminal with this STAN and processing code, of today or yesterday
    (a reversal sent just after local midnight still finds a sale made just before it)."""
    return session.scalar(
        select(Transaction)
        .where(
            Transaction.tid == tid,
            Transaction.stan == stan,
            Transaction.business_date.in_((business_date, business_date - dt.timedelta(days=1))),
            Transaction.processing_code == processing_code,
            Transaction.mti.in_(mtis),
        )
        .order_by(Transaction.id.desc())
        .limit(1)
    )


def reverse_transaction(session: Session, txn_id: int, reason_code: str, now: dt.datetime) -> bool:
    """Mark an approved, in-flight or timed-out transaction reversed and queue its 0420 — exactly once.

    Returns True when this call queued the reversal (a conditional UPDATE decides, so concurrent callers
    and repeated terminal reversals cannot queue it twice)."""
    changed = session.execute(
        update(Transaction)
        .where(
            Transaction.id == txn_id,
            Transaction.state.in_((TxnState.APPROVED, TxnState.PENDING, TxnState.TIMED_OUT)),
        )
        .values(state=TxnState.REVERSED, updated_at=now, rrn=rrn_of(txn_id))
    ).rowcount
    if not changed:
        return False
    txn = session.get(Transaction, txn_id)
    assert txn is not None
    if txn.issuer_name and txn.transmission_dt:
        queue_reversal(session, txn, reason_code, now)
    return True


def queue_reversal_of(session: Session, txn_id: int, reason_code: str, now: dt.datetime) -> bool:
    """Queue the 0420 of transaction `txn_id` (once) when it was routed to an issuer; True if it was."""
    txn = session.get(Transaction, txn_id)
    if txn is None or not (txn.issuer_name and txn.transmission_dt):
        return False
    queue_reversal(session, txn, reason_code, now)
    return True


def time_out_transaction(session: Session, txn_id: int, now: dt.datetime) -> None:
    """The issuer did not answer: mark the transaction timed out and queue its 0420 (reason 98)."""
    changed = session.execute(
        update(Transaction)
        .where(Transaction.id == txn_id, Transaction.state == TxnState.PENDING)
        .values(state=TxnState.TIMED_OUT, response_code="98", updated_at=now, rrn=rrn_of(txn_id))
    ).rowcount
    txn = session.get(Transaction, txn_id)
    if changed and txn is not None:
        queue_reversal(session, txn, "98", now)


def queue_reversal(session: Session, txn: Transaction, reason_code: str, now: dt.datetime) -> None:
    """Queue the 0420 of `txn` (once per transaction) and supersede its advice not yet delivered."""
    _queue(session, txn.id, txn.issuer_name or "", "0420", reason_code, now)
    # an advice not yet delivered is moot once its transaction is reversed: the 0420 undoes it
    session.execute(
        update(SafEntry)
        .where(SafEntry.transaction_id == txn.id, SafEntry.mti == "0220", SafEntry.status == "pending")
        .values(status="superseded", completed_at=now)
    )


def queue_advice(session: Session, txn_id: int, issuer_name: str, now: dt.datetime, auth_code: str) -> bool:
    """A 0220 advice (a refund the issuer did not answer, a stand-in approval) to deliver until answered;
    the host's authorization code is recorded with it, so the advice carries it from the first attempt.
    Only while the transaction is pending: False (nothing queued) when a host node already resolved it as
    in doubt and queued its reversal."""
    changed = session.execute(
        update(Transaction)
        .where(Transaction.id == txn_id, Transaction.state == TxnState.PENDING)
        .values(auth_code=auth_code)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        return False
    _queue(session, txn_id, issuer_name, "0220", "00", now)
    return True


def _queue(
    session: Session, txn_id: int, issuer_name: str, mti: str, reason_code: str, now: dt.datetime
) -> None:
    exists = session.scalar(select(SafEntry.id).where(SafEntry.transaction_id == txn_id, SafEntry.mti == mti))
    if exists is None:
        session.add(
            SafEntry(
                transaction_id=txn_id,
                issuer_name=issuer_name,
                mti=mti,
                reason_code=reason_code,
                next_attempt_at=now,
            )
        )


# ---- store-and-forward ----------


@dataclass(frozen=True)
class SafItem:
    """A queued message and the transaction it is about. `network_stan`/`transmission_dt` are the
    message's own fields 11 and 7, fixed at its first attempt (None: not attempted yet); an advice's are
    its transaction's. `txn_network_stan`/`txn_transmission_dt` are the transaction's, which a 0420
    names in field 90."""

    id: int
    mti: str  # 0420 reversal | 0220 advice
    issuer_name: str
    reason_code: str
    attempts: int
    transaction_id: int
    original_mti: str
    processing_code: str
    amount_fen: int
    currency: str
    network_stan: str | None
    transmission_dt: str | None
    txn_network_stan: str
    txn_transmission_dt: str
    rrn: str
    tid: str
    mid: str
    pan_ciphertext: bytes | None
    condition_code: str | None = None
    entry_mode: str | None = None
    auth_code: str | None = None
    original_id: int | None = None


def due_saf_entries(session: Session, now: dt.datetime, limit: int = 100) -> list[SafItem]:
    rows = session.execute(
        select(SafEntry, Transaction)
        .join(Transaction, Transaction.id == SafEntry.transaction_id)
        .where(SafEntry.status == "pending", SafEntry.next_attempt_at <= now)
        .order_by(SafEntry.id)
        .limit(limit)
    ).all()
    return [
        SafItem(
            id=entry.id,
            mti=entry.mti,
            issuer_name=entry.issuer_name,
            reason_code=entry.reason_code,
            attempts=entry.attempts,
            transaction_id=txn.id,
            original_mti=txn.mti,
            processing_code=txn.processing_code,
            amount_fen=txn.amount_fen,
            currency=txn.currency,
            network_stan=entry.network_stan or (txn.network_stan if entry.mti == "0220" else None),
            transmission_dt=entry.transmission_dt or (txn.transmission_dt if entry.mti == "0220" else None),
            txn_network_stan=txn.network_stan or "000000",
            txn_transmission_dt=txn.transmission_dt or "0000000000",
            rrn=rrn_of(txn.id),
            tid=txn.tid,
            mid=txn.mid,
            pan_ciphertext=txn.pan_ciphertext,
            condition_code=txn.condition_code,
            entry_mode=txn.entry_mode,
            auth_code=txn.auth_code,
            original_id=txn.original_id,
        )
        for entry, txn in rows
    ]


def saf_delivered(session: Session, entry_id: int, now: dt.datetime) -> None:
    """The issuer answered: the entry is done, and a timed-out transaction it reversed is now `reversed`."""
    session.execute(
        update(SafEntry)
        .where(SafEntry.id == entry_id)
        .values(status="done", completed_at=now, attempts=SafEntry.attempts + 1, last_error=None)
    )
    entry = session.get(SafEntry, entry_id)
    if entry is not None and entry.mti == "0420":
        session.execute(
            update(Transaction)
            .where(Transaction.id == entry.transaction_id, Transaction.state == TxnState.TIMED_OUT)
            .values(state=TxnState.REVERSED, updated_at=now)
        )


def fix_saf_message_id(
    session: Session, entry_id: int, network_stan: str, transmission_dt: str
) -> tuple[str, str]:
    """Give a queued message its own STAN and field 7 at its first attempt, unless it has them already
    (another node attempted it first); return the ones it keeps for every repeat."""
    session.execute(
        update(SafEntry)
        .where(SafEntry.id == entry_id, SafEntry.network_stan.is_(None))
        .values(network_stan=network_stan, transmission_dt=transmission_dt)
    )
    row = session.execute(
        select(SafEntry.network_stan, SafEntry.transmission_dt).where(SafEntry.id == entry_id)
    ).one()
    return str(row.network_stan), str(row.transmission_dt)


def saf_failed(session: Session, entry_id: int, error: str, next_attempt_at: dt.datetime) -> None:
    session.execute(
        update(SafEntry)
        .where(SafEntry.id == entry_id)
        .values(attempts=SafEntry.attempts + 1, last_error=error[:200], next_attempt_at=next_attempt_at)
    )


def pending_saf_count(session: Session, mti: str | None = None) -> int:
    query = select(SafEntry.id).where(SafEntry.status == "pending")
    if mti is not None:
        query = query.where(SafEntry.mti == mti)
    return len(session.scalars(query).all())


def original_network_data(session: Session, original_id: int) -> tuple[str, str, str] | None:
    """(MTI, network STAN, transmission date-time) of an original, for field 90."""
    row = session.get(Transaction, original_id)
    if row is None:
        return None
    return row.mti, row.network_stan or "000000", row.transmission_dt or "0000000000"


# ---- issuer routes ----------


@dataclass(frozen=True)
class RouteTls:
    """TLS on a route's link: CA file (None: the system's), client certificate and key, server name."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None


@dataclass(frozen=True, repr=False)
class RouteRecord:
    name: str
    bins: tuple[str, ...]
    host: str
    port: int
    mac_enabled: bool
    kind: str
    zpk: bytes
    zak: bytes | None  # None only when mac_enabled is False
    stand_in_max_fen: int | None = None
    stand_in_card_daily_fen: int | None = None
    tls: RouteTls | None = None

    def __repr__(self) -> str:
        tls = ", tls" if self.tls is not None else ""
        return f"RouteRecord({self.name!r}, bins={self.bins}, {self.host}:{self.port}{tls})"


def load_routes(session: Session, sealer: KeySealer) -> list[RouteRecord]:
    """Every issuer route with its zone keys opened. `ConfigError` for a MACing route without a ZAK."""
    routes = []
    for row in session.scalars(select(IssuerRoute).order_by(IssuerRoute.name)):
        keys = get_keys(session, sealer, "issuer", row.name, actor="host", use="issuer link")
        if row.mac_enabled and "ZAK" not in keys:
            raise ConfigError(f"issuer route {row.name!r} has mac = true but the store holds no ZAK for it")
        routes.append(
            RouteRecord(
                name=row.name,
                bins=tuple(b.strip() for b in row.bins.split(",") if b.strip()),
                host=row.host,
                port=row.port,
                mac_enabled=row.mac_enabled,
                kind=row.kind,
                zpk=keys["ZPK"],
                zak=keys.get("ZAK"),
                stand_in_max_fen=row.stand_in_max_fen,
                stand_in_card_daily_fen=row.stand_in_card_daily_fen,
                tls=RouteTls(row.tls_ca_file, row.tls_cert_file, row.tls_key_file, row.tls_server_name)
                if row.tls
                else None,
            )
        )
    return routes


def upsert_route(
    session: Session,
    sealer: KeySealer,
    name: str,
    bins: list[str],
    host: str,
    port: int,
    mac_enabled: bool,
    kind: str,
    zpk: tuple[bytes, str],
    zak: tuple[bytes, str] | None,
    stand_in: tuple[int | None, int | None] = (None, None),
    tls: RouteTls | None = None,
) -> None:
    """Create or update an issuer route from configuration (`[[issuers]]` in posgate.toml). Without a ZAK
    (a route with `mac = false`), a ZAK stored earlier for it is removed."""
    row = session.scalar(select(IssuerRoute).where(IssuerRoute.name == name))
    if row is None:
        row = IssuerRoute(name=name, bins="", host=host, port=port)
        session.add(row)
    row.bins, row.host, row.port, row.mac_enabled, row.kind = ",".join(bins), host, port, mac_enabled, kind
    row.stand_in_max_fen, row.stand_in_card_daily_fen = stand_in
    tls_values = tls or RouteTls()
    row.tls = tls is not None
    row.tls_ca_file, row.tls_cert_file = tls_values.ca_file, tls_values.cert_file
    row.tls_key_file, row.tls_server_name = tls_values.key_file, tls_values.server_name
    put_key(session, sealer, "issuer", name, "ZPK", *zpk, actor="configuration")
    if zak is not None:
        put_key(session, sealer, "issuer", name, "ZAK", *zak, actor="configuration")
    else:
        session.execute(
            delete(SealedKey).where(
                SealedKey.owner_kind == "issuer", SealedKey.owner_ref == name, SealedKey.purpose == "ZAK"
            )
        )


def provision_terminal(
    session: Session, sealer: KeySealer, tid: str, mid: str, tmk: bytes, kcv: str, mac_algorithm: str = "x919"
) -> None:
    """Create a live terminal of merchant `mid` with its TMK sealed (caller commits)."""
    merchant = session.scalar(select(Merchant).where(Merchant.mid == mid))
    if merchant is None:
        raise LookupError(f"no merchant with MID {mid}")
    session.add(Terminal(tid=tid, merchant_id=merchant.id, status="live", mac_algorithm=mac_algorithm))
    put_key(session, sealer, "terminal", tid, "TMK", tmk, kcv)
