"""Network STANs from the store (store/stans.py, host/stans.py) on SQLite and PostgreSQL: several host nodes
on one database never hand out the same STAN on a link, a restart continues where the counter stands, the
counter wraps from 999999 to 000001 (never 000000) and says so, and blocks grow when used up and shrink when
dropped for age."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from posgate.host.stans import StanAllocator
from posgate.store.db import make_engine, migrate
from posgate.store.models import NetworkStanCounter
from posgate.store.runtime import Store
from posgate.store.stans import STAN_SPACE, stan_of, stans_taken, take_stans

LINK = "Demo Bank A"


@pytest.fixture
def stores(database_url: str) -> Iterator[tuple[Store, Store]]:
    """Two host nodes' stores on one database."""
    engine = make_engine(database_url)
    migrate(engine)
    nodes = (Store(engine, threads=4), Store(make_engine(database_url), threads=4))
    yield nodes
    for store in nodes:
        store.close()


async def test_two_nodes_and_a_restart_never_hand_out_a_stan_twice_on_a_link(
    stores: tuple[Store, Store],
) -> None:
    first, second = StanAllocator(stores[0], block_max=16), StanAllocator(stores[1], block_max=16)

    async def draw(allocator: StanAllocator, link: str, count: int) -> list[str]:
        return [await allocator.next(link) for _ in range(count)]

    batches = await asyncio.gather(
        *(draw(node, LINK, 300) for node in (first, second) for _ in range(4)),
        draw(first, "Demo Bank B", 50),
    )
    on_link = [stan for batch in batches[:-1] for stan in batch]
    assert len(on_link) == len(set(on_link)) == 2_400
    assert batches[-1][0] == "000001"  # the other link has a counter of its own

    restarted = StanAllocator(stores[0], block_max=16)  # node 1 again: its unused block is skipped
    after = await draw(restarted, LINK, 100)
    assert not set(after) & set(on_link)
    assert all(len(stan) == 6 and stan.isdigit() and stan != "000000" for stan in on_link + after)


async def test_the_counter_wraps_to_000001_and_says_so(
    stores: tuple[Store, Store], caplog: pytest.LogCaptureFixture
) -> None:
    store = stores[0]
    store.transact(lambda s: s.add(NetworkStanCounter(issuer_name=LINK, taken=STAN_SPACE - 2)))
    allocator = StanAllocator(store, block_max=1)
    with caplog.at_level(logging.WARNING, logger="posgate.host.link"):
        stans = [await allocator.next(LINK) for _ in range(4)]
    assert stans == ["999998", "999999", "000001", "000002"]
    assert [r.getMessage() for r in caplog.records] == [
        "issuer Demo Bank A: network STANs start again at 000001 after 999,999 on this link"
        " (field 7 keeps each message distinct)"
    ]


async def test_blocks_double_when_used_up_and_halve_when_dropped_for_age(stores: tuple[Store, Store]) -> None:
    store, now = stores[0], [0.0]
    allocator = StanAllocator(store, block_max=8, max_age_s=60, monotonic=lambda: now[0])
    # blocks of 1, 2, 4, 8, 8: 23 STANs in five takes
    stans = [await allocator.next(LINK) for _ in range(23)]
    assert stans == [stan_of(v) for v in range(23)]
    assert await store.run(lambda s: stans_taken(s, LINK)) == 23

    assert await allocator.next(LINK) == stan_of(23)  # a sixth block of 8: 24 … 30 left
    now[0] = 61.0  # too old: dropped, and the next block is half as big (4)
    assert await allocator.next(LINK) == stan_of(31)
    assert await store.run(lambda s: stans_taken(s, LINK)) == 31 + 4


def test_take_stans_refuses_a_count_below_one(stores: tuple[Store, Store]) -> None:
    with pytest.raises(ValueError, match="count must be at least 1, got 0"):
        stores[0].transact(lambda s: take_stans(s, LINK, 0))
