"""Each provider adapter against its simulator over real HTTP on loopback: merchant-presented orders paid,
expired, closed; payment codes paid, "user paying", reversed; refunds partial then over the rest refused;
notifications verified (forged rejected, duplicates marked, old replays rejected, lost ones recovered by
polling, refused ones retried); slow answers time out; the day's bill."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets

import pytest

from posgate.wallets import customer, rsakeys
from posgate.wallets.adapters import adapter_for_code
from posgate.wallets.adapters.base import CLOSED, PAID, PAYING, REVERSED, WAITING
from posgate.wallets.errors import NotificationRejected, ProviderError, ProviderTimeout, UnknownCodePrefix
from posgate.wallets.orderqr import order_payload, provider_url
from tests.integration.wallet_env import PROVIDERS, wallet_bench

pytestmark = pytest.mark.asyncio


def _no() -> str:
    return "T" + secrets.token_hex(8).upper()


def _urls(bench) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return bench.sims.urls()


async def _order(bench, provider: str, amount_fen: int = 2372, ttl_s: float = 600):  # type: ignore[no-untyped-def]
    adapter = bench.adapters[provider]
    out_trade_no = _no()
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl_s)
    created = await adapter.create_order(
        out_trade_no, amount_fen, "小杨生煎", expires, bench.notify_url(provider)
    )
    payload = order_payload(
        provider, created.code_url, amount_fen, "小杨生煎(吴江路店)", "上海", "5812", out_trade_no, "T0000001"
    )
    return out_trade_no, payload


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_merchant_presented_paid_with_verified_notification(provider: str) -> None:
    async with wallet_bench() as bench:
        out_trade_no, payload = await _order(bench, provider)
        assert provider_url(payload)[0] == provider
        assert (await bench.adapters[provider].query(out_trade_no)).state == WAITING
        before = bench.sims.providers[provider].book.customers["demo"].balance_fen
        paid = await customer.pay_payload(payload, "demo", _urls(bench))
        assert paid["paid"] and paid["amount_fen"] == 2372
        await bench.wait_for(lambda: bench.received.of(provider, "payment"))
        note = bench.received.of(provider, "payment")[0]
        assert (note.out_trade_no, note.state, note.amount_fen, note.duplicate) == (
            out_trade_no,
            PAID,
            2372,
            False,
        )
        trade = await bench.adapters[provider].query(out_trade_no)
        assert trade.state == PAID and trade.amount_fen == 2372
        assert bench.sims.providers[provider].book.customers["demo"].balance_fen == before - 2372
        # paying it twice is refused by the wallet
        with pytest.raises(customer.CustomerError, match="already paid"):
            await customer.pay_payload(payload, "demo", _urls(bench))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_merchant_presented_expires_then_cannot_be_paid(provider: str) -> None:
    async with wallet_bench() as bench:
        out_trade_no, payload = await _order(bench, provider, ttl_s=1.2)
        await asyncio.sleep(1.5)
        assert (await bench.adapters[provider].query(out_trade_no)).state == CLOSED
        with pytest.raises(customer.CustomerError, match="closed or expired"):
            await customer.pay_payload(payload, "demo", _urls(bench))


@pytest.mark.parametrize("provider", ["wechat", "alipay"])
async def test_close_ends_an_unpaid_order(provider: str) -> None:
    async with wallet_bench() as bench:
        out_trade_no, payload = await _order(bench, provider)
        await bench.adapters[provider].close(out_trade_no)
        assert (await bench.adapters[provider].query(out_trade_no)).state == CLOSED
        with pytest.raises(customer.CustomerError):
            await customer.pay_payload(payload, "demo", _urls(bench))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_payment_code_paid_once_and_routed_by_prefix(provider: str) -> None:
    async with wallet_bench() as bench:
        code = await customer.payment_code(provider, "demo", _urls(bench))
        adapter = adapter_for_code(code, bench.adapters)
        assert adapter.provider == provider
        out_trade_no = _no()
        trade = await adapter.charge_code(out_trade_no, code, 1999, "coffee")
        assert trade.state == PAID
        assert (await adapter.query(out_trade_no)).state == PAID
        with pytest.raises(ProviderError) as info:  # a code pays once
            await adapter.charge_code(_no(), code, 1999, "coffee")
        assert info.value.reason == "code_invalid"


async def test_unknown_prefix_is_one_clear_error() -> None:
    async with wallet_bench() as bench:
        with pytest.raises(UnknownCodePrefix) as info:
            adapter_for_code("991234567890123456", bench.adapters)
        assert str(info.value) == "unknown payment code prefix '99'"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_user_paying_then_polled_to_paid(provider: str) -> None:
    async with wallet_bench() as bench:
        code = await customer.payment_code(provider, "slowpoke", _urls(bench))
        adapter, out_trade_no = bench.adapters[provider], _no()
        trade = await adapter.charge_code(out_trade_no, code, 500, "tea")
        assert trade.state == PAYING
        states = []
        for _ in range(40):
            states.append((await adapter.query(out_trade_no)).state)
            if states[-1] == PAID:
                break
            await asyncio.sleep(0.1)
        assert states[0] in (PAYING, WAITING) and states[-1] == PAID


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_user_paying_then_reversed_gives_the_money_back(provider: str) -> None:
    async with wallet_bench() as bench:
        book = bench.sims.providers[provider].book
        book.customers["slowpoke"].confirm_after_s = 30
        before = book.customers["slowpoke"].balance_fen
        code = await customer.payment_code(provider, "slowpoke", _urls(bench))
        adapter, out_trade_no = bench.adapters[provider], _no()
        assert (await adapter.charge_code(out_trade_no, code, 800, "tea")).state == PAYING
        await adapter.reverse(out_trade_no)
        trade = await adapter.query(out_trade_no)
        assert trade.state in (REVERSED, CLOSED)
        assert book.customers["slowpoke"].balance_fen == before


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_refund_partial_then_over_the_rest_refused(provider: str) -> None:
    async with wallet_bench() as bench:
        adapter = bench.adapters[provider]
        code = await customer.payment_code(provider, "demo", _urls(bench))
        out_trade_no = _no()
        assert (await adapter.charge_code(out_trade_no, code, 10_000, "dinner")).state == PAID
        first = await adapter.refund(out_trade_no, _no(), 3_000, 10_000, "one dish")
        assert first.amount_fen == 3_000 and first.succeeded
        with pytest.raises(ProviderError) as info:
            await adapter.refund(out_trade_no, _no(), 7_001, 10_000)
        assert info.value.reason == "refund_exceeds"
        again = _no()
        assert (await adapter.refund(out_trade_no, again, 7_000, 10_000)).amount_fen == 7_000
        # the same refund number again is the same refund, not a second one
        await adapter.refund(out_trade_no, again, 7_000, 10_000)
        trade = bench.sims.providers[provider].book.trades[
            (bench.credentials[provider].merchant_id, out_trade_no)
        ]
        assert trade.refunded_fen == 10_000
        with pytest.raises(ProviderError) as info:
            await adapter.refund(out_trade_no, _no(), 1, 10_000)
        assert info.value.reason in ("refund_exceeds", "state", "not_paid")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_forged_notification_is_rejected(provider: str) -> None:
    async with wallet_bench() as bench:
        _, payload = await _order(bench, provider, amount_fen=100)
        await customer.pay_payload(payload, "demo", _urls(bench))
        await bench.wait_for(lambda: bench.received.of(provider, "payment"))
        _, headers, body = next(r for r in bench.received.raw if r[0] == provider)
        adapter, now = bench.adapters[provider], dt.datetime.now(dt.UTC)
        # 1. the same notification with the amount changed
        tampered = body.replace(b"100", b"999", 1) if provider != "wechat" else _tamper_wechat(body)
        with pytest.raises(NotificationRejected) as info:
            adapter.read_notification(headers, tampered, now)
        assert info.value.reason in ("signature", "decrypt")
        # 2. a notification signed by someone else's key, posted over HTTP to the notify endpoint
        forged_headers, forged_body = _forge(provider, headers, body, bench)
        import httpx

        async with httpx.AsyncClient() as client:
            answer = await client.post(
                bench.notify_url(provider), content=forged_body, headers=forged_headers
            )
        assert answer.status_code != 200 or answer.text in ("fail",)
        assert bench.received.rejected[-1] == "signature"
        assert len(bench.received.of(provider, "payment")) == 1


def _tamper_wechat(body: bytes) -> bytes:
    envelope = json.loads(body)
    envelope["summary"] = "支付成功!"
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def _forge(provider: str, headers: dict[str, str], body: bytes, bench) -> tuple[dict[str, str], bytes]:  # type: ignore[no-untyped-def]
    from urllib.parse import parse_qsl, urlencode

    from posgate.wallets import alipay, unionpay, wechatpay

    mallory = rsakeys.generate()
    if provider == "wechat":
        text = body.decode()
        serial = headers["wechatpay-serial"]
        signed = wechatpay.signed_headers(mallory, serial, text, int(dt.datetime.now(dt.UTC).timestamp()))
        return {**signed, "Content-Type": "application/json"}, body
    fields = dict(parse_qsl(body.decode()))
    if provider == "alipay":
        fields.pop("sign")
        content = alipay.sign_content(fields, exclude=("sign", "sign_type"))
        fields["sign"] = rsakeys.sign(mallory, content.encode())
    else:
        fields = unionpay.sign_fields(mallory, fields["certId"], fields)
    return {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(fields).encode()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_duplicate_notification_is_marked_and_applied_once(provider: str) -> None:
    async with wallet_bench() as bench:
        bench.sims.providers[provider].faults.duplicate_notifications = 1
        _, payload = await _order(bench, provider)
        await customer.pay_payload(payload, "demo", _urls(bench))
        await bench.wait_for(lambda: len(bench.received.of(provider, "payment")) == 2)
        first, second = bench.received.of(provider, "payment")
        assert first.event_id == second.event_id
        assert sorted([first.duplicate, second.duplicate]) == [False, True]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_old_notification_replayed_is_rejected(provider: str) -> None:
    async with wallet_bench(window_s=2.0) as bench:
        _, payload = await _order(bench, provider)
        await customer.pay_payload(payload, "demo", _urls(bench))
        await bench.wait_for(lambda: bench.received.of(provider, "payment"))
        _, headers, body = next(r for r in bench.received.raw if r[0] == provider)
        await asyncio.sleep(4.2)  # older than the window now
        import httpx

        refused = bench.adapters[provider].notification_ack(False)
        async with httpx.AsyncClient() as client:
            answer = await client.post(bench.notify_url(provider), content=body, headers=headers)
        assert (answer.status_code, answer.content) == (refused.status, refused.body)
        assert bench.received.rejected[-1] == "stale"
        assert len(bench.received.of(provider, "payment")) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_lost_notification_is_recovered_by_polling(provider: str) -> None:
    async with wallet_bench() as bench:
        bench.sims.providers[provider].faults.lose_notifications = 1
        out_trade_no, payload = await _order(bench, provider)
        await customer.pay_payload(payload, "demo", _urls(bench))
        await asyncio.sleep(0.8)
        assert bench.received.of(provider) == []
        assert (await bench.adapters[provider].query(out_trade_no)).state == PAID


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_refused_notification_is_retried_until_acknowledged(provider: str) -> None:
    async with wallet_bench() as bench:
        bench.received.refuse_next[provider] = 2
        _, payload = await _order(bench, provider)
        await customer.pay_payload(payload, "demo", _urls(bench))
        sim = bench.sims.providers[provider]
        await bench.wait_for(
            lambda: bench.received.of(provider, "payment") and len(sim.delivered) >= 3, timeout_s=5
        )
        attempts = [status for label, status in sim.delivered]
        assert len(attempts) == 3 and attempts[-1] in (200, 204)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_slow_answer_times_out_then_a_query_resolves(provider: str) -> None:
    async with wallet_bench(timeout_s=0.4) as bench:
        adapter, sim = bench.adapters[provider], bench.sims.providers[provider]
        code = await customer.payment_code(provider, "demo", _urls(bench))
        out_trade_no = _no()
        sim.faults.slow_s = 1.0
        with pytest.raises(ProviderTimeout) as info:
            await adapter.charge_code(out_trade_no, code, 1234, "slow")
        assert str(info.value) == f"{provider}: no answer to {_op(provider)} within 0.4 s"
        await asyncio.sleep(0.8)  # the provider did apply it
        sim.faults.slow_s = 0
        assert (await adapter.query(out_trade_no)).state == PAID


def _op(provider: str) -> str:
    return {"wechat": "code payment", "alipay": "alipay.trade.pay", "unionpay": "consume"}[provider]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_injected_failure_is_a_system_error_and_nothing_applied(provider: str) -> None:
    async with wallet_bench() as bench:
        adapter, sim = bench.adapters[provider], bench.sims.providers[provider]
        sim.faults.fail_next = 1
        out_trade_no = _no()
        with pytest.raises(ProviderError) as info:
            await adapter.create_order(
                out_trade_no,
                100,
                "x",
                dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
                "http://127.0.0.1:9/n",
            )
        assert info.value.reason == "system"
        assert (bench.credentials[provider].merchant_id, out_trade_no) not in sim.book.trades


def _beijing_today() -> dt.date:
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_day_bill_lists_payments_and_refunds(provider: str) -> None:
    async with wallet_bench() as bench:
        adapter = bench.adapters[provider]
        first_day = _beijing_today()
        code = await customer.payment_code(provider, "demo", _urls(bench))
        paid_no, refund_no = _no(), _no()
        await adapter.charge_code(paid_no, code, 10_000, "dinner")
        await adapter.refund(paid_no, refund_no, 2_500, 10_000)
        out_trade_no, payload = await _order(bench, provider, amount_fen=4_321)
        await customer.pay_payload(payload, "demo", _urls(bench))
        # the bill of the Beijing day; a run across midnight reads both days' bills
        lines = await adapter.bill(first_day)
        if (last_day := _beijing_today()) != first_day:
            lines += await adapter.bill(last_day)
        got = sorted((line.kind, line.out_trade_no, line.amount_fen, line.out_refund_no) for line in lines)
        assert got == sorted(
            [
                ("pay", paid_no, 10_000, ""),
                ("refund", paid_no, 2_500, refund_no),
                ("pay", out_trade_no, 4_321, ""),
            ]
        )
        fees = {line.kind: line.fee_fen for line in lines if line.out_trade_no == paid_no}
        rate = bench.sims.providers[provider].fee_rate_ppm
        assert fees == {
            "pay": (10_000 * rate + 500_000) // 1_000_000,
            "refund": -((2_500 * rate + 500_000) // 1_000_000),
        }
