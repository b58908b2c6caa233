"""The Alipay open-API simulator: one gateway, `GET|POST /gateway.do`, the method in the `method` parameter,
RSA2 signatures both ways (`alipay.py`).

| method | does |
|---|---|
| `alipay.trade.precreate` | merchant-presented order → `qr_code` (`https://qr.alipay.com/…`) |
| `alipay.trade.pay` | customer-presented (`scene=bar_code`): `10000` paid, `10003` buyer confirming |
| `alipay.trade.query` | `trade_status`: `WAIT_BUYER_PAY`, `TRADE_SUCCESS`, `TRADE_CLOSED`, `TRADE_FINISHED` |
| `alipay.trade.cancel` | undo a payment whatever its state (refunds if paid): `action` `close` or `refund` |
| `alipay.trade.close` | close an unpaid trade |
| `alipay.trade.refund` | partial refunds by `out_request_no`, never above the amount |
| `alipay.data.dataservice.bill.downloadurl.query` | the day's bill → `bill_download_url` |

Answers: `code` `10000` success, `10003` in progress, `20000` system error, `40002` invalid argument
(`isv.invalid-signature`, `isv.invalid-app-id`, …), `40004` business failure with the real `sub_code`s
(`ACQ.TRADE_NOT_EXIST`, `ACQ.TRADE_HAS_SUCCESS`, `ACQ.TRADE_HAS_CLOSE`, `ACQ.PAYMENT_AUTH_CODE_INVALID`,
`ACQ.BUYER_BALANCE_NOT_ENOUGH`, `ACQ.REFUND_AMT_NOT_EQUAL_TOTAL`, `ACQ.TRADE_STATUS_ERROR`).

Notifications (`notify_type=trade_status_sync`) are form POSTs signed RSA2 without `sign`/`sign_type` in the
content, sent when a trade is paid or refunded, and retried on Alipay's schedule (4 min, 10 min, 10 min,
1 h, 2 h, 6 h, 15 h) until the merchant answers exactly `success`.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from posgate.wallets import alipay, bills, rsakeys
from posgate.wallets.errors import SignatureInvalid
from posgate.wallets.sim import book as b
from posgate.wallets.sim.base import Delivery, Merchant, ProviderSimulator
from posgate.wallets.sim.book import BookError, Notice, Trade

BEIJING = ZoneInfo("Asia/Shanghai")
QR_URL = "https://qr.alipay.com/"
RETRY_SCHEDULE_S = (240, 600, 600, 3600, 7200, 21600, 54000)
DEFAULT_TIMEOUT = dt.timedelta(hours=2)
_SUB_CODES = {
    "NOT_FOUND": ("ACQ.TRADE_NOT_EXIST", "交易不存在"),
    "ORDER_PAID": ("ACQ.TRADE_HAS_SUCCESS", "交易已被支付"),
    "ORDER_CLOSED": ("ACQ.TRADE_HAS_CLOSE", "交易已经关闭"),
    "BALANCE": ("ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足"),
    "CODE_INVALID": ("ACQ.PAYMENT_AUTH_CODE_INVALID", "支付失败，获取顾客账户信息失败"),
    "CODE_USED": ("ACQ.PAYMENT_AUTH_CODE_INVALID", "付款码已使用"),
    "CODE_EXPIRED": ("ACQ.PAYMENT_AUTH_CODE_INVALID", "付款码已过期"),
    "REFUND_EXCEEDS": ("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限"),
    "NOT_PAID": ("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"),
    "STATE": ("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"),
    "DUPLICATE": ("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改"),
    "PARAM": ("ACQ.INVALID_PARAMETER", "参数无效"),
}


def alipay_time(at: dt.datetime) -> str:
    return at.astimezone(BEIJING).strftime(alipay.TIME_FORMAT)


class AlipaySimulator(ProviderSimulator):
    name = "alipay"
    retry_schedule_s = RETRY_SCHEDULE_S

    def __init__(self, finish_after: dt.timedelta = dt.timedelta(days=90), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.book.trade_no_prefix = "2026"
        self.finish_after = finish_after
        self.bill_tokens: dict[str, bytes] = {}

    def api_routes(self) -> list[Route]:
        return [
            Route(alipay.GATEWAY_PATH, self._gateway, methods=["GET", "POST"]),
            Route("/sim/bill/{token}", self._bill_file, methods=["GET"]),
        ]

    def qr_token(self, code_url: str) -> str | None:
        return code_url[len(QR_URL) :] if code_url.startswith(QR_URL) else None

    # -- plumbing -------------------------------------------------------------------------------------------

    def answer(self, method: str, data: dict[str, Any]) -> Response:
        text = alipay.signed_answer(self.platform_key, method, data)
        return Response(text.encode("utf-8"), media_type="application/json; charset=utf-8")

    def failure(self, method: str, sub_code: str, sub_msg: str, code: str = "40004") -> Response:
        msg = {
            "40004": "Business Failed",
            "40002": "Invalid Arguments",
            "20000": "Service Currently Unavailable",
        }
        return self.answer(method, {"code": code, "msg": msg[code], "sub_code": sub_code, "sub_msg": sub_msg})

    def system_error(self) -> Response:
        return PlainTextResponse("system error", status_code=500)

    async def _gateway(self, request: Request) -> Response:
        async def run() -> Response:
            params = dict(parse_qsl(request.url.query, keep_blank_values=True))
            if request.method == "POST":
                body = (await request.body()).decode("utf-8", errors="replace")
                params.update(parse_qsl(body, keep_blank_values=True))
            method = params.get("method", "")
            merchant = self.merchants.get(params.get("app_id", ""))
            if merchant is None:
                return self.failure(method or "error", "isv.invalid-app-id", "无效的AppID参数", "40002")
            try:
                alipay.verify_params(merchant.public_key, params)
            except SignatureInvalid as exc:
                return self.failure(method or "error", "isv.invalid-signature", f"验签出错: {exc}", "40002")
            try:
                biz = json.loads(params.get("biz_content") or "{}")
                if not isinstance(biz, dict):
                    raise ValueError("biz_content is not an object")
            except ValueError:
                return self.failure(method, "isv.invalid-parameter", "biz_content 不是JSON", "40002")
            handler = self._methods.get(method)
            if handler is None:
                return self.failure(method or "error", "isv.invalid-method", "不存在的方法名", "40002")
            try:
                return handler(self, merchant, params, biz)
            except BookError as exc:
                sub_code, sub_msg = _SUB_CODES.get(exc.code, ("ACQ.SYSTEM_ERROR", str(exc)))
                return self.failure(method, sub_code, sub_msg)
            except (ValueError, KeyError, TypeError) as exc:
                return self.failure(method, "ACQ.INVALID_PARAMETER", f"参数无效: {str(exc)[:80]}")

        return await self.guarded(request, run)

    def state_of(self, trade: Trade, now: dt.datetime) -> str:
        if trade.state == b.PAID:
            if trade.refundable_fen == 0:
                return "TRADE_CLOSED"  # fully refunded
            if trade.paid_at is not None and now >= trade.paid_at + self.finish_after:
                return "TRADE_FINISHED"
            return "TRADE_SUCCESS"
        return {b.WAIT: "WAIT_BUYER_PAY", b.PAYING: "WAIT_BUYER_PAY"}.get(trade.state, "TRADE_CLOSED")

    def trade_fields(self, trade: Trade, now: dt.datetime) -> dict[str, Any]:
        data: dict[str, Any] = {
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "trade_status": self.state_of(trade, now),
            "total_amount": alipay.yuan_text(trade.amount_fen),
        }
        if trade.paid_at is not None:
            customer = self.book.customer(trade.customer or "")
            data.update(
                buyer_user_id=customer.user_id,
                buyer_logon_id=customer.name[:1] + "***@example.com",
                buyer_pay_amount=alipay.yuan_text(trade.amount_fen),
                receipt_amount=alipay.yuan_text(trade.amount_fen - trade.refunded_fen),
                send_pay_date=alipay_time(trade.paid_at),
            )
        return data

    # -- methods --------------------------------------------------------------------------------------------

    def _precreate(self, merchant: Merchant, params: dict[str, str], biz: dict[str, Any]) -> Response:
        method = "alipay.trade.precreate"
        now = self.clock()
        expire = now + DEFAULT_TIMEOUT
        if biz.get("time_expire"):
            expire = dt.datetime.strptime(biz["time_expire"], alipay.TIME_FORMAT).replace(tzinfo=BEIJING)
        elif biz.get("timeout_express"):
            expire = now + _express(str(biz["timeout_express"]))
        trade = self.book.create_order(
            merchant.merchant_id,
            _str(biz, "out_trade_no"),
            alipay.fen_of(_str(biz, "total_amount")),
            _str(biz, "subject"),
            now,
            expire,
            params.get("notify_url") or merchant.notify_url,
        )
        if trade.state != b.WAIT:
            raise BookError("ORDER_PAID" if trade.state == b.PAID else "ORDER_CLOSED", "")
        return self.answer(
            method,
            {
                "code": "10000",
                "msg": "Success",
                "out_trade_no": trade.out_trade_no,
                "qr_code": QR_URL + str(trade.code_token),
            },
        )

    def _pay(self, merchant: Merchant, params: dict[str, str], biz: dict[str, Any]) -> Response:
        method = "alipay.trade.pay"
        if biz.get("scene", "bar_code") not in ("bar_code", "wave_code"):
            raise ValueError("scene is bar_code")
        now = self.clock()
        trade = self.book.charge_code(
            merchant.merchant_id,
            _str(biz, "out_trade_no"),
            _str(biz, "auth_code"),
            alipay.fen_of(_str(biz, "total_amount")),
            _str(biz, "subject"),
            now,
            params.get("notify_url") or merchant.notify_url,
        )
        if trade.state == b.PAYING:
            return self.answer(
                method,
                {
                    "code": "10003",
                    "msg": " order success pay inprocess",
                    "trade_no": trade.trade_no,
                    "out_trade_no": trade.out_trade_no,
                    "total_amount": alipay.yuan_text(trade.amount_fen),
                },
            )
        if trade.state != b.PAID:
            raise BookError("ORDER_CLOSED", "")
        fields = self.trade_fields(trade, now)
        fields.pop("trade_status")
        return self.answer(
            method,
            {"code": "10000", "msg": "Success", **fields, "gmt_payment": alipay_time(trade.paid_at or now)},
        )

    def _query(self, merchant: Merchant, params: dict[str, str], biz: dict[str, Any]) -> Response:
        trade = self._find(merchant, biz)
        return self.answer(
            "alipay.trade.query",
            {"code": "10000", "msg": "Success", **self.trade_fields(trade, self.clock())},
        )

    def _find(self, merchant: Merchant, biz: dict[str, Any]) -> Trade:
        now = self.clock()
        if biz.get("out_trade_no"):
            return self.book.trade(merchant.merchant_id, str(biz["out_trade_no"]), now)
        trade = self.book.trade_by_no(_str(biz, "trade_no"), now)
        if trade.merchant_id != merchant.merchant_id:
            raise BookError("NOT_FOUND", "")
        return trade

    def _cancel(self, merchant: Merchant, params: dict[str, str], biz: dict[str, Any]) -> Response:
        trade = self._find(merchant, biz)
        action = "refund" if trade.state == b.PAID else "close"
        trade = self.book.reverse(merchant.merchant_id, trade.out_trade_no, self.clock())
        return self.answer(
            "alipay.trade.cancel",
            {
                "code": "10000",
                "msg": "Success",
                "trade_no": trade.trade_no,
                "out_trade_no": trade.out_trade_no,
                "retry_flag": "N",
                "action": action,
            },
        )

    def _close(self, merchant: Merchant, params: dict[str, str], biz: dict[str, Any]) -> Response:
        trade = self._find(merchant, biz)
        if trade.state == b.PAID:
            raise BookError("NOT_PAID", "")  # ACQ.TRADE_STATUS_ERROR: a paid trade is refunded, not closed
        trade = self.book.close(merchant.merchant_id, trade.out_trade_no, self.clock())
        return self.answer(
            "alipay.trade.close",
            {
                "code": "10000",
                "msg": "Success",
                "trade_no": trade.trade_no,
                "out_trade_no": trade.out_trade_no,
            },
        )

    def _refund(self, merchant: Merchant, params: dict[str, str], biz: dict[str, Any]) -> Response:
        trade = self._find(merchant, biz)
        now = self.clock()
        if self.state_of(trade, now) == "TRADE_FINISHED":
            raise BookError("NOT_PAID", "")
        out_request_no = str(biz.get("out_request_no") or trade.out_trade_no)
        before = trade.refunded_fen
        trade, refund = self.book.refund(
            merchant.merchant_id,
            trade.out_trade_no,
            out_request_no,
            alipay.fen_of(_str(biz, "refund_amount")),
            now,
            str(biz.get("refund_reason", "")),
        )
        customer = self.book.customer(trade.customer or "")
        return self.answer(
            "alipay.trade.refund",
            {
                "code": "10000",
                "msg": "Success",
                "trade_no": trade.trade_no,
                "out_trade_no": trade.out_trade_no,
                "buyer_logon_id": customer.name[:1] + "***@example.com",
                "buyer_user_id": customer.user_id,
                "fund_change": "Y" if trade.refunded_fen != before else "N",
                "refund_fee": alipay.yuan_text(trade.refunded_fen),
                "gmt_refund_pay": alipay_time(refund.created_at),
                "out_request_no": out_request_no,
                "send_back_fee": alipay.yuan_text(refund.amount_fen),
            },
        )

    def _bill_url(self, merchant: Merchant, params: dict[str, str], biz: dict[str, Any]) -> Response:
        if biz.get("bill_type") != "trade":
            raise ValueError("bill_type is trade")
        day = dt.date.fromisoformat(_str(biz, "bill_date"))
        token = secrets.token_urlsafe(16)
        self.bill_tokens[token] = bills.encode_alipay(self.bill_text(merchant.merchant_id, day))
        return self.answer(
            "alipay.data.dataservice.bill.downloadurl.query",
            {"code": "10000", "msg": "Success", "bill_download_url": f"{self.base_url}/sim/bill/{token}"},
        )

    async def _bill_file(self, request: Request) -> Response:
        content = self.bill_tokens.get(request.path_params["token"])
        if content is None:
            return PlainTextResponse("not found", status_code=404)
        return Response(content, media_type="text/csv; charset=GBK")

    def bill_text(self, merchant_id: str, day: dt.date) -> str:
        start = dt.datetime.combine(day, dt.time(), BEIJING)
        rows = self.book.bill(merchant_id, start, start + dt.timedelta(days=1))
        return bills.write_alipay(
            rows, "2088" + merchant_id[-12:].rjust(12, "0"), day, self.fee_rate_ppm, self.clock()
        )

    _methods: ClassVar[dict[str, Any]] = {
        "alipay.trade.precreate": _precreate,
        "alipay.trade.pay": _pay,
        "alipay.trade.query": _query,
        "alipay.trade.cancel": _cancel,
        "alipay.trade.close": _close,
        "alipay.trade.refund": _refund,
        "alipay.data.dataservice.bill.downloadurl.query": _bill_url,
    }

    # -- notifications ------------------------------------------------------------------------------------

    def notification(self, notice: Notice, trade: Trade) -> Delivery | None:
        merchant = self.merchants.get(notice.merchant_id)
        if merchant is None or not trade.notify_url:
            return None
        now = self.clock()
        customer = self.book.customer(trade.customer or "")
        params = {
            "notify_time": alipay_time(now),
            "notify_type": "trade_status_sync",
            "notify_id": secrets.token_hex(16),
            "app_id": merchant.app_id,
            "charset": "utf-8",
            "version": "1.0",
            "sign_type": alipay.SIGN_TYPE,
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "buyer_id": customer.user_id,
            "trade_status": self.state_of(trade, now),
            "total_amount": alipay.yuan_text(trade.amount_fen),
            "receipt_amount": alipay.yuan_text(trade.amount_fen),
            "buyer_pay_amount": alipay.yuan_text(trade.amount_fen),
            "subject": trade.description,
            "gmt_create": alipay_time(trade.created_at),
            "gmt_payment": alipay_time(trade.paid_at or now),
        }
        if notice.event == "refunded":
            refund = next(r for r in trade.refunds if r.out_refund_no == notice.out_refund_no)
            params.update(
                refund_fee=alipay.yuan_text(trade.refunded_fen),
                gmt_refund=alipay_time(refund.created_at),
                out_biz_no=refund.out_refund_no,
            )

        def make() -> tuple[dict[str, str], bytes]:
            sent = {**params, "notify_time": alipay_time(self.clock())}
            content = alipay.sign_content(sent, exclude=("sign", "sign_type"))
            sent["sign"] = rsakeys.sign(self.platform_key, content.encode("utf-8"))
            return {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, urlencode(
                sent
            ).encode()

        label = f"{params['trade_status']}:{trade.out_trade_no}"
        return Delivery(trade.notify_url, make, _accepted_success, label)


def _accepted_success(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.text.strip() == "success"


def _str(biz: dict[str, Any], name: str) -> str:
    value = biz.get(name)
    if value in (None, ""):
        raise ValueError(f"missing {name}")
    return str(value)


def _express(text: str) -> dt.timedelta:
    """`timeout_express` as Alipay writes it: `90m`, `2h`, `1d`, `1c` (today)."""
    unit, number = text[-1:], text[:-1]
    if not number.isdigit() or unit not in "mhd":
        raise ValueError("timeout_express is like 90m, 2h or 1d")
    return dt.timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: int(number)})
