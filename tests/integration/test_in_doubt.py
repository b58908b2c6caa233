"""Transactions in doubt (store/in_doubt.py) on SQLite and PostgreSQL: each kind resolved as documented,
young rows left alone, the claim won by exactly one of two concurrent nodes, and a late outcome from the
live request never overwriting a resolution."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from posgate.bootstrap.seed import load_demo_fixture
from posgate.fixtures.document import read_demo_fixture
from posgate.security.at_rest import CardVault
from posgate.store.acquirer import finish_transaction, insert_transaction
from posgate.store.db import make_engine, migrate
from posgate.store.in_doubt import InDoubt, find_in_doubt, resolve_in_doubt
from posgate.store.models import SafEntry, Transaction
from posgate.store.models_onboarding import AuditEvent
from posgate.store.originals import reserve_refund
from posgate.store.runtime import Store

NOW = dt.datetime(2026, 11, 26, 10, 15)
OLD = NOW - dt.timedelta(minutes=5)
CUTOFF = NOW - dt.timedelta(seconds=60)
# kind → (MTI, processing code, condition code)
KINDS = {
    "sale": ("0200", "000000", "00"),
    "balance": ("0200", "310000", "00"),
    "void": ("0200", "200000", "00"),
    "completion": ("0200", "000000", "06"),
    "completion_void": ("0200", "200000", "06"),
    "preauth": ("0100", "030000", "06"),
    "preauth_void": ("0100", "200000", "06"),
    "refund": ("0220", "200000", "00"),
    "reversal": ("0400", "000000", "00"),
    "settlement": ("0500", "000000", None),
    "batch_upload": ("0320", "000000", None),
}


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine)
    vault = CardVault(os.urandom(32))
    store.transact(lambda session: load_demo_fixture(session, vault, read_demo_fixture(), "test"))
    yield store
    store.close()


_stans = iter(range(1, 1_000_000))


def add(
    store: Store,
    kind: str,
    created_at: dt.datetime = OLD,
    state: str = "pending",
    stan: str | None = None,
    amount_fen: int = 1_000,
    routed: bool = True,
) -> int:
    mti, processing_code, condition = KINDS[kind]
    values = {
        "tid": "10000001",
        "mid": "898100012340001",
        "batch_no": "000001",
        "stan": stan or f"{next(_stans):06d}",
        "mti": mti,
        "processing_code": processing_code,
        "business_date": created_at.date(),
        "kind": kind,
        "amount_fen": amount_fen,
        "currency": "156",
        "state": state,
        "created_at": created_at,
        "transmission_dt": created_at.strftime("%m%d%H%M%S"),
        "condition_code": condition,
    }
    if routed:
        values["issuer_name"] = "Demo Bank A"
    return store.transact(lambda s: insert_transaction(s, **values).id)


def row(store: Store, txn_id: int) -> Transaction:
    return store.transact(lambda s: s.get(Transaction, txn_id))


def reversals(store: Store, txn_id: int) -> int:
    return store.transact(
        lambda s: s.scalar(
            select(func.count()).where(SafEntry.transaction_id == txn_id, SafEntry.mti == "0420")
        )
    )


def resolve(store: Store, txn_id: int, kind: str):  # type: ignore[no-untyped-def]
    return store.transact(lambda s: resolve_in_doubt(s, InDoubt(txn_id, kind), CUTOFF, NOW))


@pytest.mark.parametrize(
    ("kind", "state", "code", "queued"),
    [
        ("sale", "timed_out", "98", 1),
        ("preauth", "timed_out", "98", 1),
        ("completion", "timed_out", "98", 1),
        ("void", "timed_out", "98", 1),
        ("completion_void", "timed_out", "98", 1),
        ("preauth_void", "timed_out", "98", 1),
        ("refund", "timed_out", "98", 1),
        ("balance", "timed_out", "98", 0),
        ("settlement", "declined", "96", 0),
        ("batch_upload", "declined", "96", 0),
    ],
)
def test_each_kind_in_doubt_is_resolved_as_documented(
    store: Store, kind: str, state: str, code: str, queued: int
) -> None:
    txn_id = add(store, kind)
    assert [c.id for c in store.transact(lambda s: find_in_doubt(s, CUTOFF))] == [txn_id]
    resolved = resolve(store, txn_id, kind)
    assert resolved is not None and resolved.reversal_queued == bool(queued)
    txn = row(store, txn_id)
    assert (txn.state, txn.response_code, txn.recovered_at) == (state, code, NOW)
    assert reversals(store, txn_id) == queued
    answer = json.loads(txn.response_fields or "{}")
    mti = KINDS[kind][0]
    assert answer == {
        "t": f"{int(mti) + 10:04d}",
        "11": txn.stan,
        "37": f"{txn_id:012d}",
        "39": code,
        "41": "10000001",
        "42": "898100012340001",
    }
    assert store.transact(lambda s: find_in_doubt(s, CUTOFF)) == []
    events = store.transact(
        lambda s: list(s.scalars(select(AuditEvent.action).where(AuditEvent.subject_ref == f"{txn_id:012d}")))
    )
    assert events == ["in_doubt_resolved"]


def test_a_sale_that_was_never_routed_needs_no_reversal(store: Store) -> None:
    txn_id = add(store, "sale", routed=False)  # e.g. died before choosing the issuer
    assert resolve(store, txn_id, "sale") is not None
    assert row(store, txn_id).state == "timed_out"
    assert reversals(store, txn_id) == 0


def test_a_pending_row_younger_than_the_threshold_is_left_alone(store: Store) -> None:
    txn_id = add(store, "sale", created_at=NOW - dt.timedelta(seconds=30))  # a live node may still wait
    assert store.transact(lambda s: find_in_doubt(s, CUTOFF)) == []
    assert resolve(store, txn_id, "sale") is None
    assert row(store, txn_id).state == "pending"
    assert reversals(store, txn_id) == 0


def test_a_refund_in_doubt_gives_its_reservation_back(store: Store) -> None:
    sale = add(store, "sale", state="approved", amount_fen=1_000)
    refund = add(store, "refund", amount_fen=400)
    assert store.transact(lambda s: reserve_refund(s, sale, 400, refund))
    assert row(store, sale).refunded_fen == 400
    assert resolve(store, refund, "refund") is not None
    assert row(store, sale).refunded_fen == 0
    assert reversals(store, refund) == 1
    assert resolve(store, refund, "refund") is None  # once only
    assert row(store, sale).refunded_fen == 0


def test_a_terminal_reversal_in_doubt_reverses_its_original(store: Store) -> None:
    sale = add(store, "sale", state="approved", stan="000777")
    reversal = add(store, "reversal", stan="000777")
    resolved = resolve(store, reversal, "reversal")
    assert resolved is not None and resolved.reversal_queued
    assert (row(store, reversal).state, row(store, reversal).response_code) == ("approved", "00")
    assert row(store, sale).state == "reversed"
    assert reversals(store, sale) == 1


def test_the_live_requests_late_outcome_does_not_overwrite_a_resolution(store: Store) -> None:
    txn_id = add(store, "sale")
    assert resolve(store, txn_id, "sale") is not None
    late = store.transact(
        lambda s: finish_transaction(s, txn_id, "approved", "00", "123456", {"t": "0210", "39": "00"}, "t")
    )
    assert (late.applied, late.state, late.recovered) == (False, "timed_out", True)
    txn = row(store, txn_id)
    assert (txn.state, txn.response_code, txn.auth_code) == ("timed_out", "98", None)
    assert reversals(store, txn_id) == 1


def test_an_outcome_written_first_wins_over_a_resolution(store: Store) -> None:
    txn_id = add(store, "sale")
    done = store.transact(
        lambda s: finish_transaction(s, txn_id, "approved", "00", "123456", {"t": "0210", "39": "00"}, "t")
    )
    assert (done.applied, done.state) == (True, "approved")
    assert resolve(store, txn_id, "sale") is None
    assert row(store, txn_id).state == "approved"
    assert reversals(store, txn_id) == 0


def test_two_nodes_resolving_the_same_row_at_once_act_exactly_once(store: Store) -> None:
    txn_id = add(store, "sale")
    claimed, go_on = threading.Event(), threading.Event()

    def first(session: Session):  # type: ignore[no-untyped-def]
        outcome = resolve_in_doubt(session, InDoubt(txn_id, "sale"), CUTOFF, NOW)
        claimed.set()
        go_on.wait(10)  # hold the claim uncommitted while the other node tries
        return outcome

    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(store.transact, first)
        assert claimed.wait(10)
        other = pool.submit(
            store.transact, lambda s: resolve_in_doubt(s, InDoubt(txn_id, "sale"), CUTOFF, NOW)
        )
        time.sleep(0.3)
        assert not other.done()  # waits on the row lock (PostgreSQL) or the write lock (SQLite)
        go_on.set()
        assert one.result(10) is not None
        assert other.result(10) is None
    assert reversals(store, txn_id) == 1
