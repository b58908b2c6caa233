"""The host's terminal directory on the store (`host.sql_ports.SqlTerminals`), on SQLite and PostgreSQL: the
working-key generations a node reads for a terminal's messages, and its caches of records and opened keys.

What the host relies on (pos-8583.md, "Keys and security"; docs/security.md, "Sign-in"): keys offered at a
sign-in are accepted beside the keys in use until the terminal MACs a message under them; that promotion
retires the old keys at once, also on the node that had them cached; keys of an earlier key period are never
accepted; each generation's keys are opened once per node, and that opening is in the audit trail; retired
clear keys do not stay in a node's memory.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from posgate.host.services import TerminalCache
from posgate.host.sql_ports import SqlTerminals
from posgate.security.at_rest import CardVault, load_or_create_master_key
from posgate.security.keys import generate_key, kcv
from posgate.security.signin import KeyGenerations, WorkingKeys, new_working_keys
from posgate.store.acquirer import TerminalRecord, load_terminal, provision_terminal, rotate_key_period
from posgate.store.db import make_engine, migrate
from posgate.store.models import Merchant, SealedKey, Terminal
from posgate.store.models_onboarding import AuditEvent
from posgate.store.runtime import Store
from posgate.store.terminal_keys import promote_pending_keys

TID, OTHER_TID, MID = "10000029", "10000030", "898440153110029"
T0 = dt.datetime(2030, 1, 2, 3, 4, 5, 123456)
USE = "verify MACs, translate PINs"  # what the host opens a terminal's keys for, as the audit names it

KeyCache = dict[tuple[str, dt.datetime | None, dt.datetime | None, int], KeyGenerations]


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[tuple[Store, CardVault]]:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=4)
    vault = CardVault(load_or_create_master_key(tmp_path / "master.key"))

    def setup(session) -> None:  # type: ignore[no-untyped-def]
        session.add(Merchant(mid=MID, name="Directory Test", mcc="5311"))
        session.flush()
        for tid in (TID, OTHER_TID):
            tmk = generate_key()
            provision_terminal(session, vault, tid, MID, tmk, kcv(tmk))

    store.transact(setup)
    yield store, vault
    store.close()


def _node(db: Store, vault: CardVault, key_cache: KeyCache | None = None) -> SqlTerminals:
    """One host node's terminal directory: records cached for 30 s, as a multi-node deployment sets it."""
    return SqlTerminals(db, vault, TerminalCache(ttl_s=30.0), {} if key_cache is None else key_cache)


def _keys_opened(db: Store, tid: str) -> list[dict[str, object]]:
    def read(session) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
        rows = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "keys_opened", AuditEvent.subject_ref == f"terminal/{tid}")
            .order_by(AuditEvent.id)
        )
        return [{"actor": r.actor, **json.loads(r.detail)} for r in rows]

    return db.transact(read)


async def _record(terminals: SqlTerminals, tid: str = TID) -> TerminalRecord:
    """The record a message of `tid` is handled with: this node's cached one, or the store's."""
    record = terminals.cached(tid) or await terminals.load(tid)
    assert record is not None
    return record


async def _signed_in(terminals: SqlTerminals, keys: WorkingKeys, tid: str = TID) -> TerminalRecord:
    """`tid` signs in and is offered `keys` (as IssueWorkingKeys does), a second after its last sign-in;
    returns its record."""
    before = await terminals.load(tid)
    assert before is not None
    now = T0 if before.signed_in_at is None else before.signed_in_at + dt.timedelta(seconds=1)
    assert await terminals.offer(tid, keys, before.key_period, now, before.pending_at)
    return await _record(terminals, tid)


async def _in_use(terminals: SqlTerminals, keys: WorkingKeys, tid: str = TID) -> None:
    """`tid` is offered `keys` and MACs a message under them (as VerifyMac promotes them)."""
    record = await _signed_in(terminals, keys, tid)
    assert record.pending_at is not None
    assert await terminals.promote(tid, keys, record.pending_at, "000001")


async def test_keys_offered_at_a_sign_in_are_read_with_their_tdk_once_per_generation_and_audited(
    store: tuple[Store, CardVault],
) -> None:
    db, vault = store
    terminals = _node(db, vault)
    offered = new_working_keys(with_tdk=True)
    record = await _signed_in(terminals, offered)
    assert record.signed_in and not record.current_keys_valid

    fresh, generations = await terminals.key_generations(record)
    assert fresh == record
    assert generations == KeyGenerations(current=None, pending=offered)
    assert generations.pending is not None and generations.pending.tdk == offered.tdk
    opened = _keys_opened(db, TID)
    assert opened == [
        {
            "actor": "host",
            "purposes": ["MAK.next", "PIK.next", "TDK.next", "TMK"],
            "kcvs": opened[0]["kcvs"],
            "use": USE,
        }
    ]
    # the next messages of this generation are checked under keys this node already holds: nothing is
    # opened again (one audited opening per generation and node, not one per message)
    for _ in range(3):
        assert await terminals.key_generations(await _record(terminals)) == (fresh, generations)
    assert len(_keys_opened(db, TID)) == 1


async def test_a_promotion_retires_the_old_keys_at_once_on_the_node_that_cached_them(
    store: tuple[Store, CardVault],
) -> None:
    db, vault = store
    key_cache: KeyCache = {}
    terminals = _node(db, vault, key_cache)
    old, new = new_working_keys(with_tdk=True), new_working_keys(with_tdk=False)
    await _in_use(terminals, old)
    await _in_use(terminals, new_working_keys(with_tdk=False), OTHER_TID)
    _, other = await terminals.key_generations(await _record(terminals, OTHER_TID))

    record = await _signed_in(terminals, new)  # a sign-in: the new keys are offered, the old stay valid
    _, generations = await terminals.key_generations(record)
    assert generations == KeyGenerations(current=old, pending=new)
    assert generations.current is not None and generations.current.tdk == old.tdk
    assert record.pending_at is not None
    # the terminal MACs a message under the new keys (VerifyMac promotes them) ...
    assert await terminals.promote(TID, new, record.pending_at, "000002")
    # ... and its next message, on this same node, is checked under the new keys only
    promoted, generations = await terminals.key_generations(await _record(terminals))
    assert promoted.current_keys_valid and promoted.pending_at is None and promoted.batch_no == "000002"
    assert generations == KeyGenerations(current=new, pending=None)
    # the retired clear keys leave the node's memory; another terminal's opened keys stay there
    assert [g for (tid, *_), g in key_cache.items() if tid == TID] == [generations]
    opened = len(_keys_opened(db, OTHER_TID))
    _, still = await terminals.key_generations(await _record(terminals, OTHER_TID))
    assert still == other and len(_keys_opened(db, OTHER_TID)) == opened


async def test_a_record_cached_before_another_nodes_promotion_is_replaced_by_the_fresh_one(
    store: tuple[Store, CardVault],
) -> None:
    db, vault = store
    terminals = _node(db, vault)
    offered = new_working_keys(with_tdk=False)
    stale = await _signed_in(terminals, offered)  # cached by this node: pending keys, none in use
    assert stale.pending_at is not None and terminals.cached(TID) == stale
    stored = {"PIK": (offered.pik, kcv(offered.pik)), "MAK": (offered.mak, kcv(offered.mak))}
    # another node's message under the offered keys promotes them
    assert db.transact(lambda s: promote_pending_keys(s, vault, TID, stored, stale.pending_at, "000007"))

    fresh, generations = await terminals.key_generations(stale)
    assert fresh != stale and fresh.current_keys_valid and fresh.pending_at is None
    assert fresh.batch_no == "000007"
    assert generations == KeyGenerations(current=offered, pending=None)
    assert terminals.cached(TID) == fresh  # this node's next message starts from the fresh record
    assert await terminals.key_generations(await _record(terminals)) == (fresh, generations)
    assert len(_keys_opened(db, TID)) == 1


async def test_after_a_key_rotation_keys_of_the_earlier_period_are_not_accepted(
    store: tuple[Store, CardVault],
) -> None:
    """`posgate keys rotate` ends every working key (a suspected compromise): a node that cached the record
    from before the rotation must not hand out the keys in use, nor those offered, of the earlier period."""
    db, vault = store
    terminals = _node(db, vault)
    await _in_use(terminals, new_working_keys(with_tdk=False))
    stale = await _signed_in(terminals, new_working_keys(with_tdk=False))
    assert stale.current_keys_valid and stale.pending_keys_valid

    db.transact(rotate_key_period)
    fresh, generations = await terminals.key_generations(stale)
    assert fresh.key_period == stale.key_period + 1 and not fresh.signed_in
    assert generations == KeyGenerations(current=None, pending=None)


async def test_a_generation_missing_its_mak_or_pik_is_no_generation(store: tuple[Store, CardVault]) -> None:
    """Keys in use that lost their MAK or PIK in the store (a partial restore, a hand-edited row) are not
    half-accepted: the terminal has no keys in use, and RequireSignIn answers 97 "sign in again"."""
    db, vault = store
    for missing in ("MAK", "PIK"):
        terminals = _node(db, vault)
        await _in_use(terminals, new_working_keys(with_tdk=False))
        db.transact(
            lambda s, purpose=missing: s.execute(
                delete(SealedKey).where(SealedKey.owner_ref == TID, SealedKey.purpose == purpose)
            )
        )
        _, generations = await terminals.key_generations(await _record(terminals))
        assert generations == KeyGenerations(current=None, pending=None), missing


async def test_a_terminal_deleted_meanwhile_has_no_keys(store: tuple[Store, CardVault]) -> None:
    db, vault = store
    terminals = _node(db, vault)
    await _in_use(terminals, new_working_keys(with_tdk=False))
    record = await _record(terminals)

    def remove(session) -> None:  # type: ignore[no-untyped-def]
        session.execute(delete(SealedKey).where(SealedKey.owner_ref == TID))
        session.execute(delete(Terminal).where(Terminal.tid == TID))

    db.transact(remove)
    assert db.transact(lambda s: load_terminal(s, TID)) is None
    assert await terminals.key_generations(record) == (record, KeyGenerations(current=None, pending=None))


async def test_a_node_that_looks_again_after_another_nodes_sign_in_drops_the_keys_it_had_opened(
    store: tuple[Store, CardVault],
) -> None:
    """Node A has the keys in use open; the terminal signs in and sells on node B (its new keys are in use
    now). Its next message on node A fails under A's cached keys, so A looks again (VerifyMac): A then
    accepts the new keys only, and the retired clear keys leave A's memory."""
    db, vault = store
    cache_a: KeyCache = {}
    node_a, node_b = _node(db, vault, cache_a), _node(db, vault)
    old, new = new_working_keys(with_tdk=False), new_working_keys(with_tdk=False)
    await _in_use(node_b, old)
    _, generations = await node_a.key_generations(await _record(node_a))
    assert generations == KeyGenerations(current=old, pending=None)

    await _in_use(node_b, new)
    again = await node_a.load(TID)  # the look again: the store's record
    assert again is not None
    _, generations = await node_a.key_generations(again)
    assert generations == KeyGenerations(current=new, pending=None)
    assert [g for (tid, *_), g in cache_a.items() if tid == TID] == [generations]
