"""POS settlement (0500) against the host's totals, on SQLite and PostgreSQL: the batch closes only when all
four numbers agree — debit amount and count, credit amount and count — and the foreign totals are zero.
Which transactions count: approved sales and completions (and those later voided) in debit; approved
voids, completion voids and refunds in credit; nothing declined, reversed, pending or already settled."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from posgate.errors import DecodeError
from posgate.store.batches import (
    Totals,
    UploadRecord,
    host_totals,
    open_settlement,
    parse_totals,
    parse_upload_records,
    reconcile_batch,
    settle_batch,
    store_upload,
)
from posgate.store.db import make_engine, migrate
from posgate.store.models import (
    BatchSettlement,
    BatchUploadRecord,
    Merchant,
    ReconciliationItem,
    Terminal,
    Transaction,
)
from posgate.store.runtime import Store

TID, MID, BATCH = "10000001", "898440153110001", "000001"
DAY = dt.date(2026, 11, 26)
NOW = dt.datetime(2026, 11, 26, 18, 0)
MTI_CODE = {
    "sale": ("0200", "000000"),
    "completion": ("0200", "000000"),
    "void": ("0200", "200000"),
    "completion_void": ("0200", "200000"),
    "refund": ("0220", "200000"),
    "preauth": ("0100", "030000"),
    "balance": ("0200", "310000"),
}
_stans = itertools.count(1)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=1, inline=True)
    yield store
    store.close()


def _add(
    store: Store, kind: str, amount_fen: int, state: str = "approved", tid: str = TID, batch_no: str = BATCH
) -> None:
    mti, code = MTI_CODE[kind]
    n = next(_stans)
    row = Transaction(
        tid=tid,
        mid=MID,
        batch_no=batch_no,
        stan=f"{n:06d}",
        rrn=f"{n:012d}",  # written by finish_transaction in the host
        mti=mti,
        processing_code=code,
        business_date=DAY,
        kind=kind,
        amount_fen=amount_fen,
        state=state,
        created_at=NOW,
    )
    store.transact(lambda s: s.add(row))


@pytest.fixture
def batch(store: Store) -> Totals:
    """Debit 300.00 in 3 (a sale later voided among them), credit 80.00 in 2; and what must not count."""
    _add(store, "sale", 10_000)
    _add(store, "sale", 15_000, state="voided")
    _add(store, "completion", 5_000)
    _add(store, "void", 5_000)  # of a sale of 50.00 (not in this batch's rows: the void alone counts)
    _add(store, "refund", 3_000)
    _add(store, "sale", 99_999, state="declined")
    _add(store, "sale", 88_888, state="reversed")
    _add(store, "sale", 77_777, state="pending")
    _add(store, "refund", 66_666, state="declined")
    _add(store, "preauth", 55_555)
    _add(store, "balance", 0)
    _add(store, "sale", 44_444, tid="10000002")  # another terminal's
    return Totals(debit_fen=30_000, debit_count=3, credit_fen=8_000, credit_count=2)


def _field48(own: Totals, foreign: Totals = Totals()) -> str:
    return own.field48_part() + foreign.field48_part()


def _settle(store: Store, field48: str):  # type: ignore[no-untyped-def]
    return store.transact(lambda s: settle_batch(s, TID, MID, BATCH, DAY, field48, NOW))


def _unsettled(store: Store) -> int:
    return len(
        store.transact(
            lambda s: list(
                s.scalars(
                    select(Transaction.id).where(Transaction.tid == TID, Transaction.settlement_id.is_(None))
                )
            )
        )
    )


def test_the_host_counts_what_the_terminal_should(store: Store, batch: Totals) -> None:
    assert store.transact(lambda s: host_totals(s, TID, BATCH)) == batch


def test_equal_totals_close_the_batch(store: Store, batch: Totals) -> None:
    outcome = _settle(store, _field48(batch))
    assert outcome.balanced
    assert outcome.host_field48 == batch.field48_part("1") + Totals().field48_part("1")
    assert _unsettled(store) == 0
    row = store.transact(lambda s: s.get(BatchSettlement, outcome.settlement_id))
    assert (row.result, row.completed_at) == ("balanced", NOW)
    others = store.transact(
        lambda s: list(s.scalars(select(Transaction.settlement_id).where(Transaction.tid != TID)))
    )
    assert others == [None]  # another terminal's batch stays open


@pytest.mark.parametrize(
    "change",
    [
        {"debit_fen": 30_001},
        {"debit_count": 2},  # same amounts, one debit fewer
        {"debit_count": 4},
        {"credit_fen": 7_999},
        {"credit_count": 1},  # same amounts, one credit fewer
        {"credit_count": 3},
        {"debit_fen": 38_000, "credit_fen": 0, "credit_count": 0},  # the credits netted into the debits
    ],
    ids=lambda change: ",".join(f"{k}={v}" for k, v in change.items()),
)
def test_any_one_number_that_differs_leaves_the_batch_open(
    store: Store, batch: Totals, change: dict[str, int]
) -> None:
    theirs = Totals(**{**batch.__dict__, **change})
    outcome = _settle(store, _field48(theirs))
    assert not outcome.balanced
    assert outcome.host_field48 == batch.field48_part("2") + Totals().field48_part("2")
    assert parse_totals(outcome.host_field48[:31]) == batch  # the host tells its own totals
    assert _unsettled(store) == 11  # nothing closed: the terminal uploads its batch next
    assert store.transact(lambda s: open_settlement(s, TID, BATCH)) is not None


def test_foreign_card_totals_leave_the_batch_open(store: Store, batch: Totals) -> None:
    outcome = _settle(store, _field48(batch, Totals(debit_fen=100, debit_count=1)))
    assert not outcome.balanced
    assert _unsettled(store) == 11


def test_an_empty_batch_settles_with_zero_totals(store: Store) -> None:
    assert _settle(store, _field48(Totals())).balanced
    assert not _settle(store, _field48(Totals(debit_fen=0, debit_count=1))).balanced


# ---- batch upload records (field 48 of a 0320): n2 count + count × (org n2, STAN n6, PAN n20, amount n12)


def _record(org: str, stan: str, pan: str, amount_fen: int) -> str:
    return f"{org}{stan}{pan:0>20}{amount_fen:012d}"


def test_upload_records_parse_field_by_field() -> None:
    field48 = "03" + _record("00", "000123", "6229990000000012", 1_000)
    field48 += _record("01", "000124", "4222222222222", 25) + _record(
        "02", "000125", "6229990000000000014", 9
    )
    assert parse_upload_records(field48) == [
        UploadRecord("00", "000123", "6229990000000012", 1_000),
        UploadRecord("01", "000124", "4222222222222", 25),
        UploadRecord("02", "000125", "6229990000000000014", 9),
    ]
    eight = "08" + "".join(_record("00", f"{n:06d}", "6229990000000012", n) for n in range(1, 9))
    assert [r.amount_fen for r in parse_upload_records(eight)] == list(range(1, 9))


@pytest.mark.parametrize(
    ("field48", "message"),
    [
        ("00", "field 48: record count must be 1 to 8, got 0 at byte 0"),
        (
            "09" + _record("00", "000001", "6229990000000012", 1) * 9,
            "field 48: record count must be 1 to 8, got 9 at byte 0",
        ),
        (
            "02" + _record("00", "000001", "6229990000000012", 1),
            "field 48: 2 records need 82 digits, got 42 at byte 42",
        ),
        (
            "01" + _record("00", "000001", "6229990000000012", 1) + "0",
            "field 48: 1 records need 42 digits, got 43 at byte 42",
        ),
    ],
)
def test_upload_records_outside_1_to_8_or_of_the_wrong_length_are_refused(field48: str, message: str) -> None:
    with pytest.raises(DecodeError, match=f"^{message}$"):
        parse_upload_records(field48)


def test_uploaded_records_keep_a_keyed_hash_and_a_mask_never_the_pan(store: Store) -> None:
    settlement_id = _settle(store, _field48(Totals(debit_fen=1, debit_count=1))).settlement_id
    records = [UploadRecord("00", "000123", "6229990000000012", 1_000), UploadRecord("00", "000124", "", 5)]

    def protect(pan: str) -> tuple[str, str]:
        return f"hash-of-{pan[-4:]}", pan[:6] + "******" + pan[-4:]

    store.transact(lambda s: store_upload(s, settlement_id, records, "201", protect))
    rows = store.transact(
        lambda s: [
            (r.stan, r.card_org, r.pan_hash, r.pan_masked, r.amount_fen, r.record_type, r.settlement_id)
            for r in s.scalars(select(BatchUploadRecord).order_by(BatchUploadRecord.stan))
        ]
    )
    assert rows == [
        ("000123", "00", "hash-of-0012", "622999******0012", 1_000, "201", settlement_id),
        ("000124", "00", None, None, 5, "201", settlement_id),  # no PAN: nothing to protect
    ]


def test_reconciliation_reports_each_difference_and_closes_the_batch(store: Store, batch: Totals) -> None:
    outcome = _settle(store, _field48(Totals(debit_fen=1, debit_count=1)))
    assert not outcome.balanced
    ours = store.transact(
        lambda s: {t.kind + ":" + str(t.amount_fen): t for t in s.scalars(select(Transaction))}
    )
    sale, completion = ours["sale:10000"], ours["completion:5000"]
    records = [
        UploadRecord("00", sale.stan, "6229990000000012", 10_000),  # agrees
        UploadRecord("00", completion.stan, "6229990000000012", 5_001),  # amount differs
        UploadRecord("00", "999999", "6229990000000012", 700),  # the host never saw it
    ]
    store.transact(lambda s: store_upload(s, outcome.settlement_id, records, "201", lambda p: ("h", "m")))
    later = NOW + dt.timedelta(minutes=5)
    differences = store.transact(lambda s: reconcile_batch(s, outcome.settlement_id, later))
    items = store.transact(
        lambda s: sorted(
            (i.kind, i.stan, i.rrn, i.host_amount_fen, i.terminal_amount_fen, i.settlement_id)
            for i in s.scalars(select(ReconciliationItem))
        )
    )
    counted = {t.stan: t for t in ours.values() if t.stan not in (sale.stan, completion.stan)}
    expected = [
        ("amount_differs", completion.stan, completion.rrn, 5_000, 5_001, outcome.settlement_id),
        ("missing_on_host", "999999", None, None, 700, outcome.settlement_id),
    ] + [
        ("missing_on_terminal", t.stan, t.rrn, t.amount_fen, None, outcome.settlement_id)
        for t in counted.values()
        if (t.kind, t.state) in {("sale", "voided"), ("void", "approved"), ("refund", "approved")}
    ]
    assert items == sorted(expected)
    assert differences == len(expected) == 5
    row = store.transact(lambda s: s.get(BatchSettlement, outcome.settlement_id))
    assert (row.result, row.differences, row.completed_at) == ("reconciled", 5, later)
    assert _unsettled(store) == 0  # the batch is closed


# ---- one terminal's batch: its settlement touches no other terminal's or batch's rows


def _terminals(store: Store, *tids: str) -> None:
    def provision(session) -> None:  # type: ignore[no-untyped-def]
        merchant = Merchant(mid=MID, name="Shop", mcc="5411", created_at=NOW, live_at=NOW)
        session.add(merchant)
        session.flush()
        for tid in tids:
            session.add(Terminal(tid=tid, merchant_id=merchant.id, batch_no=BATCH, created_at=NOW))

    store.transact(provision)


def _batch_numbers(store: Store) -> dict[str, str]:
    return store.transact(lambda s: dict(s.execute(select(Terminal.tid, Terminal.batch_no)).all()))


def _settlement_of(store: Store) -> dict[tuple[str, str, int], int | None]:
    rows = store.transact(
        lambda s: s.execute(
            select(Transaction.tid, Transaction.batch_no, Transaction.amount_fen, Transaction.settlement_id)
        ).all()
    )
    return {(tid, batch_no, amount): settlement for tid, batch_no, amount, settlement in rows}


def test_a_balanced_batch_closes_only_its_own_transactions_and_advances_only_its_terminal(
    store: Store,
) -> None:
    _terminals(store, TID, "10000002")
    _add(store, "sale", 1_000)
    _add(store, "sale", 2_000, batch_no="000002")  # the same terminal's next batch, already begun
    _add(store, "sale", 3_000, tid="10000002")  # another terminal's batch of the same number
    outcome = _settle(store, _field48(Totals(debit_fen=1_000, debit_count=1)))
    assert outcome.balanced
    assert _settlement_of(store) == {
        (TID, BATCH, 1_000): outcome.settlement_id,
        (TID, "000002", 2_000): None,
        ("10000002", BATCH, 3_000): None,
    }
    assert _batch_numbers(store) == {TID: "000002", "10000002": BATCH}


def test_settling_a_closed_batch_again_leaves_its_transactions_with_their_settlement(store: Store) -> None:
    _add(store, "sale", 1_000)
    first = _settle(store, _field48(Totals(debit_fen=1_000, debit_count=1)))
    assert first.balanced
    # the terminal sends the same batch's 0500 again the next day: nothing of it is left to count
    again = store.transact(
        lambda s: settle_batch(s, TID, MID, BATCH, DAY + dt.timedelta(days=1), _field48(Totals()), NOW)
    )
    assert again.balanced and again.settlement_id != first.settlement_id
    assert _settlement_of(store) == {(TID, BATCH, 1_000): first.settlement_id}


def test_each_terminal_and_batch_has_its_own_settlement_row(store: Store) -> None:
    unbalanced = _field48(Totals(debit_fen=1, debit_count=1))
    other = store.transact(lambda s: settle_batch(s, "10000002", MID, BATCH, DAY, unbalanced, NOW))
    mine = _settle(store, unbalanced)
    next_batch = store.transact(lambda s: settle_batch(s, TID, MID, "000002", DAY, unbalanced, NOW))
    assert len({other.settlement_id, mine.settlement_id, next_batch.settlement_id}) == 3
    rows = store.transact(
        lambda s: sorted(s.execute(select(BatchSettlement.tid, BatchSettlement.batch_no)).all())
    )
    assert rows == [(TID, BATCH), (TID, "000002"), ("10000002", BATCH)]


def test_the_open_settlement_is_the_latest_unbalanced_one_of_this_terminal_and_batch(store: Store) -> None:
    unbalanced = _field48(Totals(debit_fen=1, debit_count=1))

    def settle(tid: str, batch_no: str, day: dt.date, field48: str = unbalanced) -> int:
        return store.transact(lambda s: settle_batch(s, tid, MID, batch_no, day, field48, NOW)).settlement_id

    def open_id(tid: str, batch_no: str) -> int | None:
        row = store.transact(lambda s: open_settlement(s, tid, batch_no))
        return row.id if row is not None else None

    settle("10000002", BATCH, DAY)  # another terminal's
    settle(TID, "000002", DAY)  # another batch of this terminal
    assert open_id(TID, BATCH) is None
    settle(TID, "000003", DAY, _field48(Totals()))  # balanced: not awaiting an upload
    assert open_id(TID, "000003") is None
    older = settle(TID, BATCH, DAY)
    newer = settle(TID, BATCH, DAY + dt.timedelta(days=1))  # settled again the next day, still unbalanced
    assert open_id(TID, BATCH) == newer != older
