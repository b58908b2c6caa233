"""The UnionPay QR adapter (ACP 5.1.0 style): apply for a QR (merchant-presented), consume by payment code,
query, void, refund, notifications and the settlement file — signed forms over httpx (`unionpay.py`).

UnionPay keys its transactions by `orderId` + `txnTime`; a refund or a void is a transaction of its own that
names the original by its `queryId` (`origQryId`), so this adapter remembers the `queryId` of each order it
saw (and asks with a query when it does not know it). Closing an unpaid merchant-presented order: UnionPay
has no close call; the order lapses at `payTimeout` (sent with the order). `close` queries: a paid order is
`ProviderError(reason="order_paid")` (void or refund it), an unpaid one is left to lapse — until then the
customer could still pay it, so the order state machine must void a payment that arrives after its close.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from posgate.wallets import bills, unionpay
from posgate.wallets.adapters.base import (
    CLOSED,
    PAID,
    PAYING,
    REVERSED,
    WAITING,
    Ack,
    OrderCreated,
    ProviderTrade,
    RefundResult,
    WalletAdapter,
    WalletNotification,
    checked_answer,
    checked_notification,
)
from posgate.wallets.bills import BillLine
from posgate.wallets.credentials import Credentials
from posgate.wallets.errors import NotificationRejected, ProviderError, SignatureInvalid

BEIJING = ZoneInfo("Asia/Shanghai")
REASONS = {
    "34": "not_found",
    "35": "state",
    "61": "balance",
    "01": "code_invalid",
    "33": "refund_exceeds",
    "12": "duplicate",
    "10": "param",
    "11": "signature",
    "06": "system",
}
BACK = "/gateway/api/backTransReq.do"
QUERY = "/gateway/api/queryTrans.do"
FILE = "/gateway/api/fileTransRequest.do"


class UnionPayAdapter(WalletAdapter):
    provider = "unionpay"

    def __init__(
        self, credentials: Credentials, base_url: str, timeout_s: float = 10.0, window_s: float = 300.0
    ):
        super().__init__(base_url, timeout_s, window_s)
        self.credentials = credentials
        self.orders: dict[str, tuple[str, int, str | None]] = {}  # orderId → (txnTime, amount, queryId)

    def __repr__(self) -> str:
        return f"UnionPayAdapter({self.base_url!r}, {self.credentials!r})"

    def fields(self, txn: tuple[str, str], order_id: str, txn_time: str, **extra: str) -> dict[str, str]:
        return {
            "version": unionpay.VERSION,
            "encoding": "UTF-8",
            "txnType": txn[0],
            "txnSubType": txn[1],
            "bizType": "000000",
            "channelType": "08",
            "accessType": "0",
            "merId": self.credentials.merchant_id,
            "orderId": order_id,
            "txnTime": txn_time,
            **extra,
        }

    async def call(self, operation: str, path: str, fields: dict[str, str]) -> dict[str, str]:
        signed = unionpay.sign_fields(self.credentials.private_key, self.credentials.key_serial, fields)
        response = await self.send(
            operation,
            "POST",
            path,
            content=urlencode(signed).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        if response.status_code >= 500:
            raise self.system_failure(operation, response)
        answer = dict(parse_qsl(response.text, keep_blank_values=True))
        unionpay.verify_fields(self.credentials.provider_keys, answer)
        code = answer.get("respCode", "")
        if code in ("00", "03", "04", "05"):
            return answer
        message = f"{operation}: respCode {code} {answer.get('respMsg', '')}"
        raise ProviderError(self.provider, message, code, response.status_code, REASONS.get(code, "param"))

    @staticmethod
    def now_text() -> str:
        return dt.datetime.now(BEIJING).strftime(unionpay.TIME_FORMAT)

    @checked_answer("create order")
    async def create_order(
        self, out_trade_no: str, amount_fen: int, description: str, expires_at: dt.datetime, notify_url: str
    ) -> OrderCreated:
        txn_time = self.now_text()
        fields = self.fields(
            unionpay.APPLY_QR,
            out_trade_no,
            txn_time,
            txnAmt=str(amount_fen),
            currencyCode="156",
            backUrl=notify_url,
            orderDesc=description,
            payTimeout=expires_at.astimezone(BEIJING).strftime(unionpay.TIME_FORMAT),
        )
        answer = await self.call("apply QR", BACK, fields)
        self.orders[out_trade_no] = (txn_time, amount_fen, None)
        return OrderCreated(out_trade_no, answer["qrCode"])

    @checked_answer("charge code")
    async def charge_code(
        self, out_trade_no: str, code: str, amount_fen: int, description: str, notify_url: str | None = None
    ) -> ProviderTrade:
        txn_time = self.now_text()
        extra = {"txnAmt": str(amount_fen), "currencyCode": "156", "qrNo": code}
        if notify_url:
            extra["backUrl"] = notify_url
        self.orders[out_trade_no] = (txn_time, amount_fen, None)
        answer = await self.call(
            "consume", BACK, self.fields(unionpay.CONSUME_BY_CODE, out_trade_no, txn_time, **extra)
        )
        self.orders[out_trade_no] = (txn_time, amount_fen, answer.get("queryId"))
        state = PAID if answer["respCode"] == "00" else PAYING
        return ProviderTrade(out_trade_no, state, answer["respCode"], amount_fen, answer.get("queryId"))

    @checked_answer("query")
    async def query(self, out_trade_no: str) -> ProviderTrade:
        txn_time, amount, _ = self.orders.get(out_trade_no, (self.now_text(), 0, None))
        answer = await self.call("query", QUERY, self.fields(unionpay.QUERY, out_trade_no, txn_time))
        orig = answer.get("origRespCode", "")
        if orig == "00":
            state = PAID
        elif orig in unionpay.PROCESSING_CODES:
            state = WAITING
        else:
            state = REVERSED if "撤销" in answer.get("origRespMsg", "") else CLOSED
        amount = int(answer.get("txnAmt") or amount or 0)
        self.orders[out_trade_no] = (txn_time, amount, answer.get("queryId"))
        refunded = int(answer["refundedAmt"]) if answer.get("refundedAmt", "").isdigit() else None
        return ProviderTrade(out_trade_no, state, orig, amount, answer.get("queryId"), refunded_fen=refunded)

    async def _original(self, out_trade_no: str) -> tuple[str, int]:
        known = self.orders.get(out_trade_no)
        if known is None or known[2] is None:
            trade = await self.query(out_trade_no)
            if trade.trade_no is None:
                raise ProviderError(
                    self.provider, f"no queryId for order {out_trade_no!r}", reason="not_found"
                )
            return trade.trade_no, trade.amount_fen or 0
        return known[2], known[1]

    @checked_answer("close")
    async def close(self, out_trade_no: str) -> None:
        trade = await self.query(out_trade_no)
        if trade.state == PAID:
            raise ProviderError(
                self.provider, "close: the order is paid: refund it", "35", reason="order_paid"
            )

    @checked_answer("reverse")
    async def reverse(self, out_trade_no: str) -> None:
        query_id, amount = await self._original(out_trade_no)
        fields = self.fields(
            unionpay.CANCEL, out_trade_no + "C", self.now_text(), origQryId=query_id, txnAmt=str(amount)
        )
        await self.call("void", BACK, fields)

    @checked_answer("refund")
    async def refund(
        self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str = ""
    ) -> RefundResult:
        query_id, _ = await self._original(out_trade_no)
        fields = self.fields(
            unionpay.REFUND,
            out_refund_no,
            self.now_text(),
            origQryId=query_id,
            txnAmt=str(refund_fen),
            currencyCode="156",
        )
        answer = await self.call("refund", BACK, fields)
        return RefundResult(out_refund_no, answer.get("queryId", ""), refund_fen, answer["respCode"] == "00")

    @checked_notification
    def read_notification(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> WalletNotification:
        try:
            fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            raise NotificationRejected("format", "notification is not a UTF-8 form") from None
        try:
            unionpay.verify_fields(self.credentials.provider_keys, fields)
        except SignatureInvalid as exc:
            raise NotificationRejected("signature", f"notification rejected: {exc}") from None
        if fields.get("merId") != self.credentials.merchant_id:
            raise NotificationRejected("format", "notification for another merId")
        try:
            sent_at = _trace_time(fields["traceTime"], now)
            amount = int(fields["txnAmt"])
            order_id, query_id, kind = fields["orderId"], fields["queryId"], fields["txnType"]
        except (KeyError, ValueError):
            raise NotificationRejected("format", "notification misses traceTime, txnAmt or ids") from None
        fresh = self.guard.check(f"{query_id}:{kind}", sent_at, now)
        if kind == unionpay.REFUND[0]:
            original = fields.get("origQryId", "")
            out_trade_no = next((o for o, (_, _, q) in self.orders.items() if q == original), "")
            return WalletNotification(
                self.provider,
                "refund",
                query_id,
                out_trade_no,
                original,
                PAID,
                0,
                sent_at,
                order_id,
                amount,
                duplicate=not fresh,
            )
        if kind != "01" or fields.get("respCode") != "00":
            raise NotificationRejected(
                "format", f"notification txnType {kind!r} respCode {fields.get('respCode')!r}"
            )
        txn_time = fields.get("txnTime", "")
        self.orders[order_id] = (txn_time, amount, query_id)
        return WalletNotification(
            self.provider, "payment", query_id, order_id, query_id, PAID, amount, sent_at, duplicate=not fresh
        )

    def notification_ack(self, accepted: bool) -> Ack:
        return Ack(200 if accepted else 400, b"ok" if accepted else b"fail", "text/plain")

    @checked_answer("bill")
    async def bill(self, day: dt.date) -> list[BillLine]:
        fields = self.fields(
            ("76", "01"), f"F{day:%Y%m%d}", self.now_text(), settleDate=f"{day:%m%d}", fileType="00"
        )
        answer = await self.call("settlement file", FILE, fields)
        try:
            text = zlib.decompress(base64.b64decode(answer["fileContent"])).decode("utf-8")
        except (KeyError, binascii.Error, zlib.error, UnicodeDecodeError):
            raise ProviderError(self.provider, "settlement file: fileContent does not unpack") from None
        return self.parse_bill(text)

    def parse_bill(self, text: str) -> list[BillLine]:
        known = {q: o for o, (_, _, q) in self.orders.items() if q}
        return bills.parse_unionpay(text, known)


def _trace_time(text: str, now: dt.datetime) -> dt.datetime:
    """`traceTime` is MMDDhhmmss, Beijing time: the year is the one that puts it nearest to `now`."""
    local_now = now.astimezone(BEIJING)
    best = None
    for year in (local_now.year - 1, local_now.year, local_now.year + 1):
        try:
            at = dt.datetime.strptime(f"{year}{text}", "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)
        except ValueError:
            continue
        if best is None or abs(at - local_now) < abs(best - local_now):
            best = at
    if best is None:
        raise ValueError("traceTime")
    return best


__all__ = ["Any", "UnionPayAdapter"]
