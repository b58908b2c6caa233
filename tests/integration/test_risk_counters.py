"""Risk aggregates in the store, on SQLite and PostgreSQL: windows count what they should (and a window's
edge is on the safe side), distinct counts are exact, the merchant baseline, two host nodes sharing one
database count one card together, a restarted node still knows the last 10 minutes, concurrent writers
lose nothing, old buckets are pruned."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from posgate.risk.aggregates import Outcome, Request
from posgate.risk.counters_store import prune, read_aggregates, record_outcome
from posgate.risk.rules import default_rule_set
from posgate.store.db import make_engine, migrate
from posgate.store.models_risk import RiskCounter, RiskSeen
from posgate.store.runtime import Store

NOW = dt.datetime(2026, 12, 3, 14, 10, 30)
MID, TID, BIN = "898440153110001", "10000001", "622202"
VELOCITY = [("card_merchant", "approved", "10m")]


def card(n: int) -> str:
    return hashlib.sha256(f"card {n}".encode()).hexdigest()


def sale(
    at: dt.datetime,
    pan_hash: str,
    amount_fen: int = 10_000,
    code: str = "00",
    kind: str = "sale",
    tid: str = TID,
    mid: str = MID,
    hour: int = 22,
) -> Outcome:
    return Outcome(at, kind, code == "00", code, amount_fen, pan_hash, BIN, tid, mid, hour)


def request(pan_hash: str, tid: str = TID, hour: int = 22) -> Request:
    return Request(pan_hash=pan_hash, bin=BIN, tid=tid, mid=MID, local_hour=hour)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=1, inline=True)
    yield store
    store.close()


def record(store: Store, *outcomes: Outcome) -> None:
    for outcome in outcomes:
        store.transact(lambda s, o=outcome: record_outcome(s, o))


def aggregates(store: Store, req: Request, needed, now: dt.datetime = NOW, baseline: bool = False):  # type: ignore[no-untyped-def]
    return store.transact(lambda s: read_aggregates(s, req, needed, now, baseline))


def test_velocity_counts_the_last_10_minutes_and_at_most_one_minute_more(store: Store) -> None:
    a = card(1)
    # 14:10:30 − 10 min = 14:00:30: the window sums the minute buckets from 14:00:00
    record(store, *(sale(NOW - dt.timedelta(minutes=m), a) for m in (1, 3, 5, 7, 9)))
    record(store, sale(dt.datetime(2026, 12, 3, 14, 0, 10), a))  # 10 min 20 s ago: inside the first bucket
    record(store, sale(dt.datetime(2026, 12, 3, 13, 59, 59), a))  # 10 min 31 s ago: outside
    record(store, sale(NOW - dt.timedelta(minutes=2), a, code="51"))  # declined: not an approved sale
    record(store, sale(NOW - dt.timedelta(minutes=2), a, mid="898440153110002"))  # another merchant
    facts = aggregates(
        store, request(a), [*VELOCITY, ("card_merchant", "count", "10m"), ("card", "approved", "1h")]
    )
    assert facts["card_merchant"] == {"approved_10m": 6, "count_10m": 7}
    assert facts["card"] == {"approved_1h": 8}
    assert aggregates(store, request(card(2)), VELOCITY)["card_merchant"] == {"approved_10m": 0}


def test_every_measure_and_resolution(store: Store) -> None:
    a, b = card(1), card(2)
    record(
        store,
        sale(NOW - dt.timedelta(minutes=2), a, amount_fen=12_345),
        sale(NOW - dt.timedelta(minutes=3), a, code="55"),
        sale(NOW - dt.timedelta(minutes=4), a, code="55"),
        sale(NOW - dt.timedelta(hours=3), a, code="43"),
        sale(NOW - dt.timedelta(hours=30), a, amount_fen=50_000),
        sale(NOW - dt.timedelta(days=20), a, amount_fen=70_000),
        sale(NOW - dt.timedelta(minutes=5), b, amount_fen=2_000, kind="refund"),
    )
    needed = [
        ("card", "amount", "10m"),
        ("card", "wrong_pin", "1h"),
        ("card", "declined", "1h"),
        ("card", "stolen", "24h"),
        ("card", "stolen", "1h"),
        ("card", "amount", "24h"),
        ("card", "amount", "7d"),
        ("card", "amount", "30d"),
        ("merchant", "refund_amount", "1h"),
        ("merchant", "refunds", "1h"),
        ("terminal", "count", "24h"),
    ]
    facts = aggregates(store, request(a), needed)
    assert facts["card"] == {
        "amount_10m": 12_345,
        "wrong_pin_1h": 2,
        "declined_1h": 2,
        "stolen_24h": 1,
        "stolen_1h": 0,
        "amount_24h": 12_345,
        "amount_7d": 62_345,
        "amount_30d": 132_345,
    }
    assert facts["merchant"] == {"refund_amount_1h": 2_000, "refunds_1h": 1}
    assert facts["terminal"] == {
        "count_24h": 4
    }  # purchases within 24 h (+ < 1 h): not the refund, not 30 h ago


def test_distinct_counts_are_exact_per_window(store: Store) -> None:
    for n in range(6):
        record(store, sale(NOW - dt.timedelta(minutes=n * 3 + 1), card(n), code="14"))
    record(store, sale(NOW - dt.timedelta(minutes=1), card(0), code="14"))  # seen again: still one card
    record(store, sale(NOW - dt.timedelta(minutes=2), card(0), tid="10000002", mid="898440153110002"))
    needed = [
        ("terminal", "distinct_cards", "10m"),
        ("terminal", "distinct_cards", "1h"),
        ("terminal", "declined", "10m"),
        ("card", "distinct_merchants", "1h"),
        ("card", "distinct_terminals", "1h"),
        ("bin", "distinct_cards", "1h"),
    ]
    facts = aggregates(store, request(card(0)), needed)
    # cards 0–5 at 1, 4, 7, 10, 13, 16 minutes ago; 10 min: cards 0, 1, 2 (and 3 at exactly 10 min)
    assert facts["terminal"] == {"distinct_cards_10m": 4, "distinct_cards_1h": 6, "declined_10m": 5}
    assert facts["card"] == {"distinct_merchants_1h": 2, "distinct_terminals_1h": 2}
    assert facts["bin"] == {"distinct_cards_1h": 6}


def test_the_merchant_baseline(store: Store) -> None:
    for day in range(1, 11):  # ten past days, 4 sales of 100.00 each, one of them at 22:00 local
        at = NOW - dt.timedelta(days=day)
        record(store, *(sale(at, card(n), amount_fen=10_000, hour=22 if n == 0 else 10) for n in range(4)))
    record(
        store, sale(NOW - dt.timedelta(minutes=5), card(9), amount_fen=999_999, hour=22)
    )  # today: excluded
    facts = aggregates(store, request(card(1), hour=22), [], baseline=True)
    assert facts["merchant"] == {
        "active_days_30d": 10,
        "avg_ticket_fen_30d": 10_000,
        "daily_amount_fen_30d": 40_000,
        "hour_share_30d": 0.25,
    }


def test_two_nodes_share_the_counts_and_a_restart_keeps_them(database_url: str) -> None:
    engines = [make_engine(database_url), make_engine(database_url)]
    migrate(engines[0])
    nodes = [Store(engine, threads=1, inline=True) for engine in engines]
    a = card(7)
    try:
        for n in range(5):  # the card's sales alternate between the two nodes
            record(nodes[n % 2], sale(NOW - dt.timedelta(minutes=n + 1), a))
        for node in nodes:
            assert aggregates(node, request(a), VELOCITY)["card_merchant"]["approved_10m"] == 5
    finally:
        for node in nodes:
            node.close()
    restarted = Store(make_engine(database_url), threads=1, inline=True)
    try:
        facts = aggregates(restarted, request(a), default_rule_set().aggregates, baseline=True)
        assert facts["card_merchant"]["approved_10m"] == 5
        assert facts["card_merchant"]["amount_30m"] == 50_000
    finally:
        restarted.close()


def test_concurrent_writers_lose_nothing(database_url: str) -> None:
    """Eight writers, each on its own connection, add the same card's sales to the same buckets at once."""
    engine = make_engine(database_url, pool_size=8)
    migrate(engine)
    store = Store(engine, threads=1, inline=True)
    a, writers, each = card(3), 8, 15
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(w: int) -> None:
        try:
            start.wait()
            for n in range(each):
                outcome = sale(NOW - dt.timedelta(seconds=n), a, amount_fen=100 + w, tid=f"1000000{w}")
                store.transact(lambda s, o=outcome: record_outcome(s, o))
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert failures == []
        facts = aggregates(
            store,
            request(a),
            [*VELOCITY, ("card_merchant", "amount", "10m"), ("card", "distinct_terminals", "10m")],
        )
        assert facts["card_merchant"] == {
            "approved_10m": writers * each,
            "amount_10m": sum((100 + w) * each for w in range(writers)),
        }
        assert facts["card"] == {"distinct_terminals_10m": writers}
    finally:
        store.close()


def test_prune_drops_only_what_no_window_reaches(store: Store) -> None:
    a = card(1)
    record(
        store, sale(NOW - dt.timedelta(days=40), a, tid="10000009"), sale(NOW - dt.timedelta(minutes=3), a)
    )
    before = store.transact(lambda s: s.scalar(select(func.count()).select_from(RiskCounter)))
    removed = store.transact(lambda s: prune(s, NOW))
    after = store.transact(lambda s: s.scalar(select(func.count()).select_from(RiskCounter)))
    # the 40-day-old sale's minute, hour and day buckets for 5 keys (+ its hour-of-day row), and the members
    # only it had seen (its terminal's card, the card's terminal); the others were seen again 3 minutes ago
    assert (before, after) == (32, 16)
    assert removed == 16 + 2
    assert store.transact(lambda s: s.scalar(select(func.count()).select_from(RiskSeen))) == 5
    assert aggregates(store, request(a), VELOCITY)["card_merchant"]["approved_10m"] == 1
