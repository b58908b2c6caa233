"""Reconciliation on SQLite and PostgreSQL: a played day (host transactions and the issuer simulator's
matching authorizations), cleared; the issuer's clearing file matches the host's records exactly, and
with two injected discrepancies (an amount changed, a line removed) the report names exactly those two.
Also: RRN-less lines matched by STAN + amount, lines the host never saw, the terminals' batch report."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from posgate.issuer.clearing_file import HEADER, write_clearing_file
from posgate.settlement import bankfile
from posgate.settlement.clearing import run_clearing
from posgate.settlement.clearing_day import clearing_window
from posgate.settlement.errors import FileChecksumError
from posgate.settlement.rates import Rates
from posgate.settlement.reconcile import reconcile_issuer_file, terminal_batches
from posgate.store.models import BatchSettlement, ReconciliationItem
from posgate.store.models_ledger import ReconLine, ReconReport
from posgate.store.runtime import Store
from posgate.tools.clearing_day_factory import (
    CREDIT_CARD,
    DEBIT_CARD,
    EXAMPLE_MID,
    EXAMPLE_MID_2,
    DayBuilder,
)

TZ = "Asia/Shanghai"
RATES = Rates()
CUT = RATES.clearing.cut_off_local
D = dt.date(2026, 7, 8)


@pytest.fixture
def store(example_store: Store) -> Store:
    return example_store


def at(day: dt.date, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm))


def play_day(store: Store) -> dict[str, int]:
    """A day at two banks, both sides of the books written as the host and the issuer leave them."""
    b = DayBuilder(issuer_books=True)
    ids: dict[str, int] = {}
    with b.writing(store):
        for n in range(12):
            ids[f"sale{n}"] = b.sale(at(D, 9, n), 1_000 * (n + 1), EXAMPLE_MID, DEBIT_CARD)
        ids["credit_sale"] = b.sale(at(D, 10), 88_000, EXAMPLE_MID_2, CREDIT_CARD)
        ids["void"] = b.void(at(D, 11), ids["sale1"])
        ids["refund"] = b.refund(at(D, 12), ids["sale2"], 1_500)
        preauth = b.preauth(at(D, 13), 50_000, EXAMPLE_MID, DEBIT_CARD)
        ids["completion"] = b.completion(at(D, 14), preauth, 45_000)
        b.preauth_void(at(D, 15, 5), b.preauth(at(D, 15), 9_000, EXAMPLE_MID, DEBIT_CARD))
        b.reversal(at(D, 16, 1), b.sale(at(D, 16), 7_000, EXAMPLE_MID, DEBIT_CARD))  # on neither side
        b.sale(at(D, 17), 6_000, EXAMPLE_MID, DEBIT_CARD, state="declined")  # on neither side
        b.sale(at(D, 23, 30), 3_000, EXAMPLE_MID, DEBIT_CARD)  # tomorrow's, on both sides
    run_clearing(store, D, RATES, TZ, now=b.utc(at(D + dt.timedelta(days=1), 1)))
    return ids


def issuer_file(store: Store, bank: str, path: Path) -> Path:
    start, end = clearing_window(D, ZoneInfo(TZ), CUT)
    store.transact(lambda s: write_clearing_file(s, bank, start, end, path))
    return path


def rows_of(path: Path) -> list[dict[str, str]]:
    return bankfile.parse(path.read_text(), HEADER, "amount_fen")


def rewrite(path: Path, rows: list[dict[str, str]]) -> Path:
    """The issuer's file with edited lines, its checksum line made right again."""
    bankfile.write(path, HEADER, [[row[column] for column in HEADER] for row in rows], "amount_fen")
    return path


def reconcile(store: Store, path: Path):  # type: ignore[no-untyped-def]
    return reconcile_issuer_file(store, path, D, TZ, CUT)


def test_a_played_day_reconciles_and_two_injected_discrepancies_are_named(
    store: Store, tmp_path: Path
) -> None:
    ids = play_day(store)
    clean = issuer_file(store, "Bank D", tmp_path / "bank-d.csv")
    lines = rows_of(clean)
    # 12 sales + the void + the refund + 2 pre-authorizations + the completion + the pre-auth void; not the
    # reversed sale, the declined one, tomorrow's
    assert len(lines) == 18
    assert {line["effect"] for line in lines} == {"debit", "credit", "hold", "complete", "release"}
    result = reconcile(store, clean)
    assert (result.matched, result.differences) == (18, [])

    changed, dropped = f"{ids['sale5']:012d}", f"{ids['refund']:012d}"
    edited = []
    for line in lines:
        if line["rrn"] == changed:
            line = line | {"amount_fen": str(int(line["amount_fen"]) + 100)}
        if line["rrn"] != dropped:
            edited.append(line)
    result = reconcile(store, rewrite(tmp_path / "bank-d-edited.csv", edited))
    assert result.matched == 16
    assert [(d.status, d.rrn, d.issuer_amount_fen, d.host_amount_fen) for d in result.differences] == [
        ("amount_mismatch", changed, 6_100, 6_000),
        ("missing_on_issuer", dropped, None, 1_500),
    ]
    report, stored = store.transact(
        lambda s: (
            s.get(ReconReport, result.report_id),
            s.scalars(
                select(ReconLine).where(ReconLine.report_id == result.report_id).order_by(ReconLine.id)
            ).all(),
        )
    )
    assert (report.bank, report.matched, report.amount_mismatch, report.missing_on_issuer) == (
        "Bank D",
        16,
        1,
        1,
    )
    assert report.missing_on_host == 0
    assert [(line.status, line.rrn, line.transaction_id) for line in stored] == [
        ("amount_mismatch", changed, ids["sale5"]),
        ("missing_on_issuer", dropped, ids["refund"]),
    ]

    other = reconcile(store, issuer_file(store, "Bank C", tmp_path / "bank-c.csv"))
    assert (other.matched, other.differences) == (1, [])


def test_lines_without_our_rrn_match_by_stan_and_amount_or_are_missing_on_host(
    store: Store, tmp_path: Path
) -> None:
    ids = play_day(store)
    lines = rows_of(issuer_file(store, "Bank D", tmp_path / "bank-d.csv"))
    garbled = f"{ids['sale7']:012d}"
    for line in lines:
        if line["rrn"] == garbled:
            line["rrn"] = ""  # the issuer lost it: STAN + amount find it
    stranger = lines[0] | {"rrn": "999999999999", "stan": "999999", "amount_fen": "4242"}
    result = reconcile(store, rewrite(tmp_path / "edited.csv", [*lines, stranger]))
    assert result.matched == 18
    assert [(d.status, d.rrn, d.issuer_amount_fen) for d in result.differences] == [
        ("missing_on_host", "999999999999", 4_242)
    ]
    assert result.notes == [
        f"RRN - (line {2 + 7}): matched by STAN {ids['sale7'] % 1_000_000:06d} and amount (RRN {garbled})"
    ]


def test_a_tampered_file_is_refused_before_anything_is_stored(store: Store, tmp_path: Path) -> None:
    play_day(store)
    path = issuer_file(store, "Bank D", tmp_path / "bank-d.csv")
    path.write_text(path.read_text().replace(",1000,", ",1001,", 1))
    with pytest.raises(FileChecksumError):
        reconcile(store, path)
    assert store.transact(lambda s: s.scalars(select(ReconReport)).all()) == []


def test_the_terminal_batches_report_shows_totals_and_differences(store: Store) -> None:
    def settle(session) -> None:  # type: ignore[no-untyped-def]
        balanced = BatchSettlement(
            tid="10000001",
            mid=EXAMPLE_MID,
            batch_no="000001",
            business_date=D,
            terminal_totals="000000120000012000000001500001" + "0" * 32,
            host_totals="000000120000012000000001500001" + "0" * 32,
            result="balanced",
            differences=0,
        )
        reconciled = BatchSettlement(
            tid="10000002",
            mid=EXAMPLE_MID,
            batch_no="000007",
            business_date=D,
            terminal_totals="000000005000002000000000000000" + "0" * 32,
            host_totals="000000004000001000000000000000" + "0" * 32,
            result="reconciled",
            differences=1,
        )
        session.add_all([balanced, reconciled])
        session.flush()
        session.add(
            ReconciliationItem(
                settlement_id=reconciled.id,
                kind="missing_on_host",
                stan="000042",
                rrn=None,
                host_amount_fen=None,
                terminal_amount_fen=1_000,
            )
        )

    store.transact(settle)
    batches = store.transact(lambda s: terminal_batches(s, D))
    assert [(b.tid, b.result, b.terminal.debit_fen, b.host.debit_fen) for b in batches] == [  # type: ignore[union-attr]
        ("10000001", "balanced", 120_000, 120_000),
        ("10000002", "reconciled", 5_000, 4_000),
    ]
    assert [(d.kind, d.stan, d.terminal_amount_fen) for d in batches[1].differences] == [
        ("missing_on_host", "000042", 1_000)
    ]
    assert store.transact(lambda s: terminal_batches(s, D + dt.timedelta(days=1))) == []


def test_the_clearing_file_is_plain_csv_with_a_checksum_line(store: Store, tmp_path: Path) -> None:
    play_day(store)
    text = issuer_file(store, "Bank D", tmp_path / "bank-d.csv").read_text()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(HEADER)
    assert rows[-1][0] == "CHECKSUM" and int(rows[-1][1]) == len(rows) - 2
    assert int(rows[-1][2]) == sum(int(r[6]) for r in rows[1:-1])
