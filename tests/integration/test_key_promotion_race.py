"""The race behind a flaky `test_pipelined_sales_from_concurrent_terminals_are_all_answered[postgresql]` (one
sale of 20 got `97`), made deterministic, on SQLite and PostgreSQL.

A terminal signs in for the first time: its keys are the pending generation only. It pipelines sales. One
sale verifies under the pending MAK and promotes it (`promote_pending_keys`: pending → current, the
`.next` keys deleted). Another sale read the terminal's record just before that promotion committed (the
record still says "pending keys, none in use") and its keys just after (no `.next` keys any more): it
found no keys at all, and RequireSignIn answered `97`. Here the record is read, the promotion commits,
then the host's steps run on that record — the interleaving the pipelined sales hit by chance.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from posgate.config import Settings
from posgate.host.context import Kind, TxnContext
from posgate.host.services import HostServices
from posgate.host.steps.terminal import IdentifyTerminal, RequireSignIn, VerifyMac
from posgate.iso8583.codec import decode_pos, encode_pos_with_mac
from posgate.iso8583.framing import PosFrame
from posgate.security.at_rest import CardVault, load_or_create_master_key
from posgate.security.keys import generate_key, kcv
from posgate.security.pos_mac import MacAlgorithm, pos_mac
from posgate.store.acquirer import load_terminal, provision_terminal
from posgate.store.db import make_engine, migrate
from posgate.store.models import Merchant, Terminal
from posgate.store.runtime import Store
from posgate.store.terminal_keys import offer_pending_keys, promote_pending_keys

TID, MID = "10000019", "898440153110019"
SIGNED_IN_AT = dt.datetime(2030, 1, 2, 3, 4, 5, 123456)


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[tuple[Store, CardVault]]:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=4)
    vault = CardVault(load_or_create_master_key(tmp_path / "master.key"))
    tmk = generate_key()

    def setup(session) -> None:  # type: ignore[no-untyped-def]
        session.add(Merchant(mid=MID, name="Promotion Race", mcc="5311", status="live"))
        session.flush()
        provision_terminal(session, vault, TID, MID, tmk, kcv(tmk))
        session.execute(update(Terminal).where(Terminal.tid == TID).values(status="live"))

    store.transact(setup)
    yield store, vault
    store.close()


def _services(store: Store, vault: CardVault, tmp_path: Path) -> HostServices:
    """What IdentifyTerminal, RequireSignIn and VerifyMac use: the store, the vault, the caches. They never
    touch the issuer links, routes, SAF or STANs."""
    none: Any = None
    settings = Settings(data_dir=tmp_path / "data", env="test")  # type: ignore[call-arg]
    return HostServices(settings, store, vault, links=none, bins=none, saf=none, stans=none)


def _signed_sale(mak: bytes, algorithm: MacAlgorithm) -> tuple[bytes, dict[str, str]]:
    msg = {
        "t": "0200",
        "3": "000000",
        "4": "000000000100",
        "11": "000007",
        "22": "021",
        "25": "00",
        "41": TID,
        "42": MID,
        "49": "156",
        "60": "22000001000",
    }
    payload = encode_pos_with_mac(msg, lambda data: pos_mac(algorithm, mak, data))
    return payload, decode_pos(payload)


async def test_a_promotion_between_reading_the_record_and_its_keys_does_not_lose_the_keys(
    store: tuple[Store, CardVault], tmp_path: Path
) -> None:
    db, vault = store
    generation = {
        purpose: (key, kcv(key)) for purpose, key in (("PIK", generate_key()), ("MAK", generate_key()))
    }
    period = db.transact(lambda s: load_terminal(s, TID)).key_period  # type: ignore[union-attr]
    assert db.transact(lambda s: offer_pending_keys(s, vault, TID, generation, period, SIGNED_IN_AT, None))

    before = db.transact(lambda s: load_terminal(s, TID))  # sale B reads the record (IdentifyTerminal)
    assert before is not None and before.pending_keys_valid and not before.current_keys_valid
    # sale A's MAC verified under the pending MAK: it promotes the keys, and commits
    assert db.transact(lambda s: promote_pending_keys(s, vault, TID, generation, SIGNED_IN_AT, "000001"))

    terminals = _services(db, vault, tmp_path).ports().terminals
    algorithm = MacAlgorithm.parse(before.mac_algorithm)
    payload, request = _signed_sale(generation["MAK"][0], algorithm)
    now = dt.datetime.now(dt.UTC)
    ctx = TxnContext(
        frame=PosFrame(b"", b"", payload),
        request=request,
        received_at=now,
        local_now=now.replace(tzinfo=None),
        kind=Kind.SALE,
    )
    await IdentifyTerminal(terminals).use(ctx, before)  # sale B goes on with the record it read
    for step in (RequireSignIn(), VerifyMac(terminals)):
        await step.prepare(ctx)
        assert not ctx.result.declined, f"{step.name} declined {ctx.result.code}: the keys were lost"
    assert ctx.keys is not None and ctx.keys.mak == generation["MAK"][0]
