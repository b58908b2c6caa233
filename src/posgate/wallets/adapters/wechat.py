"""The WeChat Pay API v3 adapter (direct merchant): native orders, code payments, query, close, reverse,
refunds, notifications and the trade bill — over httpx, signed and verified with `wechatpay.py`.

Every answer's `Wechatpay-Signature` is verified with the platform public key (`PUB_KEY_ID_…` serial) and
its timestamp must be within the window; an answer that fails is `SignatureInvalid` (treat as no answer).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from posgate.wallets import bills, wechatpay
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
from posgate.wallets.errors import NotificationRejected, ProviderError

STATES = {
    "NOTPAY": WAITING,
    "USERPAYING": PAYING,
    "SUCCESS": PAID,
    "REFUND": PAID,
    "CLOSED": CLOSED,
    "REVOKED": REVERSED,
    "PAYERROR": CLOSED,
}
REASONS = {
    "ORDERNOTEXIST": "not_found",
    "RESOURCE_NOT_EXISTS": "not_found",
    "ORDERPAID": "order_paid",
    "ORDER_CLOSED": "order_closed",
    "NOT_ENOUGH": "balance",
    "AUTH_CODE_INVALID": "code_invalid",
    "OUT_TRADE_NO_USED": "duplicate",
    "PARAM_ERROR": "param",
    "SIGN_ERROR": "signature",
    "SYSTEM_ERROR": "system",
}


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


class WeChatPayAdapter(WalletAdapter):
    provider = "wechat"

    def __init__(
        self, credentials: Credentials, base_url: str, timeout_s: float = 10.0, window_s: float = 300.0
    ):
        super().__init__(base_url, timeout_s, window_s)
        if credentials.apiv3_key is None or len(credentials.apiv3_key) != 32:
            raise ValueError("WeChat Pay credentials need a 32-byte API v3 key")
        self.credentials = credentials

    def __repr__(self) -> str:
        return f"WeChatPayAdapter({self.base_url!r}, {self.credentials!r})"

    async def call(
        self, operation: str, method: str, path: str, payload: dict[str, Any] | None = None
    ) -> httpx.Response:
        body = "" if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        now = int(dt.datetime.now(dt.UTC).timestamp())
        creds = self.credentials
        headers = {
            "Authorization": wechatpay.authorization(
                creds.private_key, creds.merchant_id, creds.key_serial, method, path, body, now
            ),
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        response = await self.send(operation, method, path, content=body.encode(), headers=headers)
        if response.status_code >= 500:
            raise self.system_failure(operation, response)
        wechatpay.verify_answer(self.credentials.provider_keys, response.headers, response.text, now)
        if response.status_code >= 400:
            try:
                error = response.json()
                code, message = str(error.get("code", "")), str(error.get("message", ""))
            except ValueError:
                code, message = "", response.text[:120]
            raise ProviderError(
                self.provider,
                f"{operation}: {code} {message}",
                code,
                response.status_code,
                REASONS.get(code, "param"),
            )
        return response

    def trade(self, data: Mapping[str, Any], out_trade_no: str) -> ProviderTrade:
        raw = str(data.get("trade_state", ""))
        if raw not in STATES:
            raise ProviderError(self.provider, f"unknown trade_state {raw[:20]!r}", raw)
        amount = data.get("amount") or {}
        return ProviderTrade(
            out_trade_no=str(data.get("out_trade_no", out_trade_no)),
            state=STATES[raw],
            raw_state=raw,
            amount_fen=amount.get("total"),
            trade_no=data.get("transaction_id"),
            paid_at=_time(data.get("success_time")),
        )

    @checked_answer("create order")
    async def create_order(
        self, out_trade_no: str, amount_fen: int, description: str, expires_at: dt.datetime, notify_url: str
    ) -> OrderCreated:
        payload = {
            "appid": self.credentials.app_id,
            "mchid": self.credentials.merchant_id,
            "description": description,
            "out_trade_no": out_trade_no,
            "time_expire": expires_at.astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat(
                timespec="seconds"
            ),
            "notify_url": notify_url,
            "amount": {"total": amount_fen, "currency": "CNY"},
        }
        response = await self.call("native order", "POST", "/v3/pay/transactions/native", payload)
        return OrderCreated(out_trade_no, str(response.json()["code_url"]))

    @checked_answer("charge code")
    async def charge_code(
        self, out_trade_no: str, code: str, amount_fen: int, description: str, notify_url: str | None = None
    ) -> ProviderTrade:
        payload = {
            "appid": self.credentials.app_id,
            "mchid": self.credentials.merchant_id,
            "description": description,
            "out_trade_no": out_trade_no,
            "payer": {"auth_code": code},
            "amount": {"total": amount_fen, "currency": "CNY"},
            "scene_info": {"store_info": {"out_id": "posgate"}},
        }
        response = await self.call("code payment", "POST", "/v3/pay/transactions/codepay", payload)
        return self.trade(response.json(), out_trade_no)

    @checked_answer("query")
    async def query(self, out_trade_no: str) -> ProviderTrade:
        path = f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={self.credentials.merchant_id}"
        response = await self.call("query", "GET", path)
        return self.trade(response.json(), out_trade_no)

    @checked_answer("close")
    async def close(self, out_trade_no: str) -> None:
        path = f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close"
        await self.call("close", "POST", path, {"mchid": self.credentials.merchant_id})

    @checked_answer("reverse")
    async def reverse(self, out_trade_no: str) -> None:
        path = f"/v3/pay/transactions/out-trade-no/{out_trade_no}/reverse"
        await self.call(
            "reverse", "POST", path, {"appid": self.credentials.app_id, "mchid": self.credentials.merchant_id}
        )

    @checked_answer("refund")
    async def refund(
        self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str = ""
    ) -> RefundResult:
        payload: dict[str, Any] = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "amount": {"refund": refund_fen, "total": total_fen, "currency": "CNY"},
        }
        if reason:
            payload["reason"] = reason
        try:
            response = await self.call("refund", "POST", "/v3/refund/domestic/refunds", payload)
        except ProviderError as exc:
            if exc.code == "INVALID_REQUEST" and "退款金额" in str(exc):
                exc.reason = "refund_exceeds"
            elif exc.code == "INVALID_REQUEST":
                exc.reason = "not_paid"
            raise
        data = response.json()
        return RefundResult(
            str(data["out_refund_no"]),
            str(data["refund_id"]),
            int(data["amount"]["refund"]),
            data.get("status") == "SUCCESS",
        )

    @checked_notification
    def read_notification(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> WalletNotification:
        text = body.decode("utf-8", errors="replace")
        envelope, resource = wechatpay.read_notification(
            self.credentials.provider_keys,
            self.credentials.apiv3_key or b"",
            headers,
            text,
            int(now.timestamp()),
            int(self.guard.window_s),
        )
        sent_at = dt.datetime.fromtimestamp(int(headers.get("Wechatpay-Timestamp") or 0), dt.UTC)
        if resource.get("mchid") != self.credentials.merchant_id:
            raise NotificationRejected("format", "notification for another merchant")
        event = str(envelope.get("event_type", ""))
        event_id = str(envelope.get("id", ""))
        fresh = self.guard.check(event_id, sent_at, now)
        amount = resource.get("amount") or {}
        if event == "TRANSACTION.SUCCESS":
            return WalletNotification(
                self.provider,
                "payment",
                event_id,
                str(resource["out_trade_no"]),
                str(resource["transaction_id"]),
                STATES.get(str(resource.get("trade_state")), PAID),
                int(amount.get("total", 0)),
                sent_at,
                duplicate=not fresh,
            )
        if event.startswith("REFUND."):
            return WalletNotification(
                self.provider,
                "refund",
                event_id,
                str(resource["out_trade_no"]),
                str(resource["transaction_id"]),
                PAID,
                int(amount.get("total", 0)),
                sent_at,
                str(resource.get("out_refund_no")),
                int(amount.get("refund", 0)),
                duplicate=not fresh,
            )
        raise NotificationRejected("format", f"unknown event_type {event[:40]!r}")

    def notification_ack(self, accepted: bool) -> Ack:
        if accepted:
            return Ack(204, b"", "application/json")
        body = json.dumps({"code": "FAIL", "message": "失败"}, ensure_ascii=False).encode()
        return Ack(400, body, "application/json")

    @checked_answer("bill")
    async def bill(self, day: dt.date) -> list[BillLine]:
        response = await self.call(
            "trade bill", "GET", f"/v3/bill/tradebill?bill_date={day.isoformat()}&bill_type=ALL"
        )
        data = response.json()
        url = urlsplit(str(data["download_url"]))
        path = url.path + (f"?{url.query}" if url.query else "")
        creds = self.credentials
        now = int(dt.datetime.now(dt.UTC).timestamp())
        auth = wechatpay.authorization(
            creds.private_key, creds.merchant_id, creds.key_serial, "GET", path, "", now
        )
        file = await self.send("bill download", "GET", path, headers={"Authorization": auth})
        if file.status_code != 200:
            raise ProviderError(
                self.provider, f"bill download: HTTP {file.status_code}", status=file.status_code
            )
        if hashlib.sha1(file.content).hexdigest() != data.get("hash_value"):  # the file itself is not signed
            raise ProviderError(
                self.provider, "bill download: SHA1 does not match hash_value", reason="signature"
            )
        return self.parse_bill(file.content.decode("utf-8"))

    def parse_bill(self, text: str) -> list[BillLine]:
        return bills.parse_wechat(text)
