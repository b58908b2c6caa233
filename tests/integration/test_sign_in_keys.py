"""Sign-in (`host.steps.signin.IssueWorkingKeys`) on a real store, on SQLite and PostgreSQL: the keys field 62
delivers under the terminal's TMK are the pending generation the store holds (pos-8583.md, "Keys and
security": 003 → PIK and MAK, 004 → and a TDK); a sign-in while keys are pending delivers them again (so a
third party's 0800 cannot replace the keys just given to the terminal), a 004 after a 003 adds a TDK to the
same keys; a sign-in that loses the store's compare-and-set to another node delivers what that node stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from posgate.host.context import Kind, TxnContext
from posgate.host.ports import Policy
from posgate.host.services import TerminalCache
from posgate.host.sql_ports import SqlTerminals
from posgate.host.steps.signin import IssueWorkingKeys
from posgate.iso8583.framing import PosFrame
from posgate.security.at_rest import CardVault, load_or_create_master_key
from posgate.security.keys import kcv
from posgate.security.signin import WorkingKeys, new_working_keys, unwrap_working_keys
from posgate.store.acquirer import provision_terminal
from posgate.store.db import make_engine, migrate
from posgate.store.models import Merchant, SealedKey, Terminal
from posgate.store.runtime import Store
from posgate.store.terminal_keys import load_terminal_keys

TID, MID = "10000039", "898440153110039"
TMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
POLICY = Policy(
    acquirer_id="00000000001",
    max_amount_fen=10**9,
    issuer_timeout_s=1.0,
    sign_in_window_s=60.0,
    sign_in_limit=100,
)


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[tuple[Store, CardVault]]:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=4)
    vault = CardVault(load_or_create_master_key(tmp_path / "master.key"))

    def setup(session) -> None:  # type: ignore[no-untyped-def]
        session.add(Merchant(mid=MID, name="Sign-in Test", mcc="5311", status="live"))
        session.flush()
        provision_terminal(session, vault, TID, MID, TMK, kcv(TMK), mac_algorithm="cup_ecb")

    store.transact(setup)
    yield store, vault
    store.close()


def _terminals(db: Store, vault: CardVault) -> SqlTerminals:
    return SqlTerminals(db, vault, TerminalCache(ttl_s=0.0), {})


async def _sign_in(
    terminals: SqlTerminals, nmc: str = "003", n: int = 1
) -> tuple[str | None, WorkingKeys | None]:
    """An 0800 with 60.3 = `nmc`, received `n` seconds after the first: (field 39 as the step decided it,
    None if it decided nothing — the pipeline would then approve —, and field 62's keys)."""
    record = await terminals.load(TID)
    assert record is not None
    now = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC) + dt.timedelta(seconds=n)
    request = {"t": "0800", "11": f"{900000 + n:06d}", "41": TID, "42": MID, "60": "00000001" + nmc}
    ctx = TxnContext(
        frame=PosFrame(b"", b"", b""),
        request=request,
        received_at=now,
        local_now=now.replace(tzinfo=None),
        kind=Kind.SIGN_IN,
    )
    ctx.terminal = record
    await IssueWorkingKeys(terminals, POLICY).commit(ctx)
    field62 = ctx.response_extra.get("62")
    if field62 is not None:
        assert field62 == field62.upper()  # hex digits as the spec writes them
    code = ctx.result.code if ctx.result.reason is not None else None
    return code, unwrap_working_keys(TMK, bytes.fromhex(field62)) if field62 else None


def _pending(db: Store, vault: CardVault) -> dict[str, bytes]:
    return db.transact(lambda s: load_terminal_keys(s, vault, TID)).pending


async def test_a_sign_in_delivers_the_pending_keys_and_a_second_one_delivers_them_again(
    store: tuple[Store, CardVault],
) -> None:
    db, vault = store
    terminals = _terminals(db, vault)
    code, keys = await _sign_in(terminals)
    assert code == "00" and keys is not None and keys.tdk is None
    assert keys.mak[:8] == keys.mak[8:]  # a CUP ECB terminal's MAK is K|K
    assert _pending(db, vault) == {"PIK": keys.pik, "MAK": keys.mak}
    code, again = await _sign_in(terminals, n=2)  # someone's 0800 while they are pending: the same keys
    assert code == "00" and again == keys
    assert _pending(db, vault) == {"PIK": keys.pik, "MAK": keys.mak}


async def test_a_004_sign_in_delivers_a_tdk_and_after_a_003_adds_one_to_the_same_keys(
    store: tuple[Store, CardVault],
) -> None:
    db, vault = store
    terminals = _terminals(db, vault)
    code, first = await _sign_in(terminals, "003")
    assert code == "00" and first is not None and first.tdk is None
    code, with_tdk = await _sign_in(terminals, "004", n=2)
    assert code == "00" and with_tdk is not None and with_tdk.tdk is not None
    assert (with_tdk.pik, with_tdk.mak) == (first.pik, first.mak)  # the keys the terminal was given
    assert _pending(db, vault) == {"PIK": first.pik, "MAK": first.mak, "TDK": with_tdk.tdk}
    code, again = await _sign_in(terminals, "004", n=3)  # and again: the same three
    assert code == "00" and again == with_tdk
    code, without = await _sign_in(terminals, "003", n=4)  # a 003 now: PIK and MAK, no TDK asked for
    assert code == "00" and without == WorkingKeys(pik=first.pik, mak=first.mak)


async def test_a_first_sign_in_with_004_gets_all_three_keys(store: tuple[Store, CardVault]) -> None:
    db, vault = store
    code, keys = await _sign_in(_terminals(db, vault), "004")
    assert code == "00" and keys is not None and keys.tdk is not None
    assert _pending(db, vault) == {"PIK": keys.pik, "MAK": keys.mak, "TDK": keys.tdk}


async def test_an_x919_terminal_gets_a_mak_with_distinct_halves(store: tuple[Store, CardVault]) -> None:
    db, vault = store
    db.transact(lambda s: s.execute(update(Terminal).where(Terminal.tid == TID).values(mac_algorithm="x919")))
    code, keys = await _sign_in(_terminals(db, vault))
    assert code == "00" and keys is not None and keys.mak[:8] != keys.mak[8:]


async def test_a_terminal_without_a_tmk_gets_97_and_no_keys(store: tuple[Store, CardVault]) -> None:
    db, vault = store
    db.transact(
        lambda s: s.execute(delete(SealedKey).where(SealedKey.owner_ref == TID, SealedKey.purpose == "TMK"))
    )
    assert await _sign_in(_terminals(db, vault)) == ("97", None)
    assert _pending(db, vault) == {}


async def test_pending_keys_that_lost_their_mak_in_the_store_are_replaced_by_a_whole_generation(
    store: tuple[Store, CardVault],
) -> None:
    """A pending generation missing a key (a partial restore, a hand-edited row) is not delivered in part:
    the sign-in offers a new, whole generation."""
    db, vault = store
    terminals = _terminals(db, vault)
    code, first = await _sign_in(terminals)
    assert code == "00" and first is not None
    db.transact(
        lambda s: s.execute(
            delete(SealedKey).where(SealedKey.owner_ref == TID, SealedKey.purpose == "MAK.next")
        )
    )
    code, keys = await _sign_in(terminals, n=2)
    assert code == "00" and keys is not None and keys.pik != first.pik
    assert _pending(db, vault) == {"PIK": keys.pik, "MAK": keys.mak}


class _LosesTo(SqlTerminals):
    """A node whose offers race another node's sign-in of the same terminal: before each of its first
    `races` offers, the other node's offer is stored."""

    def __init__(self, other: SqlTerminals, races: int) -> None:
        super().__init__(other.store, other.vault, other.cache, other.key_cache)
        self.other, self.races = other, races
        self.offered: list[WorkingKeys] = []  # the other node's keys, in the order it stored them

    async def offer(
        self, tid: str, keys: WorkingKeys, period: int, now: dt.datetime, seen: dt.datetime | None
    ) -> bool:
        if self.races > 0:
            self.races -= 1
            theirs = new_working_keys(with_tdk=False)
            later = now + dt.timedelta(microseconds=len(self.offered) + 1)
            assert await self.other.offer(tid, theirs, period, later, seen)
            self.offered.append(theirs)
        return await super().offer(tid, keys, period, now, seen)


async def test_a_sign_in_that_loses_to_another_nodes_delivers_the_keys_that_node_stored(
    store: tuple[Store, CardVault],
) -> None:
    db, vault = store
    racing = _LosesTo(_terminals(db, vault), races=1)
    code, keys = await _sign_in(racing)
    assert code == "00" and keys == racing.offered[0]
    assert _pending(db, vault) == {"PIK": keys.pik, "MAK": keys.mak}


async def test_a_sign_in_that_keeps_losing_is_96_and_never_delivers_keys_the_store_does_not_hold(
    store: tuple[Store, CardVault],
) -> None:
    db, vault = store
    racing = _LosesTo(_terminals(db, vault), races=3)  # every attempt of one sign-in loses
    code, keys = await _sign_in(racing, "004")  # the other nodes' keys have no TDK: offered anew each time
    assert (code, keys) == ("96", None)


async def test_sign_ins_over_the_limit_are_65_and_change_nothing(store: tuple[Store, CardVault]) -> None:
    db, vault = store
    terminals = SqlTerminals(db, vault, TerminalCache(ttl_s=0.0), {})
    limited = Policy(**{**POLICY.__dict__, "sign_in_limit": 1})
    record = await terminals.load(TID)
    assert record is not None
    code, keys = await _sign_in(terminals)
    assert code == "00" and keys is not None
    now = dt.datetime(2030, 1, 2, 3, 4, 9, tzinfo=dt.UTC)
    request = {"t": "0800", "11": "900009", "41": TID, "42": MID, "60": "00000001004"}
    ctx = TxnContext(
        frame=PosFrame(b"", b"", b""),
        request=request,
        received_at=now,
        local_now=now.replace(tzinfo=None),
        kind=Kind.SIGN_IN,
    )
    ctx.terminal = record
    await IssueWorkingKeys(terminals, limited).commit(ctx)
    assert ctx.result.code == "65" and "62" not in ctx.response_extra
    assert _pending(db, vault) == {"PIK": keys.pik, "MAK": keys.mak}  # no TDK added
