"""The clearing run on SQLite and PostgreSQL: what clears on which date, the fees and journal entries of
each kind, re-runs that add nothing, late transactions and late cancellations (unwind, reclear)."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from posgate.settlement.clearing import DayNotClosed, run_clearing
from posgate.settlement.ledger_store import entry_lines, trial_balance, unbalanced_entries, verify_balances
from posgate.settlement.rates import Rates
from posgate.store.models_ledger import ClearingEntry, ClearingRun
from posgate.store.runtime import Store
from posgate.tools.clearing_day_factory import (
    CREDIT_CARD,
    DEBIT_CARD,
    EXAMPLE_MID,
    EXAMPLE_MID_2,
    DayBuilder,
)

TZ = "Asia/Shanghai"
D = dt.date(2026, 3, 10)
RATES = Rates()


@pytest.fixture
def store(example_store: Store) -> Store:
    return example_store


def at(day: dt.date, hh: int, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm, ss))


def clear(store: Store, day: dt.date, builder: DayBuilder, local: dt.datetime | None = None):  # type: ignore[no-untyped-def]
    """Run clearing of `day` at local time `local` (default: the cut-off plus the grace period)."""
    local = local or at(day, 23, 5, 1)
    return run_clearing(store, day, RATES, TZ, now=builder.utc(local))


def entries(store: Store) -> dict[int, ClearingEntry]:
    return store.transact(lambda s: {e.transaction_id: e for e in s.scalars(select(ClearingEntry))})


def assert_books_balance(store: Store) -> None:
    assert store.transact(trial_balance) == 0
    assert store.transact(unbalanced_entries) == []
    assert store.transact(verify_balances) == []


def test_a_day_clears_what_moves_money_once_with_its_fees(store: Store) -> None:
    b = DayBuilder()
    with b.writing(store):
        s1 = b.sale(at(D, 10), 10_000, EXAMPLE_MID, DEBIT_CARD)
        s2 = b.sale(at(D, 11), 1_000_000, EXAMPLE_MID, CREDIT_CARD)
        s3 = b.sale(at(D, 12), 2_000_000, EXAMPLE_MID, DEBIT_CARD)  # every cap applies
        r1 = b.refund(at(D, 13), s1, 3_000)
        r2 = b.refund(at(D, 13, 30), s1, 2_000)
        voided = b.sale(at(D, 14), 5_000, EXAMPLE_MID, DEBIT_CARD)
        b.void(at(D, 14, 5), voided)
        reversed_ = b.sale(at(D, 15), 6_000, EXAMPLE_MID, DEBIT_CARD)
        b.reversal(at(D, 15, 0, 30), reversed_, linked=False)
        preauth = b.preauth(at(D, 16), 50_000, EXAMPLE_MID_2, CREDIT_CARD)
        completion = b.completion(at(D, 17), preauth, 42_000)  # completed for less
        preauth2 = b.preauth(at(D, 16, 30), 30_000, EXAMPLE_MID_2, CREDIT_CARD)
        b.completion_void(at(D, 17, 35), b.completion(at(D, 17, 30), preauth2, 30_000))
        b.preauth_void(at(D, 16, 45), b.preauth(at(D, 16, 40), 10_000, EXAMPLE_MID_2, DEBIT_CARD))
        b.sale(at(D, 18), 7_000, EXAMPLE_MID, DEBIT_CARD, state="declined")
        b.sale(at(D, 18, 10), 8_000, EXAMPLE_MID, DEBIT_CARD, state="timed_out")
        b.sale(at(D, 18, 20), 9_000, EXAMPLE_MID, DEBIT_CARD, state="pending")
        stranger = b.sale(at(D, 19), 1_000, "898440100000099", DEBIT_CARD)  # not our merchant
        last_minute = b.sale(at(D, 22, 59, 59), 500, EXAMPLE_MID_2, DEBIT_CARD)
        late = b.sale(at(D, 23, 0, 0), 7_700, EXAMPLE_MID_2, DEBIT_CARD)
        yesterday_late = b.sale(at(D - dt.timedelta(days=1), 23, 30), 1_234, EXAMPLE_MID_2, DEBIT_CARD)

    result = clear(store, D, b)
    cleared = entries(store)
    assert set(cleared) == {s1, s2, s3, r1, r2, completion, stranger, last_minute, yesterday_late}
    assert (result.cleared, result.adjusted, result.pending) == (9, 0, 1)
    assert result.sales_fen == 10_000 + 1_000_000 + 2_000_000 + 42_000 + 1_000 + 500 + 1_234
    assert result.refunds_fen == 5_000
    fees = {txn: (e.amount_fen, e.mdr_fen, e.interchange_fen, e.network_fen) for txn, e in cleared.items()}
    assert fees[s1] == (10_000, 50, 35, 3)
    assert fees[s2] == (1_000_000, 6_000, 4_500, 325)
    assert fees[s3] == (2_000_000, 2_000, 1_300, 325)
    assert fees[r1] == (-3_000, 0, 0, 0)
    assert fees[completion] == (42_000, 231, 189, 14)  # Corner Cafe: credit 0.55 %
    assert cleared[s2].card_kind == "credit" and cleared[s3].card_kind == "debit"
    assert store.transact(lambda s: entry_lines(s, f"clear:{s3}")) == [
        ("issuer_receivable:Bank D", 2_000_000 - 1_300 - 325),
        ("interchange_expense", 1_300),
        ("network_fee_expense", 325),
        (f"merchant_payable:{EXAMPLE_MID}", -(2_000_000 - 2_000)),
        ("fee_income:mdr", -2_000),
    ]
    assert store.transact(lambda s: entry_lines(s, f"clear:{r2}")) == [
        ("issuer_receivable:Bank D", -2_000),
        (f"merchant_payable:{EXAMPLE_MID}", 2_000),
    ]
    assert dict(store.transact(lambda s: entry_lines(s, f"clear:{stranger}")))["suspense"] == -995
    assert_books_balance(store)

    again = clear(store, D, b)
    assert (again.cleared, again.adjusted, again.postings) == (0, 0, 0)
    assert entries(store).keys() == cleared.keys()
    runs = store.transact(lambda s: s.scalars(select(ClearingRun).order_by(ClearingRun.id)).all())
    assert [(r.status, r.cleared_count, r.postings_count) for r in runs] == [
        ("finished", 9, result.postings),
        ("finished", 0, 0),
    ]

    nxt = clear(store, D + dt.timedelta(days=1), b)
    assert nxt.cleared == 1 and entries(store)[late].clearing_date == D + dt.timedelta(days=1)
    assert entries(store)[last_minute].clearing_date == D
    assert_books_balance(store)


def test_a_day_is_not_cleared_before_its_cut_off_and_grace(store: Store) -> None:
    b = DayBuilder()
    with pytest.raises(
        DayNotClosed, match=r"clearing date 2026-03-10 closes at 23:00 Asia/Shanghai \(\+300 s"
    ):
        clear(store, D, b, at(D, 23, 4))
    early = run_clearing(store, D, RATES, TZ, now=b.utc(at(D, 12)), allow_open_day=True)
    assert early.cleared == 0


def test_cancellations_after_clearing_unwind_and_reclear_on_their_own_date(store: Store) -> None:
    D1 = D + dt.timedelta(days=1)
    D2 = D + dt.timedelta(days=2)
    b = DayBuilder()
    with b.writing(store):
        voided_late = b.sale(at(D, 22, 50), 10_000, EXAMPLE_MID, DEBIT_CARD)
        flip = b.sale(at(D, 22, 55), 20_000, EXAMPLE_MID, CREDIT_CARD)
        restored = b.sale(at(D, 22, 58), 30_000, EXAMPLE_MID, DEBIT_CARD)
        voided_early = b.sale(at(D, 21), 40_000, EXAMPLE_MID, DEBIT_CARD)
        void_early = b.void(at(D, 21, 30), voided_early)
        preauth = b.preauth(at(D, 19), 60_000, EXAMPLE_MID_2, CREDIT_CARD)
        completion = b.completion(at(D, 20), preauth, 50_000)
    first = clear(store, D, b, at(D, 23, 6))
    assert first.cleared == 4  # voided_late, flip, restored, completion

    with b.writing(store):
        void_late = b.void(at(D, 23, 10), voided_late)  # after the run: window D+1
        b.reversal(at(D, 23, 20), void_early)  # gives voided_early back, after its run
        b.reversal(at(D1, 8), completion)
        flip_void = b.void(at(D1, 9), flip)
        b.reversal(at(D1, 9, 0, 20), flip_void)  # the void undone before any run saw it
        void_restored = b.void(at(D1, 10), restored)
    second = clear(store, D1, b)
    cleared = entries(store)
    assert (second.cleared, second.adjusted) == (1, 3)
    assert cleared[voided_early].kind == "sale" and cleared[voided_early].clearing_date == D1
    unwinds = {e.adjusts_id: e for e in cleared.values() if e.adjusts_id is not None}
    assert set(unwinds) == {voided_late, completion, restored}
    assert unwinds[voided_late].transaction_id == void_late
    assert (unwinds[voided_late].amount_fen, unwinds[voided_late].mdr_fen) == (-10_000, -50)
    assert unwinds[completion].kind == "unwind" and unwinds[completion].clearing_date == D1
    assert store.transact(lambda s: entry_lines(s, f"adjust:{voided_late}:1")) == [
        (account, -amount)
        for account, amount in store.transact(lambda s: entry_lines(s, f"clear:{voided_late}"))
    ]

    with b.writing(store):
        b.reversal(at(D1, 23, 30), void_restored)  # window D+2: the sale is back
    third = clear(store, D2, b)
    assert (third.cleared, third.adjusted) == (0, 1)
    reclear = store.transact(
        lambda s: s.scalars(select(ClearingEntry).where(ClearingEntry.kind == "reclear")).one()
    )
    assert (reclear.adjusts_id, reclear.amount_fen, reclear.clearing_date) == (restored, 30_000, D2)

    for day in (D, D1, D2):  # nothing more, however often
        assert clear(store, day, b).postings == 0
    net: dict[int, int] = {}
    for e in entries(store).values():
        original = e.adjusts_id or e.transaction_id
        net[original] = net.get(original, 0) + e.amount_fen
    assert net == {voided_late: 0, flip: 20_000, restored: 30_000, voided_early: 40_000, completion: 0}
    assert_books_balance(store)


def test_two_runs_of_a_date_at_once_clear_each_transaction_once(store: Store) -> None:
    """In small chunks, so that they meet (PostgreSQL: without taking turns the losing run failed after
    five conflicts in a row; SQLite: they take turns on the write lock)."""
    b = DayBuilder()
    with b.writing(store):
        for n in range(120):
            b.sale(at(D, 8) + dt.timedelta(minutes=n), 1000 + n, EXAMPLE_MID, DEBIT_CARD)
    small = RATES.model_copy(update={"clearing": RATES.clearing.model_copy(update={"chunk_size": 7})})
    with ThreadPoolExecutor(2) as pool:
        runs = list(
            pool.map(lambda _: run_clearing(store, D, small, TZ, now=b.utc(at(D, 23, 5, 1))), range(2))
        )
    assert sum(r.cleared for r in runs) == 120 and len(entries(store)) == 120
    assert_books_balance(store)
