"""The issuer simulator's books on a real store (SQLite and PostgreSQL): claims, guarded money moves,
reversals, tombstones."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.bootstrap.seed import load_demo_fixture
from posgate.fixtures.document import read_demo_fixture
from posgate.iso8583.reasons import Reason
from posgate.issuer import books
from posgate.issuer.messages import AuthKey
from posgate.issuer.rules import Decision, Effect
from posgate.security.at_rest import CardVault
from posgate.store.db import make_engine, migrate
from posgate.store.models_simulator import SimAccount, SimAuthorization, SimCard
from posgate.store.runtime import Store

BANK = "Demo Bank A"
NOW = dt.datetime(2026, 11, 26, 10, 15)


@pytest.fixture
def store(database_url: str) -> Iterator[tuple[Store, CardVault]]:
    engine = make_engine(database_url)
    migrate(engine)
    vault = CardVault(os.urandom(32))
    store = Store(engine)
    store.transact(lambda session: load_demo_fixture(session, vault, read_demo_fixture(), "test"))
    yield store, vault
    store.close()


def key(stan: str, mti: str = "0200") -> AuthKey:
    return AuthKey(BANK, "00049990000", stan, "1126101500", mti)


def account_of(session: Session, vault: CardVault, pan: str) -> SimAccount:
    card = books.find_card(session, vault, BANK, pan)
    assert card is not None
    account = session.get(SimAccount, card.account_id)
    assert account is not None
    return account


def test_find_card_by_pan_and_bank(store: tuple[Store, CardVault]) -> None:
    st, vault = store
    with st.sessions() as session:
        card = books.find_card(session, vault, BANK, "6229990000000046")
        assert card is not None and card.snapshot.state == "lost"
        row = session.get(SimCard, card.id)
        assert row is not None and row.pan_masked == "622999******0046" and row.account_id == card.account_id
        account = session.get(SimAccount, card.account_id)
        assert account is not None and card.account.balance_fen == account.balance_fen
        assert books.find_card(session, vault, "Demo Bank B", "6229990000000046") is None
        assert books.find_card(session, vault, BANK, "6229990000000095") is None


def test_claim_takes_a_key_once(store: tuple[Store, CardVault]) -> None:
    st, _ = store

    def work(session: Session) -> tuple[bool, bool, bool]:
        first = books.claim(session, key("000001"), "000000", 100, None)
        second = books.claim(session, key("000001"), "000000", 100, None)
        other = books.claim(session, key("000002"), "000000", 100, None)  # the transaction goes on
        return first is not None, second is not None, other is not None

    assert st.transact(work) == (True, False, True)
    assert st.transact(lambda session: books.claim(session, key("000001"), "000000", 100, None)) is None


class Abort(Exception):
    pass


@pytest.mark.parametrize("first_commits", [True, False], ids=["first commits", "first rolls back"])
def test_a_concurrent_claim_waits_for_the_first_holder_of_the_key(
    store: tuple[Store, CardVault], first_commits: bool
) -> None:
    st, _ = store
    claimed, go_on = threading.Event(), threading.Event()

    def first(session: Session) -> int | None:
        auth_id = books.claim(session, key("000030"), "000000", 100, None)
        claimed.set()
        go_on.wait(10)
        if not first_commits:
            raise Abort
        return auth_id

    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(st.transact, first)
        assert claimed.wait(10)
        second = pool.submit(st.transact, lambda s: books.claim(s, key("000030"), "000000", 100, None))
        time.sleep(0.3)
        assert not second.done()  # blocked on the key (PostgreSQL) or on the write lock (SQLite)
        go_on.set()
        if first_commits:
            assert holder.result(10) is not None
            assert second.result(10) is None
        else:
            with pytest.raises(Abort):
                holder.result(10)
            assert second.result(10) is not None


def test_debit_is_guarded_against_a_stale_snapshot(store: tuple[Store, CardVault]) -> None:
    st, vault = store

    def work(session: Session) -> tuple[Reason | None, Reason | None, int]:
        account = account_of(session, vault, "6229990000000020")  # 1000 fen
        first = books.apply_effect(session, account.id, "debit", Decision(Reason.APPROVED, Effect.DEBIT, 800))
        second = books.apply_effect(
            session, account.id, "debit", Decision(Reason.APPROVED, Effect.DEBIT, 800)
        )
        session.refresh(account)
        return first, second, account.balance_fen

    assert st.transact(work) == (None, Reason.INSUFFICIENT_FUNDS, 200)


def test_forced_debit_may_overdraw(store: tuple[Store, CardVault]) -> None:
    st, vault = store

    def work(session: Session) -> int:
        account = account_of(session, vault, "6229990000000020")
        decision = Decision(Reason.APPROVED, Effect.DEBIT, 1500, forced=True)
        assert books.apply_effect(session, account.id, "debit", decision) is None
        session.refresh(account)
        return account.balance_fen

    assert st.transact(work) == -500


def test_hold_and_credit_on_a_credit_account(store: tuple[Store, CardVault]) -> None:
    st, vault = store
    account_id, limit = st.transact(lambda session: _credit_account(session, vault))
    assert limit == 200_000

    def moves(session: Session) -> tuple[int, int]:
        account = session.get(SimAccount, account_id)
        assert account is not None
        hold = Decision(Reason.APPROVED, Effect.HOLD, 150_000)
        assert books.apply_effect(session, account.id, "credit", hold) is None
        debit = Decision(Reason.APPROVED, Effect.DEBIT, 50_001)
        assert books.apply_effect(session, account.id, "credit", debit) is Reason.INSUFFICIENT_FUNDS
        credit = Decision(Reason.APPROVED, Effect.CREDIT, 1_000)
        assert books.apply_effect(session, account.id, "credit", credit) is None
        session.refresh(account)
        return account.balance_fen, account.held_fen

    assert st.transact(moves) == (-1_000, 150_000)


def _credit_account(session: Session, vault: CardVault) -> tuple[int, int]:
    card = books.find_card(session, vault, "Demo Bank B", "6228880000000024")
    assert card is not None
    account = session.get(SimAccount, card.account_id)
    assert account is not None
    return account.id, account.credit_limit_fen


def test_reverse_undoes_once_then_nothing(store: tuple[Store, CardVault]) -> None:
    st, vault = store

    def sale(session: Session) -> None:
        account = account_of(session, vault, "6229990000000012")
        auth_id = books.claim(session, key("000010"), "000000", 2_000, None)
        assert auth_id is not None
        decision = Decision(Reason.APPROVED, Effect.DEBIT, 2_000)
        assert books.apply_effect(session, account.id, account.kind, decision) is None
        books.finish(session, auth_id, decision, "123456", account.id)

    st.transact(sale)
    outcomes = [
        st.transact(lambda s: books.reverse(s, key("000010"), "000000", 2_000, NOW)) for _ in range(3)
    ]
    assert outcomes == [
        books.ReversalOutcome.REVERSED,
        books.ReversalOutcome.NOTHING_TO_UNDO,
        books.ReversalOutcome.NOTHING_TO_UNDO,
    ]
    balance = st.transact(lambda s: account_of(s, vault, "6229990000000012").balance_fen)
    assert balance == 1_000_000
    row = st.transact(lambda s: s.scalar(select(SimAuthorization).where(SimAuthorization.stan == "000010")))
    assert (row.state, row.reversed_at) == ("reversed", NOW)


def test_reverse_of_an_unknown_original_leaves_a_tombstone(store: tuple[Store, CardVault]) -> None:
    st, _ = store
    outcome = st.transact(lambda s: books.reverse(s, key("000020"), "000000", 500, NOW))
    assert outcome is books.ReversalOutcome.TOMBSTONE
    row = st.transact(lambda s: books.find_authorization(s, key("000020")))
    assert row is not None
    assert (row.state, row.effect, row.response_code) == ("reversed", "none", books.LATE_ORIGINAL_CODE)
    assert st.transact(lambda s: books.claim(s, key("000020"), "000000", 500, None)) is None
    again = st.transact(lambda s: books.reverse(s, key("000020"), "000000", 500, NOW))
    assert again is books.ReversalOutcome.NOTHING_TO_UNDO


def test_pin_failures_are_stored(store: tuple[Store, CardVault]) -> None:
    st, vault = store

    def work(session: Session) -> int:
        card = books.find_card(session, vault, BANK, "6229990000000053", lock=True)
        assert card is not None
        books.set_pin_failures(session, card.id, 2)
        again = books.find_card(session, vault, BANK, "6229990000000053")
        assert again is not None
        return again.snapshot.pin_failures

    assert st.transact(work) == 2
