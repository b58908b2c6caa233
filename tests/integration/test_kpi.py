"""The KPIs on a small hand-built day, answers worked out by hand (docs/kpi.md), on SQLite and PostgreSQL:
the rollup job, the summary's headline numbers and filters, the incremental refresh."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from itertools import count

import pytest
from sqlalchemy.orm import Session

from posgate.kpi import queries
from posgate.kpi.queries import Filters
from posgate.kpi.rollup import refresh
from posgate.store.db import make_engine, migrate
from posgate.store.models import Merchant, Terminal, Transaction
from posgate.store.runtime import Store
from posgate.txnset import Kind, TxnState, row_of

DAY = dt.date(2026, 11, 2)
_stans = count(1)


def txn(
    tid: str,
    mid: str,
    kind: Kind,
    code: str,
    amount: int,
    issuer: str,
    entry: str = "051",
    card: str = "debit",
    day: dt.date = DAY,
) -> Transaction:
    row = row_of(kind)
    return Transaction(
        tid=tid,
        mid=mid,
        batch_no="000001",
        stan=f"{next(_stans):06d}",
        mti=row.mti,
        processing_code=row.processing_code or "000000",
        business_date=day,
        kind=kind.value,
        amount_fen=amount,
        issuer_name=issuer,
        response_code=code,
        state=(TxnState.APPROVED if code == "00" else TxnState.DECLINED).value,
        entry_mode=entry,
        card_kind=card,
    )


@pytest.fixture
def kpi_store(database_url: str) -> Iterator[Store]:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=1, inline=True)
    m1 = "100000000000001"
    m2 = "100000000000002"

    def fill(s: Session) -> None:
        a = Merchant(mid=m1, name="Grocer", mcc="5411")
        b = Merchant(mid=m2, name="Cafe", mcc="5812")
        s.add_all([a, b])
        s.flush()
        created = dt.datetime(2026, 9, 1)
        s.add_all(
            [
                Terminal(tid="T0000001", merchant_id=a.id, created_at=created),
                Terminal(tid="T0000002", merchant_id=a.id, created_at=created),
                Terminal(tid="T0000003", merchant_id=b.id, created_at=created),
                Terminal(tid="T0000004", merchant_id=b.id, created_at=dt.datetime(2026, 10, 30)),
            ]
        )
        s.add_all(
            [
                txn("T0000001", m1, Kind.SALE, "00", 10000, "BankA"),  # approved purchase
                txn("T0000001", m1, Kind.SALE, "51", 5000, "BankA"),  # issuer decline
                txn("T0000002", m1, Kind.SALE, "59", 7000, "BankB", "072", "credit"),  # risk decline
                txn("T0000002", m1, Kind.SALE, "30", 100, "BankB"),  # format error: excluded
                txn("T0000003", m2, Kind.SALE, "A0", 200, "BankA"),  # MAC error: excluded
                txn("T0000003", m2, Kind.PREAUTH, "00", 20000, "BankB", card="credit"),  # approved, a hold
                txn("T0000003", m2, Kind.COMPLETION, "00", 21000, "BankB", card="credit"),  # purchase
                txn("T0000001", m1, Kind.REFUND, "00", 3000, "BankA"),  # not an authorization
                txn("T0000001", m1, Kind.VOID, "00", 10000, "BankA"),  # not an authorization
                txn("T0000001", m1, Kind.SALE, "00", 5000, "BankA", "021"),  # magstripe purchase
            ]
        )
        refresh(s)

    store.transact(fill)
    yield store
    store.close()


def test_summary_headline_numbers_worked_by_hand(kpi_store: Store) -> None:
    got = kpi_store.transact(lambda s: queries.summary(s, DAY, DAY, Filters()))
    # approved authorizations: sale 10000, preauth, completion, sale 5000 = 4; declines 51, 59 = 2
    assert got["approved_count"] == 4
    assert got["declined_count"] == 2
    assert got["approval_rate"] == pytest.approx(4 / 6)
    # purchase volume: sales 10000 + 5000 and the completion 21000 (not the preauth's hold)
    assert got["approved_amount_fen"] == 36000
    assert got["purchase_count"] == 3
    assert got["average_ticket_fen"] == 12000
    assert got["refund_amount_fen"] == 3000
    assert got["by_response_code"] == {"00": 4, "30": 1, "51": 1, "59": 1, "A0": 1}
    assert got["active_terminals"] == 2  # T0000001 and T0000003 sold; T0000002 only declined
    assert got["volume_per_terminal_fen"] == 18000
    assert got["previous"]["approved_count"] == 0
    assert got["change"]["approved_count"] is None


def test_filters_issuer_merchant_mcc_channel(kpi_store: Store) -> None:
    bank_a = kpi_store.transact(lambda s: queries.summary(s, DAY, DAY, Filters(issuer="BankA")))
    assert (bank_a["approved_count"], bank_a["declined_count"]) == (2, 1)
    assert bank_a["approval_rate"] == pytest.approx(2 / 3)
    assert bank_a["approved_amount_fen"] == 15000
    assert bank_a["by_response_code"] == {"00": 2, "51": 1, "A0": 1}
    assert bank_a["active_terminals"] == 1
    cafe = kpi_store.transact(lambda s: queries.summary(s, DAY, DAY, Filters(mid="100000000000002")))
    assert (cafe["approved_count"], cafe["declined_count"], cafe["approval_rate"]) == (2, 0, 1.0)
    assert cafe["approved_amount_fen"] == 21000
    grocers = kpi_store.transact(lambda s: queries.summary(s, DAY, DAY, Filters(mcc="5411")))
    assert grocers["approved_amount_fen"] == 15000
    assert grocers["approval_rate"] == pytest.approx(2 / 4)
    contactless = kpi_store.transact(lambda s: queries.summary(s, DAY, DAY, Filters(channel="contactless")))
    assert (contactless["approved_count"], contactless["declined_count"]) == (0, 1)
    assert contactless["approval_rate"] == 0.0
    assert contactless["active_terminals"] is None


def test_breakdowns_and_terminals(kpi_store: Store) -> None:
    got = kpi_store.transact(lambda s: queries.breakdowns(s, DAY, DAY, Filters()))
    assert got["card_kind_mix"] == {
        "credit": {"count": 1, "amount_fen": 21000},
        "debit": {"count": 2, "amount_fen": 15000},
    }
    assert got["channel_mix"] == {
        "chip": {"count": 2, "amount_fen": 31000},
        "magstripe": {"count": 1, "amount_fen": 5000},
    }
    assert got["declines_by_issuer"] == {"BankA": {"51": 1}, "BankB": {"59": 1}}
    terms = kpi_store.transact(lambda s: queries.terminals(s, dt.date(2026, 10, 30), DAY, Filters()))
    assert terms["active_terminals"] == 2
    # provisioned 2026-09-01, at least 30 days before: T0000002 sold nothing → dormant; T0000004 too new
    assert terms["dormant_terminals"] == 1
    assert terms["activation"] == {
        "provisioned": 1,
        "activated_within_days": 0,
        "activated_later": 0,
        "not_activated": 1,
    }


def test_refresh_regroups_only_changed_days_and_equals_a_full_rebuild(kpi_store: Store) -> None:
    later = DAY + dt.timedelta(days=1)

    def add_and_change(s: Session) -> None:
        s.add(txn("T0000002", "100000000000001", Kind.SALE, "00", 4000, "BankB", day=later))
        declined = s.query(Transaction).filter_by(response_code="51").one()
        declined.response_code = "05"  # an ORM update bumps updated_at: its day is re-grouped

    kpi_store.transact(add_and_change)
    result = kpi_store.transact(lambda s: refresh(s))
    assert (result.full, result.days) == (False, 2)
    both = kpi_store.transact(lambda s: queries.summary(s, DAY, later, Filters()))
    assert both["approved_count"] == 5
    assert both["by_response_code"]["05"] == 1 and "51" not in both["by_response_code"]
    kpi_store.transact(lambda s: refresh(s, full=True))
    assert kpi_store.transact(lambda s: queries.summary(s, DAY, later, Filters())) == both
    series = kpi_store.transact(lambda s: queries.series(s, DAY, later, Filters(), "day"))["series"]
    assert [p["approved_amount_fen"] for p in series] == [36000, 4000]
