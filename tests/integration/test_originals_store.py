"""The store's side of originals, on SQLite and PostgreSQL, through its public functions: a refund takes its
amount from what is left of its original and nothing else (concurrent refunds cannot together exceed it),
gives it back when declined; an original moves state only from the state expected; stand-in totals count
only approved stand-in sales of that card on that day."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator

import pytest

from posgate.store.acquirer import due_saf_entries
from posgate.store.db import make_engine, migrate
from posgate.store.models import Transaction
from posgate.store.originals import (
    OriginalRecord,
    TerminalReversal,
    find_by_rrn,
    move_original,
    release_refund,
    reserve_refund,
    reverse_for_terminal,
    stand_in_total_today,
)
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
    defaults = {
        "tid": "10000001",
        "mid": "898440153110001",
        "batch_no": "000001",
        "mti": "0200",
        "kind": "sale",
        "processing_code": "000000",
    }
    row = Transaction(
        stan=f"{next(_stans):06d}",
        amount_fen=amount_fen,
        created_at=NOW,
        **{**defaults, "state": "approved", "business_date": DAY, **values},
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


def test_a_reserved_refund_names_its_original_and_a_refused_one_does_not(store: Store) -> None:
    """Whoever resolves the refund later (its outcome, or the recovery of a refund left in doubt) gives
    the reservation back to the original its row names."""
    sale = _add(store, 1_000)
    refund, too_big = _add(store, 600, kind="refund"), _add(store, 600, kind="refund")
    assert store.transact(lambda s: reserve_refund(s, sale, 600, refund)) is True
    assert store.transact(lambda s: reserve_refund(s, sale, 600, too_big)) is False
    rows = store.transact(lambda s: [s.get(Transaction, i).original_id for i in (sale, refund, too_big)])
    assert rows == [None, sale, None]


def test_an_original_is_found_by_its_rrn_with_everything_the_checks_need(store: Store) -> None:
    sale = _add(
        store,
        4_321,
        mti="0100",
        kind="preauth",
        tid="10000002",
        mid="898440153110002",
        batch_no="000007",
        pan_hash="d" * 64,
        issuer_name="Demo Bank A",
        auth_code="A1B2C3",
        transmission_dt="1126101500",
        network_stan="900123",
        refunded_fen=21,
        state="completed",
    )
    stan = store.transact(lambda s: s.get(Transaction, sale)).stan
    found = store.transact(lambda s: find_by_rrn(s, f"{sale:012d}"))
    assert found == OriginalRecord(
        id=sale,
        mti="0100",
        kind="preauth",
        state="completed",
        tid="10000002",
        mid="898440153110002",
        batch_no="000007",
        stan=stan,
        amount_fen=4_321,
        refunded_fen=21,
        pan_hash="d" * 64,
        issuer_name="Demo Bank A",
        auth_code="A1B2C3",
        transmission_dt="1126101500",
        settled=False,
        business_date=DAY,
        network_stan="900123",
    )
    assert found.rrn == f"{sale:012d}"
    for rrn in (f"{sale:011d}", f"{sale:013d}", f"{sale:011d}A", "", f"{sale + 1000:012d}"):
        assert store.transact(lambda s, rrn=rrn: find_by_rrn(s, rrn)) is None, rrn


def _row(store: Store, txn_id: int) -> Transaction:
    return store.transact(lambda s: s.get(Transaction, txn_id))


def _reverse(store: Store, txn_id: int, processing_code: str = "000000", **where: object) -> TerminalReversal:
    row = _row(store, txn_id)
    tid, stan, day = where.get("tid", row.tid), row.stan, where.get("day", DAY)
    return store.transact(
        lambda s: reverse_for_terminal(s, str(tid), stan, day, processing_code, "98", NOW)  # type: ignore[arg-type]
    )


def test_a_terminal_reversal_undoes_its_original_exactly_once(store: Store) -> None:
    sale = _add(store, 1_000, issuer_name="Demo Bank A", transmission_dt="1126101500")
    assert _reverse(store, sale) == TerminalReversal(sale, reversed_kind="sale")
    assert _reverse(store, sale) == TerminalReversal(sale)  # a second 0400 finds it reversed
    assert (_row(store, sale).state, _row(store, sale).updated_at) == ("reversed", NOW)
    due = store.transact(lambda s: due_saf_entries(s, NOW))  # one 0420, with the terminal's reason, due now
    assert [(item.mti, item.transaction_id, item.reason_code) for item in due] == [("0420", sale, "98")]
    yesterday = _add(store, 1_000, business_date=DAY - dt.timedelta(days=1))  # sent just before midnight
    assert _reverse(store, yesterday).reversed


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"kind": "balance", "processing_code": "310000"}, None),  # nothing to undo
        ({"refunded_fen": 1}, "it has been partly refunded"),  # reversing would pay twice
    ],
)
def test_what_a_terminal_reversal_leaves_alone(
    store: Store, values: dict[str, object], expected: str | None
) -> None:
    txn = _add(store, 1_000, **values)
    code = str(values.get("processing_code", "000000"))
    outcome = _reverse(store, txn, code)
    assert not outcome.reversed and outcome.refused == expected
    assert outcome.original_id == (txn if expected else None)
    assert _row(store, txn).state == "approved"


def test_a_terminal_reversal_finds_only_its_own_terminals_transaction_of_today_or_yesterday(
    store: Store,
) -> None:
    sale = _add(store, 1_000)
    assert _reverse(store, sale, tid="10000002") == TerminalReversal()
    assert _reverse(store, sale, day=DAY + dt.timedelta(days=2)) == TerminalReversal()
    assert _reverse(store, sale, "200000") == TerminalReversal()  # another processing code
    assert _row(store, sale).state == "approved"


def test_reversing_a_void_gives_its_sale_back_its_approved_state(store: Store) -> None:
    sale = _add(store, 1_000, state="voided")
    void = _add(store, 1_000, kind="void", processing_code="200000", original_id=sale)
    assert _reverse(store, void, "200000") == TerminalReversal(void, reversed_kind="void")
    assert (_row(store, void).state, _row(store, sale).state) == ("reversed", "approved")
