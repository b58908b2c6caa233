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
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

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
    load_terminal_with_keys,
    offer_pending_keys,
    promote_pending_keys,
    record_mac_failure,
)

TID, MID = "10000009", "898440153110009"
OTHER_TID = "10000010"  # another terminal of the merchant: what a change to TID must leave alone
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
        provision_terminal(session, vault, OTHER_TID, MID, tmk, kcv(tmk))

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


def test_stored_keys_show_their_purposes_and_never_a_key(store: tuple[Store, CardVault]) -> None:
    """What a log line or a traceback shows of a terminal's opened keys (`repr`): which generations hold
    which keys, no key material."""
    db, vault = store
    offered = _generation()
    assert db.transact(lambda s: offer_pending_keys(s, vault, TID, offered, 1, T0, None))
    stored = db.transact(lambda s: load_terminal_keys(s, vault, TID))
    shown = repr(stored)
    assert shown == "StoredKeys(current=[], pending=['MAK', 'PIK'])"
    assert db.transact(lambda s: promote_pending_keys(s, vault, TID, offered, T0, "000001"))
    shown = repr(db.transact(lambda s: load_terminal_keys(s, vault, TID)))
    assert shown == "StoredKeys(current=['MAK', 'PIK'], pending=[])"
    keys = [stored.tmk, *stored.pending.values()]
    assert not any(key is not None and key.hex().upper() in shown.upper() for key in keys)


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


def test_on_postgresql_reading_a_terminal_with_its_keys_holds_off_a_promotion_but_not_another_read(
    fresh_pg_database: str, tmp_path: Path
) -> None:
    """`load_terminal_with_keys` reads the record and the keys as of one moment by share-locking the
    terminal's row (PostgreSQL: a snapshot per statement; SQLite serializes units of work anyway): a
    promotion waits until the read ends — else a sale that read "pending keys, none in use" just before it
    would find no keys just after it, and get 97 — while other nodes' reads of the same terminal go on."""
    engine = make_engine(fresh_pg_database)
    migrate(engine)
    store = Store(engine, threads=2)
    vault = CardVault(load_or_create_master_key(tmp_path / "master.key"))
    tmk, offered = generate_key(), _generation()

    def setup(session: Session) -> None:
        session.add(Merchant(mid=MID, name="Keys Test", mcc="5311"))
        session.flush()
        provision_terminal(session, vault, TID, MID, tmk, kcv(tmk))
        assert offer_pending_keys(session, vault, TID, offered, 1, T0, None)

    store.transact(setup)
    try:
        with Session(engine) as reading, Session(engine) as other, Session(engine) as promoting:
            record, keys = load_terminal_with_keys(reading, vault, TID, "verify MACs, translate PINs")
            assert record is not None and record.pending_keys_valid and set(keys.pending) == {"PIK", "MAK"}
            for session in (other, promoting):
                session.execute(text("SET LOCAL lock_timeout = '300ms'"))
            _, keys = load_terminal_with_keys(other, vault, TID, "verify MACs, translate PINs")
            assert set(keys.pending) == {"PIK", "MAK"}  # another read is not held off
            other.commit()
            with pytest.raises(OperationalError, match="lock"):
                promote_pending_keys(promoting, vault, TID, offered, T0, "000001")
            promoting.rollback()
            reading.commit()  # the read ends: the promotion goes through
            assert promote_pending_keys(promoting, vault, TID, offered, T0, "000001")
            promoting.commit()
    finally:
        store.close()
        engine.dispose()


def test_an_offer_and_a_promotion_change_only_their_own_terminal(store: tuple[Store, CardVault]) -> None:
    """Two terminals signed in at the same instant (another node, the same microsecond): promoting the keys
    of one leaves the other's row and keys as they were."""
    db, vault = store
    ours, theirs = _generation(), _generation()
    assert db.transact(lambda s: offer_pending_keys(s, vault, TID, ours, 1, T0, None))
    other = db.transact(lambda s: load_terminal(s, OTHER_TID))
    assert other is not None and other.pending_at is None and not other.signed_in  # untouched by our offer
    assert db.transact(lambda s: offer_pending_keys(s, vault, OTHER_TID, theirs, 1, T0, None))

    assert db.transact(lambda s: promote_pending_keys(s, vault, TID, ours, T0, "000002"))
    other = db.transact(lambda s: load_terminal(s, OTHER_TID))
    assert other is not None and other.pending_at == T0 and other.pending_keys_valid
    assert not other.current_keys_valid and other.batch_no != "000002"
    stored = db.transact(lambda s: load_terminal_keys(s, vault, OTHER_TID))
    assert stored.pending == {p: k for p, (k, _) in theirs.items()} and stored.current == {}


def test_a_promotion_leaves_exactly_the_promoted_keys_in_use(store: tuple[Store, CardVault]) -> None:
    """Keys in use with a TDK, replaced by keys without one: the old TDK is not left in use beside them,
    and nothing is left pending."""
    db, vault = store
    with_tdk = _generation() | {"TDK": (generate_key(), "ABCDEF")}
    assert db.transact(lambda s: offer_pending_keys(s, vault, TID, with_tdk, 1, T0, None))
    assert db.transact(lambda s: promote_pending_keys(s, vault, TID, with_tdk, T0, "000001"))
    assert set(db.transact(lambda s: load_terminal_keys(s, vault, TID)).current) == {"PIK", "MAK", "TDK"}
    later = T0 + dt.timedelta(seconds=1)
    without = _generation()
    assert db.transact(lambda s: offer_pending_keys(s, vault, TID, without, 1, later, None))
    assert db.transact(lambda s: promote_pending_keys(s, vault, TID, without, later, "000001"))
    stored = db.transact(lambda s: load_terminal_keys(s, vault, TID))
    assert stored.current == {p: k for p, (k, _) in without.items()} and stored.pending == {}
    record = db.transact(lambda s: load_terminal(s, TID))
    assert record is not None and (record.pending_at, record.pending_period) == (None, None)
    assert record.signed_in_at == later and record.current_keys_valid


def test_keys_offered_again_in_the_same_period_are_still_not_keys_in_use(
    store: tuple[Store, CardVault],
) -> None:
    """A terminal that never used its keys, offered keys again in the same key period (a 004 after a 003):
    it still has no keys in use, of this period or an earlier one."""
    db, vault = store
    assert db.transact(lambda s: offer_pending_keys(s, vault, TID, _generation(), 1, T0, None))
    later = T0 + dt.timedelta(seconds=1)
    assert db.transact(lambda s: offer_pending_keys(s, vault, TID, _generation(), 1, later, T0))
    record = db.transact(lambda s: load_terminal(s, TID))
    assert record is not None and record.pending_at == later and record.signed_in_period is None
    assert not record.current_keys_valid and not record.had_keys_of_an_earlier_period


def test_sign_ins_and_promotions_are_one_audit_event_each_at_the_time_they_happened(
    store: tuple[Store, CardVault],
) -> None:
    """The trail shows a sign-in's keys as one `working_keys_issued` at the sign-in's time and a promotion
    as one `working_keys_in_use`, not an event per stored key; reading keys without a use (a tool, a
    test) is not an opening by the host."""
    db, vault = store
    keys = _generation() | {"TDK": (generate_key(), "ABCDEF")}
    assert db.transact(lambda s: offer_pending_keys(s, vault, TID, keys, 1, T0, None))
    assert db.transact(lambda s: promote_pending_keys(s, vault, TID, keys, T0, "000001"))
    db.transact(lambda s: load_terminal_keys(s, vault, TID))

    def events(session) -> list[tuple[str, str, dt.datetime]]:  # type: ignore[no-untyped-def]
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.subject_ref.like(f"terminal/{TID}%")).order_by(AuditEvent.id)
        )
        return [(r.action, r.subject_ref, r.at) for r in rows]

    trail = db.transact(events)
    assert [(action, ref) for action, ref, _ in trail] == [
        ("key_stored", f"terminal/{TID}/TMK"),  # provisioning
        ("working_keys_issued", f"terminal/{TID}"),
        ("working_keys_in_use", f"terminal/{TID}"),
    ]
    assert trail[1][2] == T0
