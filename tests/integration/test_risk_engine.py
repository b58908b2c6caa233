"""The risk engine over a real store (SQLite and PostgreSQL): the velocity contract (a card with 5 approved
sales at a merchant in 10 minutes gets 65 on the next), a relocated terminal gets 58, a merchant group's own
window, an ordinary sale passes, and a new engine on the same store (a restart, another node) decides
alike."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from posgate.risk.engine import RiskEngine
from posgate.risk.facts import Assessment
from posgate.risk.rules import default_rule_set
from posgate.store.db import make_engine, migrate
from posgate.store.models import Merchant, Terminal
from posgate.store.models_risk import RiskCounter
from posgate.store.runtime import Store

NOW = dt.datetime(2026, 12, 3, 6, 10, 30, tzinfo=dt.UTC)  # 14:10 in Shanghai
SHOP = "31.2304,121.4737"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=1, inline=True)

    def provision(session) -> None:  # type: ignore[no-untyped-def]
        since = dt.datetime(2025, 1, 1)
        for n, mcc in ((1, "5311"), (2, "7011")):
            merchant = Merchant(
                mid=f"89844015311000{n}", name=f"Shop {n}", mcc=mcc, created_at=since, live_at=since
            )
            session.add(merchant)
            session.flush()
            session.add(Terminal(tid=f"1000000{n}", merchant_id=merchant.id, location=SHOP, created_at=since))

    store.transact(provision)
    yield store
    store.close()


def engine_at(store: Store, now: dt.datetime = NOW) -> RiskEngine:
    return RiskEngine(store, default_rule_set(), clock=lambda: now)


def sale(
    card: str = "c" * 64, shop: int = 1, amount_fen: int = 8_800, location: str | None = SHOP
) -> Assessment:
    return Assessment(
        "sale",
        amount_fen,
        f"1000000{shop}",
        f"89844015311000{shop}",
        card,
        "622202",
        "debit",
        "051",
        location=location,
    )


async def sell(engine: RiskEngine, assessment: Assessment, minutes_ago: float) -> None:
    at = NOW - dt.timedelta(minutes=minutes_ago)
    await engine.record(engine.outcome(assessment, approved=True, response_code="00", at=at))


async def test_the_sixth_sale_within_10_minutes_gets_65_and_a_restart_still_knows(store: Store) -> None:
    engine = engine_at(store)
    first = await engine.assess(sale())
    assert (first.action, first.score, first.hits) == ("approve", 0, ())
    for n in range(5):
        await sell(engine, sale(), minutes_ago=9 - 2 * n)
    decision = await engine.assess(sale())
    assert (decision.action, decision.code, decision.decided_by) == (
        "decline",
        "65",
        "card-merchant-velocity",
    )
    assert (await engine.assess(sale(card="d" * 64))).action == "approve"  # another card
    restarted = engine_at(Store(store.engine, threads=1, inline=True))
    assert (await restarted.assess(sale())).code == "65"
    later = engine_at(store, NOW + dt.timedelta(minutes=12))
    assert (await later.assess(sale())).action == "approve"


async def test_a_hotel_allows_more_sales_per_card(store: Store) -> None:
    engine = engine_at(store)
    for n in range(5):
        await sell(engine, sale(shop=2), minutes_ago=n + 1)
    assert (await engine.assess(sale(shop=2))).action == "approve"
    for n in range(5):
        await sell(engine, sale(shop=2), minutes_ago=30 + n)
    assert (await engine.assess(sale(shop=2))).code == "65"


async def test_a_relocated_terminal_gets_58_and_a_missing_location_is_no_evidence(store: Store) -> None:
    engine = engine_at(store)
    beijing = await engine.assess(sale(location="39.9042,116.4074"))
    assert (beijing.action, beijing.code, beijing.decided_by) == ("decline", "58", "relocated-terminal")
    nearby = await engine.assess(sale(location="31.3304,121.4737"))  # 11 km: an alert, approved
    assert (nearby.action, [h.rule for h in nearby.after]) == ("approve", ["moved-terminal"])
    assert (await engine.assess(sale(location=None))).action == "approve"
    assert (await engine.assess(sale(location="nowhere"))).action == "approve"


async def test_the_engine_prunes_in_the_background(store: Store) -> None:
    engine = engine_at(store)
    await engine.record(
        engine.outcome(sale(), approved=True, response_code="00", at=NOW - dt.timedelta(days=40))
    )

    def rows(session) -> int:  # type: ignore[no-untyped-def]
        return session.scalar(select(func.count()).select_from(RiskCounter))

    assert await store.run(rows) == 16
    engine.start_pruning(interval_s=0.01)
    try:
        for _ in range(500):
            if await store.run(rows) == 0:
                break
            await asyncio.sleep(0.01)
    finally:
        await engine.stop()
    assert await store.run(rows) == 0
