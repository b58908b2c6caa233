"""The WeChat Pay API v3 simulator (direct merchant mode), on the paths and with the signatures of the real
API (`wechatpay.py`):

| call | path |
|---|---|
| native order (merchant-presented) | `POST /v3/pay/transactions/native` → `code_url` (`weixin://wxpay/…`) |
| payment code (customer-presented) | `POST /v3/pay/transactions/codepay` → the trade, or 202 USERPAYING |
| query | `GET /v3/pay/transactions/out-trade-no/{no}?mchid=…`, `GET /v3/pay/transactions/id/{id}?mchid=…` |
| close | `POST /v3/pay/transactions/out-trade-no/{no}/close` → 204 |
| reverse (code payments) | `POST /v3/pay/transactions/out-trade-no/{no}/reverse` |
| refund | `POST /v3/refund/domestic/refunds`, `GET /v3/refund/domestic/refunds/{out_refund_no}` |
| trade bill | `GET /v3/bill/tradebill?bill_date=…` → `download_url`, `GET /v3/billdownload/file?token=…` |

Every request must carry a good `Authorization` (the registered merchant's key, timestamp within 5 min);
every answer is signed with the platform key (`Wechatpay-*` headers; public-key mode: the serial is a
`PUB_KEY_ID_…`). Native orders notify `notify_url` (`TRANSACTION.SUCCESS`; refunds `REFUND.SUCCESS`) with
the resource encrypted under the merchant's API v3 key; retried until the merchant answers 2xx. Code
payments send no notification (as on the real API): the cashier queries.

Trade states: `NOTPAY`, `USERPAYING`, `SUCCESS`, `REFUND` (a refund was made), `CLOSED`, `REVOKED`.
Errors are `{"code", "message"}` with the real codes: `SIGN_ERROR` 401, `PARAM_ERROR` / `INVALID_REQUEST`
400, `ORDERNOTEXIST` 404, `ORDERPAID` / `OUT_TRADE_NO_USED` / `NOT_ENOUGH` 403, `ORDER_CLOSED` 400,
`AUTH_CODE_INVALID` 400, `SYSTEM_ERROR` 500.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from posgate.wallets import bills, wechatpay
from posgate.wallets.errors import SignatureInvalid
from posgate.wallets.sim import book as b
from posgate.wallets.sim.base import Delivery, Merchant, ProviderSimulator
from posgate.wallets.sim.book import BookError, Notice, Trade

BEIJING = ZoneInfo("Asia/Shanghai")
CODE_URL = "weixin://wxpay/bizpayurl?pr="
DEFAULT_ORDER_TTL = dt.timedelta(hours=2)
# WeChat Pay's documented retry intervals after the first attempt
RETRY_SCHEDULE_S = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600)
_ERRORS = {
    "NOT_FOUND": (404, "ORDERNOTEXIST", "订单不存在"),
    "ORDER_PAID": (403, "ORDERPAID", "订单已支付"),
    "ORDER_CLOSED": (400, "ORDER_CLOSED", "订单已关闭"),
    "BALANCE": (403, "NOT_ENOUGH", "用户余额不足"),
    "CODE_INVALID": (400, "AUTH_CODE_INVALID", "付款码无效"),
    "CODE_USED": (400, "AUTH_CODE_INVALID", "付款码已使用"),
    "CODE_EXPIRED": (400, "AUTH_CODE_INVALID", "付款码已过期"),
    "REFUND_EXCEEDS": (400, "INVALID_REQUEST", "申请退款金额超过订单可退金额"),
    "NOT_PAID": (400, "INVALID_REQUEST", "订单未支付"),
    "STATE": (400, "INVALID_REQUEST", "订单状态不允许此操作"),
    "DUPLICATE": (403, "OUT_TRADE_NO_USED", "商户订单号重复"),
    "PARAM": (400, "PARAM_ERROR", "参数错误"),
}


def wechat_time(at: dt.datetime) -> str:
    return at.astimezone(BEIJING).isoformat(timespec="seconds")


def parse_wechat_time(text: str) -> dt.datetime:
    at = dt.datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError("time without offset")
    return at


class WeChatPaySimulator(ProviderSimulator):
    name = "wechat"
    retry_schedule_s = RETRY_SCHEDULE_S

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.book.trade_no_prefix = "42"
        if not self.platform_serial.startswith("PUB_KEY_ID_"):
            self.platform_serial = "PUB_KEY_ID_0114" + secrets.token_hex(12).upper()
        self.bill_tokens: dict[str, bytes] = {}

    def api_routes(self) -> list[Route]:
        return [
            Route("/v3/pay/transactions/native", self._native, methods=["POST"]),
            Route("/v3/pay/transactions/codepay", self._codepay, methods=["POST"]),
            Route("/v3/pay/transactions/out-trade-no/{no}", self._query, methods=["GET"]),
            Route("/v3/pay/transactions/id/{tid}", self._query, methods=["GET"]),
            Route("/v3/pay/transactions/out-trade-no/{no}/close", self._close, methods=["POST"]),
            Route("/v3/pay/transactions/out-trade-no/{no}/reverse", self._reverse, methods=["POST"]),
            Route("/v3/refund/domestic/refunds", self._refund, methods=["POST"]),
            Route("/v3/refund/domestic/refunds/{no}", self._refund_query, methods=["GET"]),
            Route("/v3/bill/tradebill", self._tradebill, methods=["GET"]),
            Route("/v3/billdownload/file", self._bill_download, methods=["GET"]),
        ]

    def qr_token(self, code_url: str) -> str | None:
        return code_url[len(CODE_URL) :] if code_url.startswith(CODE_URL) else None

    # -- plumbing -------------------------------------------------------------------------------------------

    def answer(self, data: dict[str, Any] | None, status: int = 200) -> Response:
        body = "" if data is None else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        now = int(self.clock().timestamp())
        headers = wechatpay.signed_headers(self.platform_key, self.platform_serial, body, now)
        headers["Request-ID"] = secrets.token_hex(16)
        if data is None:
            return Response(status_code=status, headers=headers)
        return Response(body.encode(), status_code=status, headers=headers, media_type="application/json")

    def error(self, status: int, code: str, message: str) -> Response:
        return self.answer({"code": code, "message": message}, status)

    def book_error(self, exc: BookError) -> Response:
        status, code, message = _ERRORS.get(exc.code, (400, "INVALID_REQUEST", str(exc)))
        return self.error(status, code, message)

    def system_error(self) -> Response:
        return self.error(500, "SYSTEM_ERROR", "系统错误")

    async def authenticate(self, request: Request) -> tuple[Merchant, str]:
        body = (await request.body()).decode("utf-8", errors="replace")
        url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        header = request.headers.get("authorization", "")
        try:
            auth = wechatpay.parse_authorization(header)
            merchant = self.merchants.get(auth.mchid)
            if merchant is None or merchant.key_serial != auth.serial_no:
                raise SignatureInvalid("Authorization: unknown mchid or serial_no")
            now = int(self.clock().timestamp())
            wechatpay.verify_request(merchant.public_key, header, request.method, url, body, now)
        except SignatureInvalid as exc:
            raise _Refused(self.error(401, "SIGN_ERROR", str(exc))) from None
        return merchant, body

    async def call(self, request: Request, handler: Any) -> Response:
        async def run() -> Response:
            try:
                merchant, body = await self.authenticate(request)
                data: dict[str, Any] = {}
                if body:
                    loaded = json.loads(body)
                    if not isinstance(loaded, dict):
                        return self.error(400, "PARAM_ERROR", "body is not a JSON object")
                    data = loaded
                return await handler(request, merchant, data)
            except _Refused as refused:
                return refused.response
            except BookError as exc:
                return self.book_error(exc)
            except (ValueError, KeyError, TypeError) as exc:
                return self.error(400, "PARAM_ERROR", f"参数错误: {type(exc).__name__}: {str(exc)[:80]}")

        return await self.guarded(request, run)

    def transaction(self, trade: Trade, merchant: Merchant) -> dict[str, Any]:
        state = {
            b.WAIT: "NOTPAY",
            b.PAYING: "USERPAYING",
            b.PAID: "REFUND" if trade.refunds else "SUCCESS",
            b.CLOSED: "CLOSED",
            b.REVERSED: "REVOKED",
        }[trade.state]
        data: dict[str, Any] = {
            "appid": merchant.app_id,
            "mchid": merchant.merchant_id,
            "out_trade_no": trade.out_trade_no,
            "transaction_id": trade.trade_no,
            "trade_type": "NATIVE" if trade.kind == "order" else "MICROPAY",
            "trade_state": state,
            "trade_state_desc": {"SUCCESS": "支付成功", "NOTPAY": "未支付", "CLOSED": "已关闭"}.get(
                state, state
            ),
            "attach": trade.attach,
            "amount": {"total": trade.amount_fen, "currency": "CNY"},
        }
        if trade.paid_at is not None:
            customer = self.book.customer(trade.customer or "")
            data["bank_type"] = "OTHERS"
            data["success_time"] = wechat_time(trade.paid_at)
            data["payer"] = {"openid": customer.user_id}
            data["amount"].update(payer_total=trade.amount_fen, payer_currency="CNY")
        return data

    # -- the API --------------------------------------------------------------------------------------------

    async def _native(self, request: Request) -> Response:
        async def handle(request: Request, merchant: Merchant, data: dict[str, Any]) -> Response:
            _need(data, "appid", "mchid", "description", "out_trade_no", "notify_url", "amount")
            if data["mchid"] != merchant.merchant_id or data["appid"] != merchant.app_id:
                return self.error(400, "PARAM_ERROR", "mchid/appid do not match the signer")
            now = self.clock()
            expire = (
                parse_wechat_time(data["time_expire"]) if data.get("time_expire") else now + DEFAULT_ORDER_TTL
            )
            trade = self.book.create_order(
                merchant.merchant_id,
                str(data["out_trade_no"]),
                _total(data),
                str(data["description"]),
                now,
                expire,
                str(data["notify_url"]),
                str(data.get("attach", "")),
            )
            if trade.state != b.WAIT:
                return self.book_error(
                    BookError("ORDER_PAID" if trade.state == b.PAID else "ORDER_CLOSED", "")
                )
            return self.answer({"code_url": CODE_URL + str(trade.code_token)})

        return await self.call(request, handle)

    async def _codepay(self, request: Request) -> Response:
        async def handle(request: Request, merchant: Merchant, data: dict[str, Any]) -> Response:
            _need(data, "appid", "mchid", "description", "out_trade_no", "payer", "amount")
            auth_code = str(data["payer"].get("auth_code", ""))
            trade = self.book.charge_code(
                merchant.merchant_id,
                str(data["out_trade_no"]),
                auth_code,
                _total(data),
                str(data["description"]),
                self.clock(),
                None,
                str(data.get("attach", "")),
            )
            if trade.state == b.PAYING:
                return self.answer({"trade_state": "USERPAYING"}, 202)
            return self.answer(self.transaction(trade, merchant))

        return await self.call(request, handle)

    async def _query(self, request: Request) -> Response:
        async def handle(request: Request, merchant: Merchant, data: dict[str, Any]) -> Response:
            if request.query_params.get("mchid") != merchant.merchant_id:
                return self.error(400, "PARAM_ERROR", "mchid is missing or not the signer")
            now = self.clock()
            if "no" in request.path_params:
                trade = self.book.trade(merchant.merchant_id, request.path_params["no"], now)
            else:
                trade = self.book.trade_by_no(request.path_params["tid"], now)
                if trade.merchant_id != merchant.merchant_id:
                    raise BookError("NOT_FOUND", "")
            return self.answer(self.transaction(trade, merchant))

        return await self.call(request, handle)

    async def _close(self, request: Request) -> Response:
        async def handle(request: Request, merchant: Merchant, data: dict[str, Any]) -> Response:
            _need(data, "mchid")
            self.book.close(merchant.merchant_id, request.path_params["no"], self.clock())
            return self.answer(None, 204)

        return await self.call(request, handle)

    async def _reverse(self, request: Request) -> Response:
        async def handle(request: Request, merchant: Merchant, data: dict[str, Any]) -> Response:
            _need(data, "mchid")
            trade = self.book.reverse(merchant.merchant_id, request.path_params["no"], self.clock())
            return self.answer({"mchid": merchant.merchant_id, "out_trade_no": trade.out_trade_no})

        return await self.call(request, handle)

    def _refund_body(self, trade: Trade, refund: b.Refund) -> dict[str, Any]:
        return {
            "refund_id": refund.refund_id,
            "out_refund_no": refund.out_refund_no,
            "transaction_id": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "success_time": wechat_time(refund.created_at),
            "create_time": wechat_time(refund.created_at),
            "status": "SUCCESS",
            "amount": {
                "total": trade.amount_fen,
                "refund": refund.amount_fen,
                "payer_total": trade.amount_fen,
                "payer_refund": refund.amount_fen,
                "currency": "CNY",
            },
        }

    async def _refund(self, request: Request) -> Response:
        async def handle(request: Request, merchant: Merchant, data: dict[str, Any]) -> Response:
            _need(data, "out_refund_no", "amount")
            amount = data["amount"]
            refund_fen, total = amount.get("refund"), amount.get("total")
            if not isinstance(refund_fen, int) or not isinstance(total, int):
                return self.error(400, "PARAM_ERROR", "amount.refund and amount.total are integers (fen)")
            now = self.clock()
            if data.get("out_trade_no"):
                trade = self.book.trade(merchant.merchant_id, str(data["out_trade_no"]), now)
            else:
                trade = self.book.trade_by_no(str(data.get("transaction_id", "")), now)
            if total != trade.amount_fen:
                return self.error(400, "PARAM_ERROR", "amount.total is not the order's amount")
            if data.get("notify_url"):
                trade.notify_url = trade.notify_url or str(data["notify_url"])
            trade, refund = self.book.refund(
                merchant.merchant_id,
                trade.out_trade_no,
                str(data["out_refund_no"]),
                refund_fen,
                now,
                str(data.get("reason", "")),
            )
            return self.answer(self._refund_body(trade, refund))

        return await self.call(request, handle)

    async def _refund_query(self, request: Request) -> Response:
        async def handle(request: Request, merchant: Merchant, data: dict[str, Any]) -> Response:
            wanted = request.path_params["no"]
            for trade in self.book.trades.values():
                if trade.merchant_id != merchant.merchant_id:
                    continue
                for refund in trade.refunds:
                    if refund.out_refund_no == wanted:
                        return self.answer(self._refund_body(trade, refund))
            return self.error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")

        return await self.call(request, handle)

    async def _tradebill(self, request: Request) -> Response:
        async def handle(request: Request, merchant: Merchant, data: dict[str, Any]) -> Response:
            day = dt.date.fromisoformat(request.query_params.get("bill_date", ""))
            text = self.bill_text(merchant.merchant_id, day)
            token = secrets.token_urlsafe(16)
            self.bill_tokens[token] = text.encode("utf-8")
            return self.answer(
                {
                    "hash_type": "SHA1",
                    "hash_value": hashlib.sha1(self.bill_tokens[token]).hexdigest(),
                    "download_url": f"{self.base_url}/v3/billdownload/file?token={token}",
                }
            )

        return await self.call(request, handle)

    async def _bill_download(self, request: Request) -> Response:
        async def handle(request: Request, merchant: Merchant, data: dict[str, Any]) -> Response:
            content = self.bill_tokens.get(request.query_params.get("token", ""))
            if content is None:
                return self.error(404, "RESOURCE_NOT_EXISTS", "账单不存在")
            return Response(content, media_type="text/csv; charset=utf-8")  # the file itself is not signed

        return await self.call(request, handle)

    def bill_text(self, merchant_id: str, day: dt.date) -> str:
        start = dt.datetime.combine(day, dt.time(), BEIJING)
        rows = self.book.bill(merchant_id, start, start + dt.timedelta(days=1))
        merchant = self.merchants.get(merchant_id)
        return bills.write_wechat(rows, merchant.app_id if merchant else "", merchant_id, self.fee_rate_ppm)

    # -- notifications ------------------------------------------------------------------------------------

    def notification(self, notice: Notice, trade: Trade) -> Delivery | None:
        merchant = self.merchants.get(notice.merchant_id)
        url = trade.notify_url or (merchant.notify_url if merchant else None)
        if merchant is None or merchant.apiv3_key is None or not url or trade.kind != "order":
            return None
        now = self.clock()
        if notice.event == "paid":
            event, original, summary = "TRANSACTION.SUCCESS", "transaction", "支付成功"
            plain = self.transaction(trade, merchant)
        else:
            refund = next(r for r in trade.refunds if r.out_refund_no == notice.out_refund_no)
            event, original, summary = "REFUND.SUCCESS", "refund", "退款成功"
            plain = {
                "mchid": merchant.merchant_id,
                "out_trade_no": trade.out_trade_no,
                "transaction_id": trade.trade_no,
                "out_refund_no": refund.out_refund_no,
                "refund_id": refund.refund_id,
                "refund_status": "SUCCESS",
                "success_time": wechat_time(refund.created_at),
                "amount": {
                    "total": trade.amount_fen,
                    "refund": refund.amount_fen,
                    "payer_total": trade.amount_fen,
                    "payer_refund": refund.amount_fen,
                },
            }
        resource = wechatpay.encrypt_resource(
            merchant.apiv3_key, json.dumps(plain, ensure_ascii=False), original, original
        )
        envelope = {
            "id": "EV-" + secrets.token_hex(10),
            "create_time": wechat_time(now),
            "resource_type": "encrypt-resource",
            "event_type": event,
            "summary": summary,
            "resource": resource,
        }
        body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))

        def make() -> tuple[dict[str, str], bytes]:
            at = int(self.clock().timestamp())
            headers = wechatpay.signed_headers(self.platform_key, self.platform_serial, body, at)
            return {**headers, "Content-Type": "application/json"}, body.encode()

        return Delivery(url, make, _accepted_2xx, f"{event}:{trade.out_trade_no}")


def _accepted_2xx(response: httpx.Response) -> bool:
    return 200 <= response.status_code < 300


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _need(data: dict[str, Any], *names: str) -> None:
    missing = [name for name in names if data.get(name) in (None, "")]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")


def _total(data: dict[str, Any]) -> int:
    amount = data["amount"]
    if not isinstance(amount, dict):
        raise ValueError("amount is an object")
    total = amount.get("total")
    if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
        raise ValueError("amount.total is a positive integer (fen)")
    if amount.get("currency", "CNY") != "CNY":
        raise ValueError("amount.currency must be CNY")
    return total


__all__ = ["JSONResponse", "WeChatPaySimulator"]
