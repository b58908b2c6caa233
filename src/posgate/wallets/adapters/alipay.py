"""The Alipay open-API adapter: precreate (merchant-presented), pay (bar code), query, cancel, close, refund,
notifications and the trade bill — form POSTs to the gateway over httpx, RSA2 with `alipay.py`.

The answer's signature is checked over the exact characters of the response object as sent (cut with a
JSON decoder); a business failure (`code` 40004) is a `ProviderError` whose `code` is Alipay's `sub_code`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from posgate.wallets import alipay, bills
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
STATES = {"WAIT_BUYER_PAY": WAITING, "TRADE_SUCCESS": PAID, "TRADE_FINISHED": PAID, "TRADE_CLOSED": CLOSED}
REASONS = {
    "ACQ.TRADE_NOT_EXIST": "not_found",
    "ACQ.TRADE_HAS_SUCCESS": "order_paid",
    "ACQ.TRADE_HAS_CLOSE": "order_closed",
    "ACQ.BUYER_BALANCE_NOT_ENOUGH": "balance",
    "ACQ.PAYMENT_AUTH_CODE_INVALID": "code_invalid",
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL": "refund_exceeds",
    "ACQ.TRADE_STATUS_ERROR": "state",
    "ACQ.CONTEXT_INCONSISTENT": "duplicate",
    "ACQ.INVALID_PARAMETER": "param",
    "isv.invalid-signature": "signature",
    "ACQ.SYSTEM_ERROR": "system",
}


def _local(text: str | None) -> dt.datetime | None:
    return dt.datetime.strptime(text, alipay.TIME_FORMAT).replace(tzinfo=BEIJING) if text else None


class AlipayAdapter(WalletAdapter):
    provider = "alipay"

    def __init__(
        self, credentials: Credentials, base_url: str, timeout_s: float = 10.0, window_s: float = 300.0
    ):
        super().__init__(base_url, timeout_s, window_s)
        if "" not in credentials.provider_keys:
            raise ValueError("Alipay credentials need the Alipay public key (under serial '')")
        self.credentials = credentials
        self.alipay_key = credentials.provider_keys[""]

    def __repr__(self) -> str:
        return f"AlipayAdapter({self.base_url!r}, {self.credentials!r})"

    async def call(self, method: str, biz: dict[str, Any], notify_url: str | None = None) -> dict[str, Any]:
        params = {
            "app_id": self.credentials.merchant_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": alipay.SIGN_TYPE,
            "timestamp": dt.datetime.now(BEIJING).strftime(alipay.TIME_FORMAT),
            "version": "1.0",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        if notify_url:
            params["notify_url"] = notify_url
        signed = alipay.sign_params(self.credentials.private_key, params)
        response = await self.send(
            method,
            "POST",
            alipay.GATEWAY_PATH,
            content=urlencode(signed).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        if response.status_code >= 500:
            raise self.system_failure(method, response)
        data = alipay.read_answer(self.alipay_key, method, response.text)
        code = str(data.get("code", ""))
        if code in ("10000", "10003"):
            return data
        sub_code = str(data.get("sub_code", ""))
        reason = REASONS.get(sub_code, "system" if code == "20000" else "param")
        message = f"{method}: {code} {sub_code} {data.get('sub_msg', '')}"
        raise ProviderError(self.provider, message, sub_code or code, response.status_code, reason)

    def trade(self, data: Mapping[str, Any], out_trade_no: str) -> ProviderTrade:
        raw = str(data.get("trade_status", ""))
        if raw not in STATES:
            raise ProviderError(self.provider, f"unknown trade_status {raw[:20]!r}", raw)
        state = STATES[raw]
        if raw == "TRADE_CLOSED" and data.get("send_pay_date"):
            state = PAID  # paid, then refunded in full
        return ProviderTrade(
            out_trade_no=str(data.get("out_trade_no", out_trade_no)),
            state=state,
            raw_state=raw,
            amount_fen=alipay.fen_of(str(data["total_amount"])) if data.get("total_amount") else None,
            trade_no=data.get("trade_no"),
            paid_at=_local(data.get("send_pay_date")),
        )

    @checked_answer("create order")
    async def create_order(
        self, out_trade_no: str, amount_fen: int, description: str, expires_at: dt.datetime, notify_url: str
    ) -> OrderCreated:
        biz = {
            "out_trade_no": out_trade_no,
            "total_amount": alipay.yuan_text(amount_fen),
            "subject": description,
            "time_expire": expires_at.astimezone(BEIJING).strftime(alipay.TIME_FORMAT),
        }
        data = await self.call("alipay.trade.precreate", biz, notify_url)
        return OrderCreated(out_trade_no, str(data["qr_code"]))

    @checked_answer("charge code")
    async def charge_code(
        self, out_trade_no: str, code: str, amount_fen: int, description: str, notify_url: str | None = None
    ) -> ProviderTrade:
        biz = {
            "out_trade_no": out_trade_no,
            "scene": "bar_code",
            "auth_code": code,
            "subject": description,
            "total_amount": alipay.yuan_text(amount_fen),
        }
        data = await self.call("alipay.trade.pay", biz, notify_url)
        if data.get("code") == "10003":
            return ProviderTrade(out_trade_no, PAYING, "WAIT_BUYER_PAY", amount_fen, data.get("trade_no"))
        return ProviderTrade(
            out_trade_no,
            PAID,
            "TRADE_SUCCESS",
            amount_fen,
            data.get("trade_no"),
            _local(data.get("gmt_payment")),
        )

    @checked_answer("query")
    async def query(self, out_trade_no: str) -> ProviderTrade:
        data = await self.call("alipay.trade.query", {"out_trade_no": out_trade_no})
        return self.trade(data, out_trade_no)

    @checked_answer("close")
    async def close(self, out_trade_no: str) -> None:
        await self.call("alipay.trade.close", {"out_trade_no": out_trade_no})

    @checked_answer("reverse")
    async def reverse(self, out_trade_no: str) -> None:
        await self.call("alipay.trade.cancel", {"out_trade_no": out_trade_no})

    @checked_answer("refund")
    async def refund(
        self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str = ""
    ) -> RefundResult:
        biz = {
            "out_trade_no": out_trade_no,
            "refund_amount": alipay.yuan_text(refund_fen),
            "out_request_no": out_refund_no,
        }
        if reason:
            biz["refund_reason"] = reason
        data = await self.call("alipay.trade.refund", biz)
        return RefundResult(
            out_refund_no, str(data.get("trade_no", "")), refund_fen, data.get("fund_change") == "Y"
        )

    @checked_notification
    def read_notification(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> WalletNotification:
        try:
            params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            raise NotificationRejected("format", "notification is not a UTF-8 form") from None
        try:
            alipay.verify_params(self.alipay_key, params, notification=True)
        except SignatureInvalid as exc:
            raise NotificationRejected("signature", f"notification rejected: {exc}") from None
        if params.get("app_id") != self.credentials.merchant_id:
            raise NotificationRejected("format", "notification for another app_id")
        try:
            sent_at = _local(params.get("notify_time"))
            amount = alipay.fen_of(params["total_amount"])
            out_trade_no, trade_no, raw = params["out_trade_no"], params["trade_no"], params["trade_status"]
        except (KeyError, ValueError):
            raise NotificationRejected(
                "format", "notification misses notify_time, amounts or trade ids"
            ) from None
        if sent_at is None or raw not in STATES:
            raise NotificationRejected("format", "notification misses notify_time or trade_status")
        event_id = params.get("notify_id", "")
        refund_no = params.get("out_biz_no")
        if refund_no:  # a refund; the same notify_id on every retry
            fresh = self.guard.check(f"{event_id}:{refund_no}", sent_at, now)
            refunded = alipay.fen_of(params.get("refund_fee", "0"))
            return WalletNotification(
                self.provider,
                "refund",
                event_id,
                out_trade_no,
                trade_no,
                PAID,
                amount,
                sent_at,
                refund_no,
                refunded,
                duplicate=not fresh,
            )
        fresh = self.guard.check(event_id, sent_at, now)
        return WalletNotification(
            self.provider,
            "payment",
            event_id,
            out_trade_no,
            trade_no,
            STATES[raw],
            amount,
            sent_at,
            duplicate=not fresh,
        )

    def notification_ack(self, accepted: bool) -> Ack:
        return Ack(200, b"success" if accepted else b"fail", "text/plain")

    @checked_answer("bill")
    async def bill(self, day: dt.date) -> list[BillLine]:
        data = await self.call(
            "alipay.data.dataservice.bill.downloadurl.query",
            {"bill_type": "trade", "bill_date": day.isoformat()},
        )
        file = await self.send("bill download", "GET", str(data["bill_download_url"]))
        if file.status_code != 200:
            raise ProviderError(
                self.provider, f"bill download: HTTP {file.status_code}", status=file.status_code
            )
        return self.parse_bill(file.content.decode("gbk"))

    def parse_bill(self, text: str) -> list[BillLine]:
        return bills.parse_alipay(text)


__all__ = ["REVERSED", "AlipayAdapter"]
