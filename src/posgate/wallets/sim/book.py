"""A simulated wallet provider's books — the pure core of every provider simulator: customers and their
balances, one-minute payment codes, the merchants' trades and refunds, and the day's bill.

The rules are the providers' common ones; each protocol shell (`sim/wechat_app.py`, `sim/alipay_app.py`,
`sim/unionpay_app.py`) names the states and errors in its own words:

- a merchant-presented order (`create_order`) waits for the customer (`pay_order`) until it expires, then
  is closed; a closed or expired order can no longer be paid;
- a customer-presented charge (`charge_code`) consumes a code once; the customer's money moves at once, or,
  for a customer who confirms with a password (`confirm_after_s`), the trade is `PAYING` until then;
- `close` ends an unpaid order; `reverse` undoes a charge whatever its state (money back if it was taken);
- `refund` is idempotent on the merchant's refund number, and the refunds of a trade never sum above its
  amount; the customer gets the money back at once.

Every operation takes `now` (an aware UTC datetime) and raises `BookError(code, message)` with a
provider-neutral code. Notifications to send are appended to `outbox` (the shell delivers them).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

from posgate.wallets import codes

WAIT = "WAIT"  # created, not paid
PAYING = "PAYING"  # the customer is confirming
PAID = "PAID"
CLOSED = "CLOSED"  # unpaid and ended (closed by the merchant or expired)
REVERSED = "REVERSED"  # a charge undone (money returned if it had been taken)
CODE_TTL_S = 60.0


class BookError(Exception):
    """A refused operation: `code` is provider-neutral (`NOT_FOUND`, `ORDER_CLOSED`, `ORDER_PAID`,
    `BALANCE`, `CODE_INVALID`, `CODE_USED`, `CODE_EXPIRED`, `REFUND_EXCEEDS`, `NOT_PAID`, `STATE`,
    `PARAM`, `DUPLICATE`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Customer:
    name: str
    user_id: str
    balance_fen: int
    confirm_after_s: float | None = None  # a password to type: payments by code wait this long


@dataclass
class PaymentCode:
    code: str
    customer: str
    expires_at: dt.datetime
    used: bool = False


@dataclass
class Refund:
    out_refund_no: str
    refund_id: str
    amount_fen: int
    created_at: dt.datetime
    reason: str = ""


@dataclass
class Trade:
    merchant_id: str
    out_trade_no: str
    trade_no: str
    amount_fen: int
    description: str
    kind: str  # "order" (merchant-presented) or "code" (customer-presented)
    created_at: dt.datetime
    expires_at: dt.datetime | None
    notify_url: str | None = None
    state: str = WAIT
    customer: str | None = None
    paid_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    confirm_at: dt.datetime | None = None
    code_token: str | None = None
    refunds: list[Refund] = field(default_factory=list)
    attach: str = ""

    @property
    def refunded_fen(self) -> int:
        return sum(r.amount_fen for r in self.refunds)

    @property
    def refundable_fen(self) -> int:
        return self.amount_fen - self.refunded_fen if self.state == PAID else 0


@dataclass(frozen=True)
class Notice:
    """A notification to deliver: `event` is `paid` or `refunded`."""

    event: str
    merchant_id: str
    out_trade_no: str
    out_refund_no: str | None = None


@dataclass(frozen=True)
class BillRow:
    """One line of the day's bill: a payment (`kind` = `pay`) or a refund (`refund`)."""

    at: dt.datetime
    kind: str
    trade: Trade
    refund: Refund | None = None


def _id(prefix: str, now: dt.datetime, digits: int = 10) -> str:
    return prefix + now.strftime("%Y%m%d") + "".join(str(secrets.randbelow(10)) for _ in range(digits))


@dataclass
class Book:
    """One provider's books. `provider` is `wechat`, `alipay` or `unionpay` (it shapes codes and ids)."""

    provider: str
    trade_no_prefix: str = "42"
    customers: dict[str, Customer] = field(default_factory=dict)
    codes: dict[str, PaymentCode] = field(default_factory=dict)
    trades: dict[tuple[str, str], Trade] = field(default_factory=dict)
    by_token: dict[str, tuple[str, str]] = field(default_factory=dict)
    outbox: list[Notice] = field(default_factory=list)

    # -- customers -----------------------------------------------------------------------------------

    def add_customer(self, name: str, balance_fen: int, confirm_after_s: float | None = None) -> Customer:
        user_id = f"{self.provider[:2]}{secrets.token_hex(8)}"
        customer = Customer(name, user_id, balance_fen, confirm_after_s)
        self.customers[name] = customer
        return customer

    def customer(self, name: str) -> Customer:
        try:
            return self.customers[name]
        except KeyError:
            raise BookError("NOT_FOUND", f"no customer {name[:40]!r}") from None

    def issue_code(self, name: str, now: dt.datetime) -> str:
        """A fresh one-time payment code for a customer (the wallet app's "pay" screen)."""
        self.customer(name)
        code = codes.new_code(self.provider)
        while code in self.codes:
            code = codes.new_code(self.provider)
        self.codes[code] = PaymentCode(code, name, now + dt.timedelta(seconds=CODE_TTL_S))
        return code

    # -- trades --------------------------------------------------------------------------------------

    def trade(self, merchant_id: str, out_trade_no: str, now: dt.datetime) -> Trade:
        trade = self.trades.get((merchant_id, out_trade_no))
        if trade is None:
            raise BookError("NOT_FOUND", f"no trade {out_trade_no[:64]!r}")
        self._advance(trade, now)
        return trade

    def trade_by_no(self, trade_no: str, now: dt.datetime) -> Trade:
        for trade in self.trades.values():
            if trade.trade_no == trade_no:
                self._advance(trade, now)
                return trade
        raise BookError("NOT_FOUND", f"no trade {trade_no[:64]!r}")

    def _advance(self, trade: Trade, now: dt.datetime) -> None:
        """Time passes: an order expires; a customer finishes confirming."""
        if trade.state == WAIT and trade.expires_at is not None and now >= trade.expires_at:
            trade.state, trade.closed_at = CLOSED, trade.expires_at
        if trade.state == PAYING and trade.confirm_at is not None and now >= trade.confirm_at:
            self._take_money(trade, trade.customer or "", trade.confirm_at)

    def advance_all(self, now: dt.datetime) -> None:
        for trade in self.trades.values():
            self._advance(trade, now)

    def _new_trade(
        self,
        merchant_id: str,
        out_trade_no: str,
        amount_fen: int,
        description: str,
        kind: str,
        now: dt.datetime,
        expires_at: dt.datetime | None,
        notify_url: str | None,
        attach: str,
    ) -> Trade:
        if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
            raise BookError("PARAM", f"amount {amount_fen!r} is not a positive number of fen")
        if not out_trade_no or len(out_trade_no) > 64:
            raise BookError("PARAM", "out_trade_no takes 1–64 characters")
        existing = self.trades.get((merchant_id, out_trade_no))
        if existing is not None:
            raise BookError("DUPLICATE", f"out_trade_no {out_trade_no!r} is already used")
        trade = Trade(
            merchant_id=merchant_id,
            out_trade_no=out_trade_no,
            trade_no=_id(self.trade_no_prefix, now),
            amount_fen=amount_fen,
            description=description,
            kind=kind,
            created_at=now,
            expires_at=expires_at,
            notify_url=notify_url,
            attach=attach,
        )
        self.trades[(merchant_id, out_trade_no)] = trade
        return trade

    def create_order(
        self,
        merchant_id: str,
        out_trade_no: str,
        amount_fen: int,
        description: str,
        now: dt.datetime,
        expires_at: dt.datetime,
        notify_url: str | None,
        attach: str = "",
    ) -> Trade:
        """A merchant-presented order; the same order again (same number, amount) gives the same trade."""
        existing = self.trades.get((merchant_id, out_trade_no))
        if existing is not None and existing.kind == "order" and existing.amount_fen == amount_fen:
            self._advance(existing, now)
            return existing
        trade = self._new_trade(
            merchant_id, out_trade_no, amount_fen, description, "order", now, expires_at, notify_url, attach
        )
        trade.code_token = secrets.token_urlsafe(12)
        self.by_token[trade.code_token] = (merchant_id, out_trade_no)
        return trade

    def pay_order(self, token: str, customer: str, now: dt.datetime) -> Trade:
        """The customer scanned the order's code and pays it."""
        key = self.by_token.get(token)
        if key is None:
            raise BookError("NOT_FOUND", "no order for this code")
        trade = self.trade(*key, now)
        if trade.state == PAID:
            raise BookError("ORDER_PAID", "the order is already paid")
        if trade.state != WAIT:
            raise BookError("ORDER_CLOSED", "the order is closed or expired")
        self._take_money(trade, customer, now)
        return trade

    def charge_code(
        self,
        merchant_id: str,
        out_trade_no: str,
        code: str,
        amount_fen: int,
        description: str,
        now: dt.datetime,
        notify_url: str | None = None,
        attach: str = "",
    ) -> Trade:
        """A customer-presented charge. Idempotent: the same out_trade_no and code give the same trade."""
        existing = self.trades.get((merchant_id, out_trade_no))
        if existing is not None and existing.kind == "code":
            if existing.amount_fen != amount_fen:
                raise BookError("DUPLICATE", f"out_trade_no {out_trade_no!r} is already used")
            self._advance(existing, now)
            return existing
        entry = self.codes.get(code)
        if entry is None:
            raise BookError("CODE_INVALID", "the payment code is not valid")
        if entry.used:
            raise BookError("CODE_USED", "the payment code was used already")
        if now >= entry.expires_at:
            raise BookError("CODE_EXPIRED", "the payment code has expired")
        customer = self.customer(entry.customer)
        if customer.balance_fen < amount_fen:
            raise BookError("BALANCE", "the customer's balance is too low")
        trade = self._new_trade(
            merchant_id, out_trade_no, amount_fen, description, "code", now, None, notify_url, attach
        )
        entry.used = True
        trade.customer = customer.name
        if customer.confirm_after_s:
            trade.state = PAYING
            trade.confirm_at = now + dt.timedelta(seconds=customer.confirm_after_s)
        else:
            self._take_money(trade, customer.name, now)
        return trade

    def _take_money(self, trade: Trade, name: str, now: dt.datetime) -> None:
        customer = self.customer(name)
        if customer.balance_fen < trade.amount_fen:
            raise BookError("BALANCE", "the customer's balance is too low")
        customer.balance_fen -= trade.amount_fen
        trade.state, trade.customer, trade.paid_at, trade.confirm_at = PAID, name, now, None
        self.outbox.append(Notice("paid", trade.merchant_id, trade.out_trade_no))

    def close(self, merchant_id: str, out_trade_no: str, now: dt.datetime) -> Trade:
        trade = self.trade(merchant_id, out_trade_no, now)
        if trade.state == PAID:
            raise BookError("ORDER_PAID", "the order is paid: refund it instead")
        if trade.state in (WAIT, PAYING):
            trade.state, trade.closed_at = CLOSED, now
        return trade

    def reverse(self, merchant_id: str, out_trade_no: str, now: dt.datetime) -> Trade:
        """Undo a charge (the cashier gave up waiting): money goes back if it was taken."""
        trade = self.trade(merchant_id, out_trade_no, now)
        if trade.state == PAID:
            if trade.refunds:
                raise BookError("STATE", "the trade has refunds: it cannot be reversed")
            self.customer(trade.customer or "").balance_fen += trade.amount_fen
        if trade.state != REVERSED:
            trade.state, trade.closed_at = REVERSED, now
        return trade

    def refund(
        self,
        merchant_id: str,
        out_trade_no: str,
        out_refund_no: str,
        amount_fen: int,
        now: dt.datetime,
        reason: str = "",
    ) -> tuple[Trade, Refund]:
        trade = self.trade(merchant_id, out_trade_no, now)
        for refund in trade.refunds:
            if refund.out_refund_no == out_refund_no:
                if refund.amount_fen != amount_fen:
                    raise BookError("DUPLICATE", f"out_refund_no {out_refund_no!r} has another amount")
                return trade, refund
        if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
            raise BookError("PARAM", f"refund amount {amount_fen!r} is not a positive number of fen")
        if trade.state != PAID:
            raise BookError("NOT_PAID", "the trade is not paid")
        if amount_fen > trade.refundable_fen:
            raise BookError(
                "REFUND_EXCEEDS",
                f"refund of {amount_fen} fen is more than the {trade.refundable_fen} fen left to refund",
            )
        refund = Refund(out_refund_no, _id("50", now, 12), amount_fen, now, reason)
        trade.refunds.append(refund)
        self.customer(trade.customer or "").balance_fen += amount_fen
        self.outbox.append(Notice("refunded", merchant_id, out_trade_no, out_refund_no))
        return trade, refund

    # -- the day's bill ------------------------------------------------------------------------------

    def bill(self, merchant_id: str, start: dt.datetime, end: dt.datetime) -> list[BillRow]:
        """Payments and refunds of one merchant in [start, end), in time order."""
        rows = []
        for trade in self.trades.values():
            if trade.merchant_id != merchant_id:
                continue
            if trade.paid_at is not None and start <= trade.paid_at < end:
                rows.append(BillRow(trade.paid_at, "pay", trade))
            for refund in trade.refunds:
                if start <= refund.created_at < end:
                    rows.append(BillRow(refund.created_at, "refund", trade, refund))
        return sorted(rows, key=lambda row: row.at)
