"""The store's side of originals, on SQLite and PostgreSQL, through its public functions: a refund takes its
amount from what is left of its original and nothing else (concurrent refunds cannot together exceed it),
gives it back when declined; an original moves state only from the state expected; stand-in totals count
only approved stand-in sales of that card on that day."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator

import pytest

from posgate.store.db import make_engine, migrate
from posgate.store.models import Transaction
from posgate.store.originals import move_original, release_refund, reserve_refund, stand_in_total_today
from posgate.store.runtime import Store

DAY = dt.date(2026, 11, 26)
NOW = dt.datetime(2026, 11, 26, 10, 15)
_stans = itertools.count(1)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=1, inline=True)
    yield store
    store.close()


def _add(store: Store, amount_fen: int, **values: object) -> int:
    row = Transaction(
        tid="10000001",
        mid="898440153110001",
        batch_no="000001",
        stan=f"{next(_stans):06d}",
        mti="0200",
        processing_code="000000",
        kind="sale",
        amount_fen=amount_fen,
        created_at=NOW,
        **{"state": "approved", "business_date": DAY, **values},
    )

    def add(session) -> int:  # type: ignore[no-untyped-def]
        session.add(row)
        session.flush()
        return row.id

    return store.transact(add)


def _refunded(store: Store, txn_id: int) -> int:
    return store.transact(lambda s: s.get(Transaction, txn_id)).refunded_fen


def test_refunds_take_from_what_is_left_of_their_original_only(store: Store) -> None:
    sale, other = _add(store, 10_000), _add(store, 5_000)
    assert store.transact(lambda s: reserve_refund(s, sale, 6_000)) is True
    assert store.transact(lambda s: reserve_refund(s, sale, 4_001)) is False  # 40.00 left
    assert _refunded(store, sale) == 6_000
    assert store.transact(lambda s: reserve_refund(s, sale, 4_000)) is True  # exactly what is left
    assert _refunded(store, sale) == 10_000
    assert store.transact(lambda s: reserve_refund(s, sale, 1)) is False
    assert _refunded(store, other) == 0  # the other sale is untouched
    store.transact(lambda s: release_refund(s, sale, 4_000))  # that refund was declined
    assert (_refunded(store, sale), _refunded(store, other)) == (6_000, 0)
    assert store.transact(lambda s: reserve_refund(s, sale, 4_000)) is True
    assert store.transact(lambda s: reserve_refund(s, 999_999, 1)) is False  # no such original


def test_an_original_moves_only_from_the_state_expected(store: Store) -> None:
    sale, other = _add(store, 1_000), _add(store, 2_000)
    assert store.transact(lambda s: move_original(s, sale, "approved", "voided")) is True
    assert store.transact(lambda s: move_original(s, sale, "approved", "voided")) is False  # a second void
    assert store.transact(lambda s: s.get(Transaction, sale)).state == "voided"
    assert store.transact(lambda s: s.get(Transaction, other)).state == "approved"
    assert store.transact(lambda s: move_original(s, sale, "voided", "approved")) is True  # void reversed


def test_stand_in_totals_count_approved_stand_in_sales_of_that_card_that_day(store: Store) -> None:
    card, other_card = "a" * 64, "b" * 64
    _add(store, 100, pan_hash=card, stand_in=True)
    _add(store, 200, pan_hash=card, stand_in=True)
    _add(store, 400, pan_hash=card, stand_in=False)  # approved by the issuer
    _add(store, 800, pan_hash=card, stand_in=True, state="reversed")
    _add(store, 1_600, pan_hash=other_card, stand_in=True)
    _add(store, 3_200, pan_hash=card, stand_in=True, business_date=DAY - dt.timedelta(days=1))
    assert store.transact(lambda s: stand_in_total_today(s, card, DAY)) == 300
    assert store.transact(lambda s: stand_in_total_today(s, other_card, DAY)) == 1_600
    assert store.transact(lambda s: stand_in_total_today(s, "c" * 64, DAY)) == 0
