"""A terminal's working-key generations and sign-in count in the store (`store.terminal_keys`), on SQLite and
PostgreSQL: compare-and-set offers and promotions (two host nodes cannot overwrite each other's keys) and
the rate-limit window."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from posgate.security.at_rest import CardVault, load_or_create_master_key
from posgate.security.keys import generate_key, kcv
from posgate.store.acquirer import load_terminal, provision_terminal
from posgate.store.db import make_engine, migrate
from posgate.store.models import Merchant
from posgate.store.models_onboarding import AuditEvent
from posgate.store.runtime import Store
from posgate.store.terminal_keys import (
    count_sign_in,
    load_terminal_keys,
    offer_pending_keys,
    promote_pending_keys,
    record_mac_failure,
)

TID, MID = "10000009", "898440153110009"
T0 = dt.datetime(2030, 1, 2, 3, 4, 5, 123456)


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[tuple[Store, CardVault]]:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=4)
    vault = CardVault(load_or_create_master_key(tmp_path / "master.key"))
    tmk = generate_key()

    def setup(session) -> None:  # type: ignore[no-untyped-def]
        session.add(Merchant(mid=MID, name="Keys Test", mcc="5311"))
        session.flush()
        provision_terminal(session, vault, TID, MID, tmk, kcv(tmk))

    store.transact(setup)
    yield store, vault
    store.close()


def _generation() -> dict[str, tuple[bytes, str]]:
    return {purpose: (key, kcv(key)) for purpose, key in (("PIK", generate_key()), ("MAK", generate_key()))}


def test_a_new_terminal_is_x919_and_has_no_keys(store: tuple[Store, CardVault]) -> None:
    db, vault = store
    record = db.transact(lambda s: load_terminal(s, TID))
    assert record is not None and record.mac_algorithm == "x919"
    assert not record.signed_in and record.pending_at is None
    keys = db.transact(lambda s: load_terminal_keys(s, vault, TID))
    assert keys.tmk is not None and keys.current == keys.pending == {}


def test_an_offer_is_a_compare_and_set_and_promotion_happens_once(store: tuple[Store, CardVault]) -> None:
    db, vault = store
    first, second = _generation(), _generation()
    assert db.transact(lambda s: offer_pending_keys(s, vault, TID, first, 1, T0, None))
    # another node read "no pending keys" too: its offer loses and must read again
    assert not db.transact(lambda s: offer_pending_keys(s, vault, TID, second, 1, T0, None))
    record = db.transact(lambda s: load_terminal(s, TID))
    assert record is not None and record.pending_at == T0 and record.pending_keys_valid
    assert not record.current_keys_valid and record.signed_in
    stored = db.transact(lambda s: load_terminal_keys(s, vault, TID))
    assert stored.pending == {p: k for p, (k, _) in first.items()} and stored.current == {}

    assert db.transact(lambda s: promote_pending_keys(s, vault, TID, first, T0, "000003"))
    assert not db.transact(lambda s: promote_pending_keys(s, vault, TID, first, T0, "000003"))
    record = db.transact(lambda s: load_terminal(s, TID))
    assert record is not None and record.current_keys_valid and record.pending_at is None
    assert (record.signed_in_at, record.batch_no) == (T0, "000003")
    stored = db.transact(lambda s: load_terminal_keys(s, vault, TID))
    assert stored.current == {p: k for p, (k, _) in first.items()} and stored.pending == {}


def test_concurrent_offers_from_two_nodes_store_exactly_one_generation(
    store: tuple[Store, CardVault],
) -> None:
    db, vault = store
    generations = [_generation() for _ in range(8)]
    results: list[bool] = []
    barrier = threading.Barrier(len(generations))

    def node(generation: dict[str, tuple[bytes, str]]) -> None:
        barrier.wait()
        try:
            ok = db.transact(lambda s: offer_pending_keys(s, vault, TID, generation, 1, T0, None))
        except Exception:  # SQLite: "database is locked" is a lost race too
            ok = False
        results.append(ok)

    threads = [threading.Thread(target=node, args=(g,)) for g in generations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    stored = db.transact(lambda s: load_terminal_keys(s, vault, TID)).pending
    assert stored in [{p: k for p, (k, _) in g.items()} for g in generations]


def test_sign_ins_are_counted_in_a_window(store: tuple[Store, CardVault]) -> None:
    db, _ = store
    counted = [db.transact(lambda s: count_sign_in(s, TID, T0, 60.0, 3)) for _ in range(4)]
    assert counted == [True, True, True, False]
    later = T0 + dt.timedelta(seconds=59)
    assert not db.transact(lambda s: count_sign_in(s, TID, later, 60.0, 3))
    next_window = T0 + dt.timedelta(seconds=61)
    assert db.transact(lambda s: count_sign_in(s, TID, next_window, 60.0, 3))
    assert not db.transact(lambda s: count_sign_in(s, "99999999", T0, 60.0, 3))  # no such terminal


def _audited(db: Store, action: str) -> list[tuple[str, str, str, dict[str, object]]]:
    def read(session) -> list[tuple[str, str, str, dict[str, object]]]:  # type: ignore[no-untyped-def]
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
        return [(r.actor, r.subject_kind, r.subject_ref, json.loads(r.detail)) for r in rows]

    return db.transact(read)


def test_issuing_and_promoting_keys_is_audited_with_their_check_values_never_the_keys(
    store: tuple[Store, CardVault],
) -> None:
    db, vault = store
    first = _generation()
    assert db.transact(lambda s: offer_pending_keys(s, vault, TID, first, 7, T0, None))
    kcvs = {purpose: check for purpose, (_key, check) in first.items()}
    assert _audited(db, "working_keys_issued") == [
        ("host", "key", f"terminal/{TID}", {"kcvs": kcvs, "period": 7})
    ]
    assert db.transact(lambda s: promote_pending_keys(s, vault, TID, first, T0, "000004"))
    assert _audited(db, "working_keys_in_use") == [("host", "key", f"terminal/{TID}", {"kcvs": kcvs})]
    with_tdk = _generation() | {"TDK": (generate_key(), "ABCDEF")}
    promoted = db.transact(lambda s: load_terminal(s, TID))
    assert promoted is not None and promoted.pending_at is None
    # a TDK-less generation replacing one with a TDK leaves no stale TDK behind, and the other way round
    assert db.transact(lambda s: offer_pending_keys(s, vault, TID, with_tdk, 7, T0, None))
    second = _generation()
    assert db.transact(lambda s: offer_pending_keys(s, vault, TID, second, 7, T0, T0))
    assert db.transact(lambda s: load_terminal_keys(s, vault, TID)).pending == {
        p: k for p, (k, _) in second.items()
    }


def test_a_window_of_sign_ins_ends_exactly_window_s_after_it_started(store: tuple[Store, CardVault]) -> None:
    db, _ = store
    assert [db.transact(lambda s: count_sign_in(s, TID, T0, 60.0, 1)) for _ in range(2)] == [True, False]
    at_the_end = T0 + dt.timedelta(seconds=60)
    assert db.transact(lambda s: count_sign_in(s, TID, at_the_end, 60.0, 1))  # a new window, counted from 1


def test_a_refused_mac_is_audited_with_the_kcvs_it_was_checked_under(store: tuple[Store, CardVault]) -> None:
    db, _ = store
    db.transact(
        lambda s: record_mac_failure(s, TID, "0200", "000123", "x919", ["0A1B2C", "3D4E5F"], "absent")
    )
    detail = {
        "mti": "0200",
        "stan": "000123",
        "algorithm": "x919",
        "mak_kcvs": ["0A1B2C", "3D4E5F"],
        "why": "absent",
    }
    assert _audited(db, "mac_verify_failed") == [("host", "key", f"terminal/{TID}", detail)]
