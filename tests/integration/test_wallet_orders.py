"""Wallet orders in the store (`wallets.orders`) against the three provider simulators over real HTTP, on
SQLite and PostgreSQL: merchant-presented orders paid by notification, expired and closed; scanned codes paid,
"user paying" polled to paid or reversed; refunds partial, summed, never above the paid amount (also when
asked concurrently); notifications forged (rejected), duplicated (applied once), replayed after a restart of
the service (applied once: the record is in the store), lost (polling finds the payment); a provider time-out
leaves the order `unknown` until a query resolves it; concurrent retries of one scan charge once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from posgate.store.db import make_engine, migrate, session_factory
from posgate.store.models_wallet import WalletNotificationSeen, WalletOrder
from posgate.wallets import customer, emvqr
from posgate.wallets.errors import UnknownCodePrefix
from posgate.wallets.orders import Merchant, RefundRefused, WalletOrders
from tests.integration.test_wallet_adapters import _forge
from tests.integration.wallet_env import PROVIDERS, Bench, wallet_bench

pytestmark = pytest.mark.asyncio

SHOP = Merchant("898310058120001", "小杨生煎(吴江路店)", "上海", "5812")
TID = "T0000001"


@pytest.fixture
def sessions(database_url: str) -> Iterator[object]:
    engine = make_engine(database_url)
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


@pytest_asyncio.fixture
async def bench() -> AsyncIterator[Bench]:
    async with wallet_bench(timeout_s=2.0) as bench:
        yield bench


def service(bench: Bench, sessions, **kwargs) -> WalletOrders:  # type: ignore[no-untyped-def]
    orders = WalletOrders(sessions, bench.adapters, bench.notify_base + "/notify", **kwargs)
    bench.received.handler = orders.notify
    return orders


async def until(predicate, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_qr_order_paid_by_notification_then_refunded_in_parts(bench, sessions, provider: str) -> None:
    orders = service(bench, sessions)
    order = await orders.create_qr(SHOP, TID, 2372, provider)
    assert order.state == "created" and order.qr_payload
    qr = emvqr.MerchantQr.from_payload(order.qr_payload)  # CRC checked
    assert (qr.point_of_initiation, qr.currency, qr.amount, qr.country) == ("12", "156", "23.72", "CN")
    assert (qr.name, qr.city) == (SHOP.name, SHOP.city)
    await customer.pay_payload(order.qr_payload, "demo", bench.sims.urls())
    await until(lambda: orders.get(order.order_id).state == "paid")
    assert (provider, "applied") in bench.received.outcomes
    paid = orders.get(order.order_id)
    assert paid.paid_at is not None and paid.trade_no
    first = await orders.refund(order.order_id, 1000)
    assert (first.state, first.refunded_fen) == ("succeeded", 1000)
    with pytest.raises(RefundRefused, match="above what is left"):
        await orders.refund(order.order_id, 1373)
    rest = await orders.refund(order.order_id, 1372)
    assert rest.refunded_fen == 2372
    with pytest.raises(RefundRefused):
        await orders.refund(order.order_id, 1)
    assert [r.state for r in orders.refunds(order.order_id)] == ["succeeded", "succeeded"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_scan_paid_and_unknown_prefix(bench, sessions, provider: str) -> None:
    orders = service(bench, sessions)
    code = await customer.payment_code(provider, "demo", bench.sims.urls())
    order = await orders.scan(SHOP, TID, code, 1500)
    assert (order.state, order.provider, order.flow) == ("paid", provider, "scan")
    assert code not in (order.code_masked or "") and order.code_masked.endswith(code[-4:])
    with pytest.raises(UnknownCodePrefix, match="'99'"):
        await orders.scan(SHOP, TID, "991234567890123456", 1500)
    with sessions() as session:  # the code is never stored whole
        assert session.scalar(select(func.count()).where(WalletOrder.code_masked == code)) == 0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_user_paying_polled_to_paid_or_reversed(bench, sessions, provider: str) -> None:
    orders = service(bench, sessions, poll_interval_s=0.1, scan_wait_s=3.0)
    book = bench.sims.providers[provider].book
    book.customers["slowpoke"].confirm_after_s = 0.5
    code = await customer.payment_code(provider, "slowpoke", bench.sims.urls())
    assert (await orders.scan(SHOP, TID, code, 500)).state == "paid"
    book.customers["slowpoke"].confirm_after_s = 30
    before = book.customers["slowpoke"].balance_fen
    code = await customer.payment_code(provider, "slowpoke", bench.sims.urls())
    orders.scan_wait_s = 0.5
    reversed_ = await orders.scan(SHOP, TID, code, 800)
    assert reversed_.state == "closed"
    assert book.customers["slowpoke"].balance_fen == before


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_qr_order_expires_and_is_closed(bench, sessions, provider: str) -> None:
    orders = service(bench, sessions, ttl_s=1.0)
    order = await orders.create_qr(SHOP, TID, 990, provider)
    await asyncio.sleep(1.3)
    [expired] = await orders.expire_due()
    assert (expired.order_id, expired.state) == (order.order_id, "closed")
    with pytest.raises(customer.CustomerError):
        await customer.pay_payload(order.qr_payload, "demo", bench.sims.urls())


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_lost_notification_recovered_by_polling(bench, sessions, provider: str) -> None:
    orders = service(bench, sessions)
    bench.sims.providers[provider].faults.lose_notifications = 1
    order = await orders.create_qr(SHOP, TID, 1200, provider)
    await customer.pay_payload(order.qr_payload, "demo", bench.sims.urls())
    await asyncio.sleep(0.8)
    assert orders.get(order.order_id).state == "created"
    assert (await orders.refresh(order.order_id)).state == "paid"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_duplicate_and_forged_notifications(bench, sessions, provider: str) -> None:
    orders = service(bench, sessions)
    bench.sims.providers[provider].faults.duplicate_notifications = 1
    order = await orders.create_qr(SHOP, TID, 100, provider)
    await customer.pay_payload(order.qr_payload, "demo", bench.sims.urls())
    await until(lambda: len([o for p, o in bench.received.outcomes if p == provider]) >= 2)
    outcomes = [o for p, o in bench.received.outcomes if p == provider]
    assert sorted(outcomes[:2]) == ["applied", "duplicate"]
    # a forged one, over HTTP to the notify endpoint: refused, nothing recorded
    _, headers, body = next(r for r in bench.received.raw if r[0] == provider)
    forged_headers, forged_body = _forge(provider, headers, body, bench)
    async with httpx.AsyncClient() as client:
        answer = await client.post(bench.notify_url(provider), content=forged_body, headers=forged_headers)
    assert answer.status_code != 200 or answer.text == "fail"
    assert bench.received.outcomes[-1] == (provider, "rejected:signature")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(WalletNotificationSeen)) == 1


async def test_replay_after_a_restart_is_applied_once(bench, sessions) -> None:
    """The replay record is the store's: a second service (another node, or after a restart, with empty
    memory) given the same notification applies nothing."""
    provider = "wechat"
    orders = service(bench, sessions)
    order = await orders.create_qr(SHOP, TID, 300, provider)
    await customer.pay_payload(order.qr_payload, "demo", bench.sims.urls())
    await until(lambda: orders.get(order.order_id).state == "paid")
    _, headers, body = next(r for r in bench.received.raw if r[0] == provider)
    restarted = service(bench, sessions)  # the notify endpoint is the new service's now
    async with httpx.AsyncClient() as client:
        answer = await client.post(bench.notify_url(provider), content=body, headers=headers)
    assert answer.status_code in (200, 204)
    assert bench.received.outcomes[-1] == (provider, "duplicate")
    assert restarted.get(order.order_id).state == "paid"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_provider_timeout_leaves_unknown_then_a_query_resolves(bench, sessions, provider: str) -> None:
    sim = bench.sims.providers[provider]
    demo = sim.book.customers["demo"]
    for adapter in bench.adapters.values():
        adapter.http.timeout = httpx.Timeout(0.4)
        adapter.timeout_s = 0.4
    # 1. the charge times out (the provider did take it); polling while the cashier waits finds it paid
    orders = service(bench, sessions, scan_wait_s=4.0, poll_interval_s=0.2)
    before = demo.balance_fen
    code = await customer.payment_code(provider, "demo", bench.sims.urls())
    sim.faults.slow_s = 1.0
    scanning = asyncio.create_task(orders.scan(SHOP, TID, code, 1234))
    # no answer in time: unknown — or already paid by the provider's notification (Alipay notifies)
    await until(lambda: bool(orders.list()) and orders.list()[0].state in ("unknown", "paid"))
    sim.faults.slow_s = 0
    paid = await scanning
    assert (paid.state, demo.balance_fen) == ("paid", before - 1234)
    # 2. the provider stays slow: the charge and its reversal time out — `unknown`, never failed; a later
    # query resolves it (here: the reversal did reach the provider — closed, the money back)
    orders.scan_wait_s = 0.2
    before = demo.balance_fen
    code = await customer.payment_code(provider, "demo", bench.sims.urls())
    sim.faults.lose_notifications = 5  # and no notification tells us
    sim.faults.slow_s = 1.0
    order = await orders.scan(SHOP, TID, code, 777)
    assert order.state == "unknown"
    await asyncio.sleep(1.2)
    sim.faults.slow_s = 0
    resolved = await orders.refresh(order.order_id)
    assert resolved.state in ("paid", "closed")
    assert demo.balance_fen == before - (777 if resolved.state == "paid" else 0)


async def test_concurrent_retries_charge_once_and_refunds_never_exceed(bench, sessions) -> None:
    provider = "alipay"
    orders = service(bench, sessions)
    demo = bench.sims.providers[provider].book.customers["demo"]
    before = demo.balance_fen
    code = await customer.payment_code(provider, "demo", bench.sims.urls())
    results = await asyncio.gather(
        *(orders.scan(SHOP, TID, code, 2000, idempotency_key="k-1") for _ in range(5))
    )
    assert {r.order_id for r in results} == {results[0].order_id}
    assert {r.state for r in results} == {"paid"}
    assert demo.balance_fen == before - 2000
    outcomes = await asyncio.gather(
        *(orders.refund(results[0].order_id, 700) for _ in range(4)), return_exceptions=True
    )
    done = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(done) == 2 and all(isinstance(o, RefundRefused) for o in outcomes if isinstance(o, Exception))
    assert orders.get(results[0].order_id).refunded_fen == 1400
    assert demo.balance_fen == before - 2000 + 1400
