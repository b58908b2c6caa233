"""The store's side of duplicates and reversals, on SQLite and PostgreSQL, through its public functions:
a repeated request is found by its whole key (TID, batch, STAN, MTI, processing code, business date) and
by nothing less; a transaction is reversed — and its 0420 queued — exactly once."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import IntegrityError

from posgate.store.acquirer import (
    due_saf_entries,
    find_duplicate,
    find_original,
    finish_transaction,
    insert_transaction,
    pending_saf_count,
    reverse_transaction,
    rrn_of,
)
from posgate.store.db import make_engine, migrate
from posgate.store.models import Transaction
from posgate.store.runtime import Store

DAY = dt.date(2026, 11, 26)
NOW = dt.datetime(2026, 11, 26, 10, 15)


@dataclasses.dataclass(frozen=True)
class Key:
    tid: str = "10000001"
    batch_no: str = "000001"
    stan: str = "000042"
    mti: str = "0200"
    processing_code: str = "000000"
    business_date: dt.date = DAY


# the key, and one key differing from it in each part
KEYS = {
    "key": Key(),
    "tid": Key(tid="10000002"),
    "batch": Key(batch_no="000002"),
    "stan": Key(stan="000043"),
    "mti": Key(mti="0400"),
    "processing code": Key(processing_code="310000"),
    "date": Key(business_date=DAY + dt.timedelta(days=1)),
}


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=1, inline=True)
    yield store
    store.close()


def _insert(store: Store, key: Key, **extra: object) -> int:
    values = {
        **dataclasses.asdict(key),
        "mid": "898440153110001",
        "kind": "sale",
        "amount_fen": 100,
        "state": "pending",
        "created_at": NOW,
        "transmission_dt": "1126101500",
        **extra,
    }
    return store.transact(lambda s: insert_transaction(s, **values)).id


def _find(store: Store, key: Key):  # type: ignore[no-untyped-def]
    k = key
    return store.transact(
        lambda s: find_duplicate(s, k.tid, k.batch_no, k.stan, k.mti, k.processing_code, k.business_date)
    )


def test_a_repeated_request_finds_its_own_transaction_by_the_whole_key(store: Store) -> None:
    ids = {}
    for name, key in KEYS.items():  # inserted in this order: the key first, so "first row" is never enough
        ids[name] = _insert(store, key)
        answer = {"t": "0210", "39": "00", "37": rrn_of(ids[name]), "note": name}
        store.transact(
            lambda s, i=ids[name], a=answer: finish_transaction(s, i, "approved", "00", "123456", a, "trace")
        )
    for name, key in KEYS.items():
        found = _find(store, key)
        assert found is not None, name
        assert (found.id, found.state, found.response["note"]) == (ids[name], "approved", name)
    assert _find(store, Key(stan="000044")) is None


def test_the_key_is_a_constraint_and_a_request_in_flight_has_no_answer_yet(store: Store) -> None:
    first = _insert(store, Key())
    values = {**dataclasses.asdict(Key(stan="000099")), "mid": "898440153110001", "kind": "settlement"}
    recorded = store.transact(lambda s: insert_transaction(s, **values, created_at=NOW))
    assert (recorded.rrn, recorded.network_stan) == (rrn_of(recorded.id), "")  # no network STAN given
    with_stan = store.transact(
        lambda s: insert_transaction(s, **{**values, "stan": "000100"}, created_at=NOW, network_stan="000123")
    )
    assert with_stan.network_stan == "000123"
    with pytest.raises(IntegrityError):
        _insert(store, Key())
    found = _find(store, Key())
    assert found is not None
    assert (found.id, found.state, found.response) == (first, "pending", None)


@pytest.mark.parametrize("state", ["approved", "pending", "timed_out"])
def test_a_transaction_is_reversed_and_its_0420_queued_exactly_once(store: Store, state: str) -> None:
    txn_id = _insert(store, Key(), issuer_name="Demo Bank A", state=state)
    assert store.transact(lambda s: reverse_transaction(s, txn_id, "98", NOW)) is True
    assert store.transact(lambda s: reverse_transaction(s, txn_id, "98", NOW)) is False
    row = store.transact(lambda s: s.get(Transaction, txn_id))
    assert (row.state, row.updated_at, row.rrn) == ("reversed", NOW, rrn_of(txn_id))
    assert store.transact(lambda s: pending_saf_count(s, "0420")) == 1
    due = store.transact(lambda s: due_saf_entries(s, NOW))  # due at once, for the right issuer
    assert [(item.mti, item.issuer_name, item.reason_code) for item in due] == [("0420", "Demo Bank A", "98")]


def test_a_transaction_that_never_went_to_an_issuer_is_reversed_without_a_0420(store: Store) -> None:
    txn_id = _insert(store, Key(), state="approved")  # no issuer: nothing to undo there
    assert store.transact(lambda s: reverse_transaction(s, txn_id, "98", NOW)) is True
    assert store.transact(lambda s: s.get(Transaction, txn_id)).state == "reversed"
    assert store.transact(lambda s: pending_saf_count(s)) == 0


@pytest.mark.parametrize("state", ["declined", "voided", "reversed"])
def test_what_is_not_outstanding_is_not_reversed(store: Store, state: str) -> None:
    txn_id = _insert(store, Key(), issuer_name="Demo Bank A", state=state)
    assert store.transact(lambda s: reverse_transaction(s, txn_id, "98", NOW)) is False
    assert store.transact(lambda s: s.get(Transaction, txn_id)).state == state
    assert store.transact(lambda s: pending_saf_count(s)) == 0


def _original(store: Store, key: Key, mtis: tuple[str, ...] = ("0200", "0100")) -> int | None:
    k = key
    row = store.transact(lambda s: find_original(s, k.tid, k.stan, k.business_date, k.processing_code, mtis))
    return None if row is None else row.id


def test_a_reversal_finds_its_original_by_terminal_stan_processing_code_and_day(store: Store) -> None:
    others = [
        Key(tid="10000002"),
        Key(stan="000043"),
        Key(processing_code="310000"),
        Key(mti="0220", processing_code="000000"),  # not a reversible MTI
        Key(business_date=DAY + dt.timedelta(days=1)),
        Key(business_date=DAY - dt.timedelta(days=2)),
    ]
    for key in others:
        _insert(store, key)
    assert _original(store, Key()) is None  # none of those is it
    yesterday = _insert(store, Key(business_date=DAY - dt.timedelta(days=1), batch_no="000009"))
    assert _original(store, Key()) == yesterday  # a reversal just after midnight finds the sale before it
    today = _insert(store, Key(mti="0100"))
    assert _original(store, Key()) == today  # the latest of them
    assert _original(store, Key(), mtis=("0200",)) == yesterday
    assert _original(store, Key(business_date=DAY - dt.timedelta(days=1))) == yesterday
