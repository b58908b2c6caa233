"""One settlement for cards and wallets (issue 12), on SQLite and PostgreSQL: wallet orders paid and refunded
through the three provider simulators over loopback HTTP clear in the same run as the same merchant's card
sales — the wallet MDR of its fee plan and each provider's fee, a balanced journal entry each, exactly once —
and reach its statement, the day's fee income and its T+1 payout; a payment found late (a lost notification,
polled after the run) clears at the re-run. Each provider's bill of the day, fetched over HTTP and parsed,
reconciles with the store, and differences injected at the providers are reported exactly."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from sqlalchemy import select

from posgate.settlement.clearing import run_clearing
from posgate.settlement.clearing_day import clearing_date, clearing_window, to_local
from posgate.settlement.ledger_store import balances, entry_lines, trial_balance, verify_balances
from posgate.settlement.payouts import build_t1_payouts
from posgate.settlement.rates import Rates
from posgate.settlement.reports import fee_income, merchant_statement
from posgate.settlement.wallet_reconcile import BEIJING, reconcile_wallet_bill
from posgate.store.db import session_factory
from posgate.store.models_ledger import ReconLine, ReconReport, WalletClearingEntry
from posgate.store.models_wallet import WalletOrder, WalletRefund
from posgate.store.runtime import Store
from posgate.tools.clearing_day_factory import DEBIT_CARD, EXAMPLE_MID, DayBuilder
from posgate.wallets import customer
from posgate.wallets.orders import Merchant, WalletOrders
from tests.integration.wallet_env import PROVIDERS, Bench, wallet_bench

TZ = "Asia/Shanghai"
RATES = Rates()
SHOP = Merchant(EXAMPLE_MID, "Demo Supermarket", "上海", "5411")
TID = "T0000001"


@pytest_asyncio.fixture
async def bench() -> AsyncIterator[Bench]:
    async with wallet_bench(timeout_s=3.0) as bench:
        yield bench


def service(bench: Bench, store: Store) -> WalletOrders:
    orders = WalletOrders(session_factory(store.engine), bench.adapters, bench.notify_base + "/notify")
    bench.received.handler = orders.notify
    return orders


async def until(predicate, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def today() -> dt.date:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return clearing_date(now, ZoneInfo(TZ), RATES.clearing.cut_off_local)


def clear(store: Store, day: dt.date):  # type: ignore[no-untyped-def]
    return run_clearing(store, day, RATES, TZ, allow_open_day=True)


def wallet_entries(store: Store) -> dict[str, WalletClearingEntry]:
    return store.transact(lambda s: {e.ref: e for e in s.scalars(select(WalletClearingEntry))})


@pytest.mark.asyncio
async def test_wallet_orders_clear_with_the_cards_into_one_payable_and_payout(
    example_store: Store, bench: Bench, tmp_path: Path
) -> None:
    store = example_store
    day = today()
    if to_local(dt.datetime.now(dt.UTC).replace(tzinfo=None), ZoneInfo(TZ)).time() >= dt.time(22, 59):
        pytest.skip("too close to the cut-off: the orders could fall on two clearing dates")
    start, _ = clearing_window(day, ZoneInfo(TZ), RATES.clearing.cut_off_local)
    b = DayBuilder()
    with b.writing(store):  # a card sale of the same merchant, the same clearing date
        first_second = to_local(start, ZoneInfo(TZ)) + dt.timedelta(seconds=1)
        card = b.sale(first_second, 10_000, EXAMPLE_MID, DEBIT_CARD)

    orders = service(bench, store)
    urls = bench.sims.urls()
    wechat = await orders.create_qr(SHOP, TID, 2372, "wechat")
    await customer.pay_payload(wechat.qr_payload, "demo", urls)
    await until(lambda: orders.get(wechat.order_id).state == "paid")
    w1 = await orders.refund(wechat.order_id, 1000)
    w2 = await orders.refund(wechat.order_id, 1372)  # the rest: refunded in full
    alipay = await orders.scan(SHOP, TID, await customer.payment_code("alipay", "demo", urls), 1234)
    a1 = await orders.refund(alipay.order_id, 500)
    unionpay = await orders.create_qr(SHOP, TID, 10_000, "unionpay")
    await customer.pay_payload(unionpay.qr_payload, "demo", urls)
    await until(lambda: orders.get(unionpay.order_id).state == "paid")
    bench.sims.wechat.faults.lose_notifications = 1  # paid, but we do not know it yet
    late = await orders.create_qr(SHOP, TID, 800, "wechat")
    await customer.pay_payload(late.qr_payload, "demo", urls)
    unpaid = await orders.create_qr(SHOP, TID, 999, "alipay")  # never paid: clears nothing

    result = clear(store, day)
    got = wallet_entries(store)
    # ref: (kind, amount, wallet MDR 0.38 %, provider fee: 0.60 % WeChat Pay and Alipay, 0.38 % UnionPay)
    expected = {
        wechat.order_id: ("sale", 2372, 9, 14),
        w1.refund_no: ("refund", -1000, -4, -6),
        w2.refund_no: ("refund", -1372, -5, -8),  # the MDR of 23.72 refunded in all (9) less the 4 given back
        alipay.order_id: ("sale", 1234, 5, 7),
        a1.refund_no: ("refund", -500, -2, -3),
        unionpay.order_id: ("sale", 10_000, 38, 38),
    }
    assert {ref: (e.kind, e.amount_fen, e.mdr_fen, e.provider_fee_fen) for ref, e in got.items()} == expected
    assert {e.clearing_date for e in got.values()} == {day}
    assert (result.wallet_count, result.cleared) == (6, 7)  # six wallet entries and the card sale
    assert result.provider_fee_fen == 14 - 6 - 8 + 7 - 3 + 38
    assert late.order_id not in got and unpaid.order_id not in got

    assert store.transact(trial_balance) == 0 and store.transact(verify_balances) == []
    assert store.transact(lambda s: entry_lines(s, f"wallet:{wechat.order_id}")) == [
        ("provider_receivable:wechat", 2358),
        ("wallet_fee_expense", 14),
        (f"merchant_payable:{EXAMPLE_MID}", -2363),
        ("fee_income:mdr", -9),
    ]
    owed = store.transact(lambda s: balances(s, prefix="provider_receivable"))
    assert owed == {
        "provider_receivable:wechat": 0,  # refunded in full: the provider owes nothing, fee included
        "provider_receivable:alipay": (1234 - 7) - (500 - 3),
        "provider_receivable:unionpay": 10_000 - 38,
    }
    card_net = 10_000 - 50  # the card sale less its 0.50 % debit MDR
    wallet_net = (2372 - 9) - (1000 - 4) - (1372 - 5) + (1234 - 5) - (500 - 2) + (10_000 - 38)
    payable = store.transact(lambda s: balances(s, prefix=f"merchant_payable:{EXAMPLE_MID}"))
    assert payable == {f"merchant_payable:{EXAMPLE_MID}": -(card_net + wallet_net)}

    statement = store.transact(lambda s: merchant_statement(s, EXAMPLE_MID, day))
    assert (statement.totals.sales_count, statement.totals.refunds_count) == (4, 3)
    wallet_fen = 2372 - 2372 + 1234 - 500 + 10_000
    assert (statement.totals.wallet_count, statement.totals.wallet_fen) == (6, wallet_fen)
    assert statement.totals.net_fen == card_net + wallet_net == statement.closing_balance_fen
    lines = statement.lines
    assert [x.transaction_id for x in lines if x.order_id is None] == [card]
    assert sorted((x.order_id, x.kind, x.provider) for x in lines if x.order_id) == sorted(
        [
            (wechat.order_id, "sale", "wechat"),
            (wechat.order_id, "refund", "wechat"),
            (wechat.order_id, "refund", "wechat"),
            (alipay.order_id, "sale", "alipay"),
            (alipay.order_id, "refund", "alipay"),
            (unionpay.order_id, "sale", "unionpay"),
        ]
    )
    assert [x.created_at for x in lines] == sorted(x.created_at for x in lines)
    income = store.transact(lambda s: fee_income(s, day))
    assert income.total.provider_fee_fen == income.ledger_provider_fee_fen == result.provider_fee_fen
    assert income.total.mdr_fen == income.ledger_mdr_fen == 50 + 9 - 4 - 5 + 5 - 2 + 38

    again = clear(store, day)  # exactly once: nothing new
    assert (again.cleared, again.postings) == (0, 0)

    assert (await orders.refresh(late.order_id)).state == "paid"  # polling finds the lost payment
    rerun = clear(store, day)
    assert (rerun.wallet_count, rerun.sales_fen) == (1, 800)
    assert wallet_entries(store)[late.order_id].provider_fee_fen == 5

    build_t1_payouts(store, day, tmp_path)
    text = next((tmp_path / "payouts").glob(f"payouts-{day}*.csv")).read_text()
    assert f"{EXAMPLE_MID},Demo Supermarket,MID:{EXAMPLE_MID},{card_net + wallet_net + 800 - 3}," in text
    assert store.transact(trial_balance) == 0 and store.transact(verify_balances) == []


def trade_key(bench: Bench, provider: str, order_id: str) -> tuple[str, str]:
    return next(key for key in bench.sims.providers[provider].book.trades if key[1] == order_id)


@pytest.mark.asyncio
async def test_each_providers_bill_reconciles_and_injected_differences_are_reported_exactly(
    example_store: Store, bench: Bench
) -> None:
    store = example_store
    now = dt.datetime.now(BEIJING)
    if now.time() >= dt.time(23, 59) or now.time() < dt.time(0, 1):
        pytest.skip("too close to midnight in Beijing: the bill day could change under the test")
    orders = service(bench, store)
    urls = bench.sims.urls()

    async def paid_qr(provider: str, amount_fen: int) -> str:
        order = await orders.create_qr(SHOP, TID, amount_fen, provider)
        await customer.pay_payload(order.qr_payload, "demo", urls)
        await until(lambda: orders.get(order.order_id).state == "paid")
        return order.order_id

    async def paid_scan(provider: str, amount_fen: int) -> str:
        code = await customer.payment_code(provider, "demo", urls)
        return (await orders.scan(SHOP, TID, code, amount_fen)).order_id

    # WeChat Pay: two payments and a refund that agree; the provider's book says 0.01 more of a third
    w_ok = await paid_qr("wechat", 2372)
    w_refund = (await orders.refund(w_ok, 1000)).refund_no
    await paid_scan("wechat", 500)
    w_more = await paid_scan("wechat", 1500)
    bench.sims.wechat.book.trades[trade_key(bench, "wechat", w_more)].amount_fen = 1501
    # Alipay: one payment the provider lost; one taken at the provider that posgate never recorded
    a_ok = await paid_scan("alipay", 1234)
    a_lost = await paid_qr("alipay", 4321)
    bench.sims.alipay.book.trades.pop(trade_key(bench, "alipay", a_lost))
    code = await customer.payment_code("alipay", "demo", urls)
    stranger = "X" + a_ok[1:]  # an out_trade_no that is not one of ours
    assert (await bench.adapters["alipay"].charge_code(stranger, code, 777, "not ours")).state == "paid"
    # UnionPay: a refund the provider has no trace of; the provider charges 0.40 % instead of 0.38 %
    u_ok = await paid_qr("unionpay", 10_000)
    u_refund = (await orders.refund(u_ok, 2500)).refund_no
    trade = bench.sims.unionpay.book.trades[trade_key(bench, "unionpay", u_ok)]
    trade.refunds.clear()
    bench.sims.unionpay.fee_rate_ppm = 4000

    day = now.date()
    recons = {p: await reconcile_wallet_bill(store, bench.adapters[p], day, RATES) for p in PROVIDERS}
    found = {
        p: sorted(
            (d.status, d.kind, d.order_id, d.refund_no, d.bill_amount_fen, d.our_amount_fen)
            for d in r.differences
        )
        for p, r in recons.items()
    }
    assert found == {
        "wechat": [("amount_mismatch", "pay", w_more, None, 1501, 1500)],
        "alipay": [
            ("missing_at_provider", "pay", a_lost, None, None, 4321),
            ("missing_in_posgate", "pay", stranger, None, 777, None),
        ],
        "unionpay": [
            ("fee_mismatch", "pay", u_ok, None, 10_000, 10_000),
            ("missing_at_provider", "refund", u_ok, u_refund, None, 2500),
        ],
    }
    assert {p: (r.bill_lines, r.matched) for p, r in recons.items()} == {
        "wechat": (4, 3),  # w_ok, its refund w_refund, the 5.00 scan
        "alipay": (2, 1),
        "unionpay": (1, 0),
    }
    assert w_refund and [d.detail for d in recons["unionpay"].differences if d.status == "fee_mismatch"] == [
        "fee 40 fen, the contract rate gives 38"
    ]
    stored = store.transact(
        lambda s: {
            r.bank: (r.kind, r.matched, r.missing_on_host, r.missing_on_issuer, r.amount_mismatch)
            for r in s.scalars(select(ReconReport))
        }
    )
    assert stored == {
        "wechat": ("wallet", 3, 0, 0, 1),
        "alipay": ("wallet", 1, 1, 1, 0),
        "unionpay": ("wallet", 0, 0, 1, 1),
    }
    lines = store.transact(lambda s: sorted((x.status, x.detail) for x in s.scalars(select(ReconLine))))
    assert ("missing_in_posgate", f"pay order {stranger}: posgate has no record of it") in lines


def test_concurrent_runs_clear_each_wallet_payment_once(example_store: Store) -> None:
    """Two runs of the same date at once, in small chunks (PostgreSQL: they race on the unique constraints;
    SQLite: they take turns): every paid order and refund is cleared once, the books balance."""
    store = example_store
    day = dt.date(2026, 3, 10)
    start, _ = clearing_window(day, ZoneInfo(TZ), RATES.clearing.cut_off_local)

    def fill(s) -> None:  # type: ignore[no-untyped-def]
        for n in range(120):
            at = start + dt.timedelta(minutes=n)
            order_id = f"Q{n:024d}"
            s.add(
                WalletOrder(
                    order_id=order_id, provider=("wechat", "alipay", "unionpay")[n % 3], flow="qr",
                    mid=EXAMPLE_MID, tid=TID, amount_fen=1000 + n, refunded_fen=0, state="paid",
                    created_at=at, expires_at=at, paid_at=at, updated_at=at,
                )
            )  # fmt: skip
            if n % 4 == 0:
                s.flush()
                s.add(
                    WalletRefund(
                        refund_no=f"R{n:024d}", order_id=order_id, amount_fen=300, state="succeeded",
                        created_at=at + dt.timedelta(seconds=30), updated_at=at,
                    )
                )  # fmt: skip

    store.transact(fill)
    small = RATES.model_copy(update={"clearing": RATES.clearing.model_copy(update={"chunk_size": 7})})
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: run_clearing(store, day, small, TZ, allow_open_day=True), range(2)))
    assert sum(r.wallet_count for r in runs) == 120 + 30
    got = wallet_entries(store)
    assert len(got) == 150
    assert sum(e.amount_fen for e in got.values()) == sum(1000 + n for n in range(120)) - 30 * 300
    assert store.transact(trial_balance) == 0 and store.transact(verify_balances) == []
