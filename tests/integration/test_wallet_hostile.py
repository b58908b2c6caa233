"""Hostile input, both ways, over real HTTP: garbage sent to the simulators' APIs is answered with the
provider's own refusal (never a 500 or a traceback, nothing applied), and a "provider" answering garbage
or unsigned text gives the adapter a `ProviderError` / `SignatureInvalid`, never a crash; a notification
that verifies but lacks fields is rejected as `format`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from posgate.wallets import wechatpay
from posgate.wallets.errors import NotificationRejected, ProviderError, SignatureInvalid
from tests.integration.wallet_env import wallet_bench

pytestmark = pytest.mark.asyncio

GARBAGE = [b"", b"{", b"[]", b'{"amount": "x"}', b"\xff\xfe\x00", b"a=b&&c", "中文".encode() * 3000, b"null"]


async def test_simulators_refuse_garbage_without_500_and_apply_nothing() -> None:
    async with wallet_bench() as bench:
        targets = {
            "wechat": [
                "/v3/pay/transactions/native",
                "/v3/pay/transactions/codepay",
                "/v3/refund/domestic/refunds",
            ],
            "alipay": ["/gateway.do"],
            "unionpay": ["/gateway/api/backTransReq.do", "/gateway/api/queryTrans.do"],
        }
        async with httpx.AsyncClient() as client:
            for provider, paths in targets.items():
                sim = bench.sims.providers[provider]
                for path in paths:
                    for body in GARBAGE:
                        for headers in (
                            {},
                            {"Authorization": 'WECHATPAY2-SHA256-RSA2048 mchid="1900000109"'},
                        ):
                            answer = await client.post(sim.base_url + path, content=body, headers=headers)
                            assert answer.status_code < 500, (provider, path, body[:20], answer.text[:200])
                for path in ("/sim/pay", "/sim/codes", "/sim/faults", "/sim/merchants"):
                    for body in GARBAGE:
                        answer = await client.post(sim.base_url + path, content=body)
                        assert answer.status_code < 500, (provider, path, body[:20], answer.text[:200])
                assert sim.book.trades == {}


async def test_wechat_signed_request_with_bad_fields_is_param_error() -> None:
    async with wallet_bench() as bench:
        adapter = bench.adapters["wechat"]
        with pytest.raises(ProviderError) as info:
            await adapter.call(
                "native order", "POST", "/v3/pay/transactions/native", {"appid": "x", "amount": "1"}
            )
        assert (info.value.code, info.value.status, info.value.reason) == ("PARAM_ERROR", 400, "param")


@contextlib.asynccontextmanager
async def liar(reply: Response):  # type: ignore[no-untyped-def]
    async def any_path(request: Request) -> Response:
        await request.body()
        return reply

    app = Starlette(routes=[Route("/{path:path}", any_path, methods=["GET", "POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.mark.parametrize(
    "reply",
    [
        Response(b"<html>proxy error</html>", 200, media_type="text/html"),
        Response(b'{"code_url":"weixin://x"}', 200, media_type="application/json"),
        Response(b"respCode=00&qrCode=x", 200),
        Response(b'{"alipay_trade_precreate_response":{"code":"10000"},"sign":"AAAA"}', 200),
        Response(b"", 502),
    ],
)
@pytest.mark.parametrize("provider", ["wechat", "alipay", "unionpay"])
async def test_adapters_survive_a_lying_provider(provider: str, reply: Response) -> None:
    from posgate.wallets.adapters import ADAPTERS

    async with wallet_bench() as bench, liar(reply) as url:
        adapter = ADAPTERS[provider](bench.credentials[provider], url, 2.0)  # type: ignore[call-arg]
        try:
            with pytest.raises((ProviderError, SignatureInvalid)):
                await adapter.create_order(
                    "L1", 100, "x", dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5), "http://127.0.0.1:9/n"
                )
        finally:
            await adapter.aclose()


async def test_a_notification_that_verifies_but_lacks_fields_is_rejected_as_format() -> None:
    async with wallet_bench() as bench:
        sim, adapter = bench.sims.wechat, bench.adapters["wechat"]
        creds = bench.credentials["wechat"]
        assert creds.apiv3_key is not None
        resource = wechatpay.encrypt_resource(
            creds.apiv3_key, json.dumps({"mchid": creds.merchant_id}), "transaction", "transaction"
        )
        body = json.dumps({"id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "resource": resource})
        now = dt.datetime.now(dt.UTC)
        headers = wechatpay.signed_headers(sim.platform_key, sim.platform_serial, body, int(now.timestamp()))
        with pytest.raises(NotificationRejected) as info:
            adapter.read_notification(headers, body.encode(), now)
        assert info.value.reason == "format"
