"""The ledger in the store, on SQLite and PostgreSQL: balanced entries only, idempotent by business key,
append-only (the database refuses UPDATE and DELETE), balances derivable from the postings at any time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from posgate.settlement.ledger import Entry
from posgate.settlement.ledger_store import (
    balances,
    balances_from_postings,
    entry_lines,
    post,
    trial_balance,
    unbalanced_entries,
    verify_balances,
)
from posgate.store.db import make_engine, migrate
from posgate.store.runtime import Store

DAY = dt.date(2026, 5, 1)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=1, inline=True)
    yield store
    store.close()


def _entry(key: str, amount: int, day: dt.date = DAY) -> Entry:
    return Entry(key, "clear", day, (("issuer_receivable:Bank A", amount), ("merchant_payable:M1", -amount)))


def test_posting_is_idempotent_by_business_key(store: Store) -> None:
    assert store.transact(lambda s: post(s, [_entry("clear:1", 500), _entry("clear:2", 700)])) == (2, 4)
    assert store.transact(lambda s: post(s, [_entry("clear:1", 500), _entry("clear:3", 100)])) == (1, 2)
    assert store.transact(lambda s: post(s, [_entry("clear:1", 999)])) == (0, 0)  # the key decides
    assert store.transact(lambda s: entry_lines(s, "clear:1")) == [
        ("issuer_receivable:Bank A", 500),
        ("merchant_payable:M1", -500),
    ]
    assert store.transact(lambda s: balances(s)) == {
        "issuer_receivable:Bank A": 1300,
        "merchant_payable:M1": -1300,
    }
    assert store.transact(trial_balance) == 0


def test_balances_as_of_a_date_and_from_the_postings_agree(store: Store) -> None:
    later = DAY + dt.timedelta(days=1)
    store.transact(lambda s: post(s, [_entry("clear:1", 500), _entry("clear:2", 200, later)]))
    paid = Entry("payout:1", "payout", later, (("merchant_payable:M1", 500), ("settlement_cash", -500)))
    store.transact(lambda s: post(s, [paid]))
    assert store.transact(lambda s: balances(s, prefix="merchant_payable:", through=DAY)) == {
        "merchant_payable:M1": -500
    }
    assert store.transact(lambda s: balances(s, prefix="merchant_payable:")) == {"merchant_payable:M1": -200}
    assert store.transact(lambda s: balances_from_postings(s))[("merchant_payable:M1", later)] == (500, 200)
    assert store.transact(verify_balances) == []
    assert store.transact(unbalanced_entries) == []


@pytest.mark.parametrize(
    "statement", ["UPDATE ledger_postings SET amount_fen = 1", "DELETE FROM ledger_entries"]
)
def test_the_journal_is_append_only(store: Store, statement: str) -> None:
    store.transact(lambda s: post(s, [_entry("clear:1", 500)]))
    with pytest.raises(DatabaseError, match="append-only"):
        store.transact(lambda s: s.execute(text(statement)))
    assert store.transact(lambda s: entry_lines(s, "clear:1"))[0] == ("issuer_receivable:Bank A", 500)


# ---- the checks, on books written around this module (an extra posting line inserted directly)


def _add_line(store: Store, key: str, account: str, amount_fen: int) -> None:
    """Append a posting line to the entry `key` without going through `post` (INSERT is all the journal
    allows): the entry no longer sums to zero, and the per-day totals do not know the line."""
    _add_lines(store, [(key, account, amount_fen)])


def _add_lines(store: Store, lines: list[tuple[str, str, int]]) -> None:
    def add(session) -> None:  # type: ignore[no-untyped-def]
        for key, account, amount_fen in lines:
            entry_id = session.execute(
                text("SELECT id FROM ledger_entries WHERE key = :k"), {"k": key}
            ).scalar_one()
            account_id = session.execute(
                text("SELECT id FROM ledger_accounts WHERE code = :c"), {"c": account}
            ).scalar_one()
            line_no = session.execute(
                text("SELECT max(line_no) + 1 FROM ledger_postings WHERE entry_id = :e"), {"e": entry_id}
            ).scalar_one()
            session.execute(
                text(
                    "INSERT INTO ledger_postings (entry_id, line_no, account_id, amount_fen) "
                    "VALUES (:e, :n, :a, :amount)"
                ),
                {"e": entry_id, "n": line_no, "a": account_id, "amount": amount_fen},
            )

    store.transact(add)


@pytest.mark.parametrize("imbalance_fen", [-7, 5], ids=["more-credit", "more-debit"])
def test_an_unbalanced_entry_is_found_whichever_side_is_heavier(store: Store, imbalance_fen: int) -> None:
    store.transact(lambda s: post(s, [_entry("clear:1", 500), _entry("clear:2", 700)]))
    _add_line(store, "clear:2", "merchant_payable:M1", imbalance_fen)
    assert store.transact(trial_balance) == imbalance_fen
    assert store.transact(unbalanced_entries) == [("clear:2", imbalance_fen)]
    postings = (max(imbalance_fen, 0), 1200 + max(-imbalance_fen, 0))
    assert store.transact(verify_balances) == [
        f"merchant_payable:M1 {DAY}: totals (0, 1200) postings {postings}"
    ]


def test_imbalances_of_both_signs_are_each_listed_and_do_not_hide_in_the_sum(store: Store) -> None:
    store.transact(lambda s: post(s, [_entry("clear:1", 500), _entry("clear:2", 700), _entry("clear:3", 9)]))
    _add_line(store, "clear:1", "merchant_payable:M1", -3)
    _add_line(store, "clear:3", "issuer_receivable:Bank A", 3)
    assert store.transact(trial_balance) == 0  # the sum alone cannot see two opposite errors
    assert sorted(store.transact(unbalanced_entries)) == [("clear:1", -3), ("clear:3", 3)]
    assert store.transact(lambda s: unbalanced_entries(s, limit=1)) in ([("clear:1", -3)], [("clear:3", 3)])


def test_the_checks_of_empty_books_find_nothing(store: Store) -> None:
    assert store.transact(trial_balance) == 0
    assert store.transact(unbalanced_entries) == []
    assert store.transact(verify_balances) == []
    assert store.transact(lambda s: balances(s)) == {}


def test_a_line_on_an_account_and_day_the_totals_never_had_is_reported(store: Store) -> None:
    later = DAY + dt.timedelta(days=1)
    paid = Entry("payout:1", "payout", later, (("merchant_payable:M1", 500), ("settlement_cash", -500)))
    store.transact(lambda s: post(s, [_entry("clear:1", 500), paid]))
    _add_line(store, "clear:1", "settlement_cash", 1)  # settlement_cash has totals for `later` only
    assert store.transact(verify_balances) == [f"settlement_cash {DAY}: totals None postings (1, 0)"]
    assert store.transact(lambda s: balances_from_postings(s))[("settlement_cash", DAY)] == (1, 0)


def test_one_fen_lines_count_on_their_side(store: Store) -> None:
    store.transact(lambda s: post(s, [_entry("clear:1", 1)]))
    assert store.transact(lambda s: balances_from_postings(s)) == {
        ("issuer_receivable:Bank A", DAY): (1, 0),
        ("merchant_payable:M1", DAY): (0, 1),
    }
    assert store.transact(verify_balances) == []


def test_a_prefix_is_literal_text_not_a_like_pattern(store: Store) -> None:
    store.transact(lambda s: post(s, [_entry("clear:1", 500)]))
    assert store.transact(lambda s: balances(s, prefix="%")) == {}
    assert store.transact(lambda s: balances(s, prefix="issuer_receivable:")) == {
        "issuer_receivable:Bank A": 500
    }


def test_unbalanced_entries_are_listed_up_to_a_limit(store: Store) -> None:
    keys = [f"clear:{n:03d}" for n in range(101)]
    store.transact(lambda s: post(s, [_entry(key, 100) for key in keys]))
    _add_lines(store, [(key, "merchant_payable:M1", -1) for key in keys])
    assert len(store.transact(unbalanced_entries)) == 100  # a broken ledger is not read whole
    assert len(store.transact(lambda s: unbalanced_entries(s, limit=101))) == 101
    assert store.transact(trial_balance) == -101
