"""The UnionPay QR simulator (bank-app QR payments, the UnionPay open platform's ACP 5.1.0 style): forms
both ways, signed `signMethod=01` (`unionpay.py`).

| call | path | fields |
|---|---|---|
| apply for a QR (merchant-presented) | `POST /gateway/api/backTransReq.do` | `txnType=01/07` → `qrCode` |
| consume by payment code | `POST /gateway/api/backTransReq.do` | `txnType=01 txnSubType=06 qrNo=…` |
| void (cancel) | `POST /gateway/api/backTransReq.do` | `txnType=31`, `origQryId` |
| refund | `POST /gateway/api/backTransReq.do` | `txnType=04`, `origQryId`, a new `orderId` |
| query | `POST /gateway/api/queryTrans.do` | `txnType=00`, `orderId` → `origRespCode` |
| settlement file | `POST /gateway/api/fileTransRequest.do` | `txnType=76`, `settleDate` → `fileContent` |

`respCode` (the request itself) and `origRespCode` (the queried transaction): `00` success, `05` accepted,
outcome not yet known (query again), `11` signature, `12` duplicate order, `10` format, `31` merchant
unknown, `33` amount over the limit (refunds), `34` no such transaction, `35` original transaction in the
wrong state, `61` balance too low, `01` failed (payment code invalid, used or expired), `06` system busy.
Codes as we recall them from UnionPay's published lists — the simulator uses exactly these.

An order applied for with `txnSubType=07` that nobody pays expires (`payTimeout`, default 2 h; queried:
`origRespCode=01`, closed). Results are notified to `backUrl` (HTTP 200 counts as received; retried after
1, 2, 4 and 8 minutes). `fileContent` here is base64 of the zlib-compressed CSV (`bills.write_unionpay`);
UnionPay's real file is a zip of fixed-width files.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import zlib
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from posgate.wallets import bills, unionpay
from posgate.wallets.errors import SignatureInvalid
from posgate.wallets.sim import book as b
from posgate.wallets.sim.base import Delivery, Merchant, ProviderSimulator
from posgate.wallets.sim.book import BookError, Notice, Trade

BEIJING = ZoneInfo("Asia/Shanghai")
QR_URL = "https://qr.95516.com/00010000/"
RETRY_SCHEDULE_S = (60, 120, 240, 480)
DEFAULT_TIMEOUT = dt.timedelta(hours=2)
_CODES = {
    "NOT_FOUND": ("34", "查无此交易"),
    "ORDER_PAID": ("35", "原交易状态不正确"),
    "ORDER_CLOSED": ("35", "原交易状态不正确"),
    "BALANCE": ("61", "余额不足"),
    "CODE_INVALID": ("01", "付款码无效"),
    "CODE_USED": ("01", "付款码已使用"),
    "CODE_EXPIRED": ("01", "付款码已过期"),
    "REFUND_EXCEEDS": ("33", "退货金额超限"),
    "NOT_PAID": ("35", "原交易状态不正确"),
    "STATE": ("35", "原交易状态不正确"),
    "DUPLICATE": ("12", "重复交易"),
    "PARAM": ("10", "报文格式错误"),
}


def up_time(at: dt.datetime) -> str:
    return at.astimezone(BEIJING).strftime(unionpay.TIME_FORMAT)


class UnionPaySimulator(ProviderSimulator):
    name = "unionpay"
    retry_schedule_s = RETRY_SCHEDULE_S

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("fee_rate_ppm", 3800)
        super().__init__(**kwargs)
        self.book.trade_no_prefix = "6"
        if not self.platform_serial.isdigit():
            self.platform_serial = str(int(self.platform_serial[:6], 16) * 1000 + 69)

    def api_routes(self) -> list[Route]:
        return [
            Route("/gateway/api/backTransReq.do", self._back_trans, methods=["POST"]),
            Route("/gateway/api/queryTrans.do", self._query, methods=["POST"]),
            Route("/gateway/api/fileTransRequest.do", self._file, methods=["POST"]),
        ]

    def qr_token(self, code_url: str) -> str | None:
        return code_url[len(QR_URL) :] if code_url.startswith(QR_URL) else None

    # -- plumbing -------------------------------------------------------------------------------------------

    def answer(self, request_fields: dict[str, str], fields: dict[str, str]) -> Response:
        echo = {
            k: request_fields[k]
            for k in (
                "version",
                "encoding",
                "txnType",
                "txnSubType",
                "bizType",
                "accessType",
                "merId",
                "orderId",
                "txnTime",
            )
            if k in request_fields
        }
        signed = unionpay.sign_fields(self.platform_key, self.platform_serial, {**echo, **fields})
        return Response(
            urlencode(signed).encode(), media_type="application/x-www-form-urlencoded; charset=utf-8"
        )

    def refuse(self, request_fields: dict[str, str], code: str, message: str) -> Response:
        return self.answer(request_fields, {"respCode": code, "respMsg": message})

    def system_error(self) -> Response:
        return Response(b"respCode=06&respMsg=system+busy", status_code=500)

    async def call(self, request: Request, handler: Any) -> Response:
        async def run() -> Response:
            body = (await request.body()).decode("utf-8", errors="replace")
            fields = dict(parse_qsl(body, keep_blank_values=True))
            merchant = self.merchants.get(fields.get("merId", ""))
            if merchant is None:
                return self.refuse(fields, "31", "商户状态不正确")
            try:
                unionpay.verify_fields({merchant.key_serial: merchant.public_key}, fields)
            except SignatureInvalid as exc:
                return self.refuse(fields, "11", f"验证签名失败: {exc}")
            if fields.get("version") != unionpay.VERSION:
                return self.refuse(fields, "10", "报文格式错误: version")
            try:
                return await handler(merchant, fields)
            except BookError as exc:
                code, message = _CODES.get(exc.code, ("01", str(exc)))
                return self.refuse(fields, code, message)
            except (ValueError, KeyError) as exc:
                return self.refuse(fields, "10", f"报文格式错误: {str(exc)[:80]}")

        return await self.guarded(request, run)

    def result_code(self, trade: Trade) -> tuple[str, str]:
        if trade.state == b.PAID:
            return "00", "成功[0000000]"
        if trade.state in (b.WAIT, b.PAYING):
            return "05", "交易已受理，请稍后查询交易结果"
        if trade.state == b.REVERSED:
            return "01", "交易已撤销"
        return "01", "交易失败: 订单已关闭"

    # -- the API --------------------------------------------------------------------------------------------

    async def _back_trans(self, request: Request) -> Response:
        async def handle(merchant: Merchant, f: dict[str, str]) -> Response:
            kind = (f.get("txnType", ""), f.get("txnSubType", ""))
            now = self.clock()
            if kind == unionpay.APPLY_QR:
                minutes = f.get("payTimeout", "")
                expire = now + DEFAULT_TIMEOUT
                if minutes:
                    expire = dt.datetime.strptime(minutes, unionpay.TIME_FORMAT).replace(tzinfo=BEIJING)
                trade = self.book.create_order(
                    merchant.merchant_id,
                    _f(f, "orderId"),
                    _amount(f),
                    f.get("orderDesc", "UnionPay QR"),
                    now,
                    expire,
                    f.get("backUrl") or merchant.notify_url,
                )
                if trade.state != b.WAIT:
                    raise BookError("ORDER_PAID", "")
                return self.answer(
                    f, {"respCode": "00", "respMsg": "成功", "qrCode": QR_URL + str(trade.code_token)}
                )
            if kind == unionpay.CONSUME_BY_CODE:
                trade = self.book.charge_code(
                    merchant.merchant_id,
                    _f(f, "orderId"),
                    _f(f, "qrNo"),
                    _amount(f),
                    f.get("orderDesc", ""),
                    now,
                    f.get("backUrl") or merchant.notify_url,
                )
                code, message = self.result_code(trade)
                return self.answer(
                    f,
                    {
                        "respCode": code,
                        "respMsg": message,
                        "queryId": trade.trade_no,
                        "txnAmt": str(trade.amount_fen),
                        "currencyCode": "156",
                    },
                )
            if kind[0] == unionpay.CANCEL[0]:
                original = self.book.trade_by_no(_f(f, "origQryId"), now)
                if original.merchant_id != merchant.merchant_id:
                    raise BookError("NOT_FOUND", "")
                if _amount(f) != original.amount_fen:
                    raise BookError("PARAM", "")
                self.book.reverse(merchant.merchant_id, original.out_trade_no, now)
                return self.answer(
                    f,
                    {
                        "respCode": "00",
                        "respMsg": "成功",
                        "queryId": original.trade_no + "C",
                        "origQryId": original.trade_no,
                    },
                )
            if kind[0] == unionpay.REFUND[0]:
                original = self.book.trade_by_no(_f(f, "origQryId"), now)
                if original.merchant_id != merchant.merchant_id:
                    raise BookError("NOT_FOUND", "")
                _, refund = self.book.refund(
                    merchant.merchant_id, original.out_trade_no, _f(f, "orderId"), _amount(f), now
                )
                return self.answer(
                    f,
                    {
                        "respCode": "00",
                        "respMsg": "成功",
                        "queryId": refund.refund_id,
                        "origQryId": original.trade_no,
                        "txnAmt": str(refund.amount_fen),
                    },
                )
            return self.refuse(f, "10", f"报文格式错误: txnType {kind[0]!r} txnSubType {kind[1]!r}")

        return await self.call(request, handle)

    async def _query(self, request: Request) -> Response:
        async def handle(merchant: Merchant, f: dict[str, str]) -> Response:
            order_id, now = _f(f, "orderId"), self.clock()
            for trade in self.book.trades.values():  # a refund is a transaction of its own
                for refund in trade.refunds:
                    if trade.merchant_id == merchant.merchant_id and refund.out_refund_no == order_id:
                        return self.answer(
                            f,
                            {
                                "respCode": "00",
                                "respMsg": "成功",
                                "origRespCode": "00",
                                "origRespMsg": "成功",
                                "queryId": refund.refund_id,
                                "txnAmt": str(refund.amount_fen),
                                "origQryId": trade.trade_no,
                            },
                        )
            trade = self.book.trade(merchant.merchant_id, order_id, now)
            code, message = self.result_code(trade)
            return self.answer(
                f,
                {
                    "respCode": "00",
                    "respMsg": "成功",
                    "origRespCode": code,
                    "origRespMsg": message,
                    "queryId": trade.trade_no,
                    "txnAmt": str(trade.amount_fen),
                    "refundedAmt": str(trade.refunded_fen),
                },
            )

        return await self.call(request, handle)

    async def _file(self, request: Request) -> Response:
        async def handle(merchant: Merchant, f: dict[str, str]) -> Response:
            mmdd = _f(f, "settleDate")
            today = self.clock().astimezone(BEIJING).date()
            day = dt.date(today.year, int(mmdd[:2]), int(mmdd[2:]))
            text = self.bill_text(merchant.merchant_id, day)
            content = base64.b64encode(zlib.compress(text.encode("utf-8"))).decode("ascii")
            return self.answer(
                f,
                {
                    "respCode": "00",
                    "respMsg": "成功",
                    "fileContent": content,
                    "fileName": f"INN{day:%y%m%d}88ZM_{merchant.merchant_id}",
                },
            )

        return await self.call(request, handle)

    def bill_text(self, merchant_id: str, day: dt.date) -> str:
        start = dt.datetime.combine(day, dt.time(), BEIJING)
        rows = self.book.bill(merchant_id, start, start + dt.timedelta(days=1))
        return bills.write_unionpay(rows, merchant_id, self.fee_rate_ppm)

    # -- notifications ------------------------------------------------------------------------------------

    def notification(self, notice: Notice, trade: Trade) -> Delivery | None:
        merchant = self.merchants.get(notice.merchant_id)
        if merchant is None or not trade.notify_url:
            return None
        now = self.clock()
        fields = {
            "version": unionpay.VERSION,
            "encoding": "UTF-8",
            "bizType": "000000",
            "accessType": "0",
            "merId": merchant.merchant_id,
            "currencyCode": "156",
            "respCode": "00",
            "respMsg": "成功",
            "traceNo": f"{secrets.randbelow(10**6):06d}",
            "traceTime": now.astimezone(BEIJING).strftime("%m%d%H%M%S"),
            "settleDate": now.astimezone(BEIJING).strftime("%m%d"),
        }
        if notice.event == "paid":
            fields.update(
                txnType="01",
                txnSubType="07" if trade.kind == "order" else "06",
                orderId=trade.out_trade_no,
                txnTime=up_time(trade.created_at),
                txnAmt=str(trade.amount_fen),
                queryId=trade.trade_no,
            )
        else:
            refund = next(r for r in trade.refunds if r.out_refund_no == notice.out_refund_no)
            fields.update(
                txnType="04",
                txnSubType="00",
                orderId=refund.out_refund_no,
                txnTime=up_time(refund.created_at),
                txnAmt=str(refund.amount_fen),
                queryId=refund.refund_id,
                origQryId=trade.trade_no,
            )

        def make() -> tuple[dict[str, str], bytes]:
            sent = {**fields, "traceTime": self.clock().astimezone(BEIJING).strftime("%m%d%H%M%S")}
            signed = unionpay.sign_fields(self.platform_key, self.platform_serial, sent)
            return {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, urlencode(
                signed
            ).encode()

        return Delivery(trade.notify_url, make, _accepted_200, f"{fields['txnType']}:{fields['orderId']}")


def _accepted_200(response: httpx.Response) -> bool:
    return response.status_code == 200


def _f(fields: dict[str, str], name: str) -> str:
    value = fields.get(name, "")
    if not value:
        raise ValueError(f"missing {name}")
    return value


def _amount(fields: dict[str, str]) -> int:
    text = _f(fields, "txnAmt")
    if not text.isdigit() or int(text) <= 0:
        raise ValueError("txnAmt is a positive number of fen")
    return int(text)
