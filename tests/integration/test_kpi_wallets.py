"""Wallet orders in the KPIs (issue 12), on SQLite and PostgreSQL: test_kpi's hand-built card day plus wallet
orders, answers worked out by hand — a paid order is an approved sale, a failed one a declined sale (05),
closed and open ones count nowhere, a succeeded refund is a refund; channel `qr`, card kind `wallet`, the
provider as issuer; the day is the Beijing date of the order's creation; a changed order re-groups its day."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from posgate.kpi import queries
from posgate.kpi.queries import Filters
from posgate.kpi.rollup import refresh
from posgate.store.base import utcnow
from posgate.store.models_wallet import WalletOrder, WalletRefund
from posgate.store.runtime import Store
from tests.integration.test_kpi import DAY, kpi_store  # noqa: F401  (the fixture)

M1 = "100000000000001"
NEXT = DAY + dt.timedelta(days=1)


def order(
    order_id: str, provider: str, state: str, amount: int, tid: str, created: dt.datetime
) -> WalletOrder:
    return WalletOrder(
        order_id=order_id,
        provider=provider,
        flow="qr",
        mid=M1,
        tid=tid,
        amount_fen=amount,
        refunded_fen=0,
        state=state,
        created_at=created,
        expires_at=created + dt.timedelta(minutes=5),
        paid_at=created if state == "paid" else None,
        updated_at=created,
    )


def utc(day: dt.date, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm))


@pytest.fixture
def store(kpi_store: Store) -> Store:  # noqa: F811
    def fill(s: Session) -> None:
        s.add_all(
            [
                # 17:00 UTC the day before is 01:00 on DAY in Beijing
                order("Q1", "wechat", "paid", 2372, "T0000001", utc(DAY - dt.timedelta(days=1), 17)),
                order("Q2", "alipay", "failed", 500, "T0000001", utc(DAY, 2)),
                order("Q3", "alipay", "closed", 800, "T0000001", utc(DAY, 3)),  # expired unpaid
                order("Q4", "unionpay", "paid", 10_000, "T0000002", utc(DAY, 4)),
                order("Q5", "wechat", "paid", 999, "T0000001", utc(DAY, 16, 30)),  # 00:30 the next day
            ]
        )
        s.flush()
        s.add_all(
            [
                WalletRefund(
                    refund_no="R1", order_id="Q1", amount_fen=1000, state="succeeded",
                    created_at=utc(DAY, 5), updated_at=utc(DAY, 5),
                ),
                WalletRefund(
                    refund_no="R2", order_id="Q4", amount_fen=2500, state="unknown",
                    created_at=utc(DAY, 6), updated_at=utc(DAY, 6),
                ),
            ]
        )  # fmt: skip
        refresh(s, full=True)

    kpi_store.transact(fill)
    return kpi_store


def test_wallet_orders_count_with_the_cards(store: Store) -> None:
    got = store.transact(lambda s: queries.summary(s, DAY, DAY, Filters()))
    # the cards: 4 approved, 2 declines (test_kpi); wallets: Q1 and Q4 paid, Q2 failed (05)
    assert (got["approved_count"], got["declined_count"]) == (6, 3)
    assert got["approval_rate"] == pytest.approx(6 / 9)
    assert got["approved_amount_fen"] == 36_000 + 2372 + 10_000
    assert got["purchase_count"] == 5
    assert got["refund_amount_fen"] == 3000 + 1000  # R2 is not known to have succeeded
    assert got["by_response_code"] == {"00": 6, "05": 1, "30": 1, "51": 1, "59": 1, "A0": 1}
    assert got["active_terminals"] == 3  # T0000002 sold by QR (its cards were declined)
    mix = store.transact(lambda s: queries.breakdowns(s, DAY, DAY, Filters()))
    assert mix["channel_mix"] == {
        "chip": {"count": 2, "amount_fen": 31_000},
        "magstripe": {"count": 1, "amount_fen": 5000},
        "qr": {"count": 2, "amount_fen": 12_372},
    }
    assert mix["card_kind_mix"]["wallet"] == {"count": 2, "amount_fen": 12_372}
    assert mix["declines_by_issuer"]["alipay"] == {"05": 1}
    qr = store.transact(lambda s: queries.summary(s, DAY, DAY, Filters(channel="qr")))
    assert (qr["approved_count"], qr["declined_count"], qr["approved_amount_fen"]) == (2, 1, 12_372)
    wechat = store.transact(lambda s: queries.summary(s, DAY, DAY, Filters(issuer="wechat", mid=M1)))
    assert (wechat["approved_count"], wechat["approved_amount_fen"]) == (1, 2372)
    next_day = store.transact(lambda s: queries.summary(s, NEXT, NEXT, Filters()))
    assert (next_day["approved_count"], next_day["approved_amount_fen"]) == (1, 999)


def test_a_changed_wallet_order_regroups_its_day(store: Store) -> None:
    def resolve(s: Session) -> None:
        refund = s.get(WalletRefund, "R2")
        assert refund is not None
        refund.state, refund.updated_at = "succeeded", utcnow()

    store.transact(resolve)
    result = store.transact(lambda s: refresh(s))
    assert (result.full, result.days) == (False, 1)
    got = store.transact(lambda s: queries.summary(s, DAY, DAY, Filters()))
    assert got["refund_amount_fen"] == 3000 + 1000 + 2500
    store.transact(lambda s: refresh(s, full=True))
    assert store.transact(lambda s: queries.summary(s, DAY, DAY, Filters())) == got
