"""Wallet orders as payments in the store (issue 12): one service, `WalletOrders`, for both flows —
merchant-presented (`create_qr`: an order, its EMVCo payload, then a notification or a query ends it; expiry
closes it) and customer-presented (`scan`: charge the code; "user paying" is polled; no end in time reverses
it) — with status queries (`refresh`), `close`, partial `refund`s reserved in the store before the provider is
asked (never above the paid amount, also under concurrent requests), and `notify`: a provider's notification
verified by its adapter and applied in one unit of work with its durable record (`wallet_notifications`), so a
duplicate or a replay inside the window — on any node, after a restart — applies nothing.

The provider is the truth: a provider time-out leaves the order `unknown` until a query resolves it; an
order is never paid twice (one `order_id` = one provider out_trade_no; one idempotency key per terminal = one
order). States: `wallets.orderstate`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from posgate.store.models_wallet import WalletNotificationSeen, WalletOrder, WalletRefund
from posgate.wallets import orderstate as st
from posgate.wallets.adapters.base import (
    Ack,
    NotificationGuard,
    ProviderTrade,
    WalletAdapter,
    WalletNotification,
)
from posgate.wallets.codes import mask_code, route_code
from posgate.wallets.errors import (
    NotificationRejected,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    WalletError,
)
from posgate.wallets.orderqr import order_payload

log = logging.getLogger("posgate.wallets.orders")

QR, SCAN = "qr", "scan"


class OrderNotFound(WalletError):
    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(f"no wallet order {order_id[:32]!r}")


class RefundRefused(WalletError):
    """A refund that cannot be taken (not paid, above what is left, refused by the provider)."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def new_order_id(now: dt.datetime, prefix: str = "Q") -> str:
    """`Q` + UTC date and time + 10 random hex digits: 25 characters, fits EMVCo 62.01 and every provider."""
    return prefix + now.strftime("%y%m%d%H%M%S") + secrets.token_hex(6)[:12].upper()


@dataclass(frozen=True)
class Merchant:
    """What a wallet order shows of its merchant (EMVCo 52, 59, 60)."""

    mid: str
    name: str
    city: str
    mcc: str


@dataclass(frozen=True)
class OrderView:
    order_id: str
    provider: str
    flow: str
    state: str
    amount_fen: int
    refunded_fen: int
    qr_payload: str | None
    expires_at: dt.datetime
    mid: str
    tid: str
    trade_no: str | None
    code_masked: str | None
    failure: str | None
    created_at: dt.datetime
    paid_at: dt.datetime | None

    @classmethod
    def of(cls, row: WalletOrder) -> OrderView:
        return cls(
            row.order_id,
            row.provider,
            row.flow,
            row.state,
            row.amount_fen,
            row.refunded_fen,
            row.qr_payload,
            row.expires_at,
            row.mid,
            row.tid,
            row.trade_no,
            row.code_masked,
            row.failure,
            row.created_at,
            row.paid_at,
        )

    def contract(self) -> dict[str, object]:
        """The object of the Contract: `posgate terminal qr|scan --json` and the cashier API."""
        return {
            "order_id": self.order_id,
            "qr_payload": self.qr_payload,
            "state": self.state,
            "amount_fen": self.amount_fen,
            "provider": self.provider,
        }

    def as_json(self) -> dict[str, object]:
        return self.contract() | {
            "flow": self.flow,
            "refunded_fen": self.refunded_fen,
            "expires_at": self.expires_at.replace(tzinfo=dt.UTC).isoformat(),
            "tid": self.tid,
            "mid": self.mid,
            "trade_no": self.trade_no,
            "code": self.code_masked,
            "failure": self.failure,
        }


@dataclass(frozen=True)
class RefundView:
    refund_no: str
    order_id: str
    amount_fen: int
    state: str
    refunded_fen: int  # the order's, after this refund

    def as_json(self) -> dict[str, object]:
        return {
            "refund_no": self.refund_no,
            "order_id": self.order_id,
            "amount_fen": self.amount_fen,
            "state": self.state,
            "refunded_fen": self.refunded_fen,
        }


@dataclass(frozen=True)
class NotifyOutcome:
    ack: Ack
    outcome: str  # applied | unchanged | duplicate | unknown_order | mismatch | rejected:<reason>


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC)


def search_wallet_orders(
    session: Session,
    tid: str | None,
    mid: str | None,
    start: dt.date | None,
    end: dt.date | None,
    limit: int = 200,
) -> list[dict[str, object]]:
    """Wallet orders for the console's transaction list, newest first (dates: UTC days of `created_at`)."""
    query = select(WalletOrder).order_by(WalletOrder.created_at.desc()).limit(limit)
    if tid:
        query = query.where(WalletOrder.tid == tid)
    if mid:
        query = query.where(WalletOrder.mid == mid)
    if start:
        query = query.where(WalletOrder.created_at >= dt.datetime.combine(start, dt.time()))
    if end:
        query = query.where(
            WalletOrder.created_at < dt.datetime.combine(end + dt.timedelta(days=1), dt.time())
        )
    return [
        {
            "created_at": row.created_at.isoformat(sep=" "),
            "tid": row.tid,
            "mid": row.mid,
            "provider": row.provider,
            "flow": row.flow,
            "amount_fen": row.amount_fen,
            "refunded_fen": row.refunded_fen,
            "state": row.state,
            "order_id": row.order_id,
        }
        for row in session.scalars(query)
    ]


class WalletOrders:
    """The wallet order service over the store and the providers' adapters (one per provider)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        adapters: Mapping[str, WalletAdapter],
        notify_base: str,
        *,
        ttl_s: float = 120.0,
        scan_wait_s: float = 30.0,
        poll_interval_s: float = 1.0,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.adapters = dict(adapters)
        self.notify_base = notify_base.rstrip("/")
        self.ttl_s = ttl_s
        self.scan_wait_s = scan_wait_s
        self.poll_interval_s = poll_interval_s
        self.now = now
        for adapter in self.adapters.values():  # duplicates are the store's to catch (across nodes)
            adapter.guard = NotificationGuard(adapter.guard.window_s, remember=False)

    def notify_url(self, provider: str) -> str:
        return f"{self.notify_base}/{provider}"

    def adapter(self, provider: str) -> WalletAdapter:
        try:
            return self.adapters[provider]
        except KeyError:
            raise WalletError(f"wallet provider {provider!r} is not configured") from None

    # -- the store ---------------------------------------------------------------------------------------

    def get(self, order_id: str) -> OrderView:
        with self.sessions() as session:
            row = session.get(WalletOrder, order_id)
            if row is None:
                raise OrderNotFound(order_id)
            return OrderView.of(row)

    def list(self, limit: int = 100, tid: str | None = None) -> list[OrderView]:
        with self.sessions() as session:
            query = select(WalletOrder).order_by(WalletOrder.created_at.desc()).limit(limit)
            if tid is not None:
                query = query.where(WalletOrder.tid == tid)
            return [OrderView.of(row) for row in session.scalars(query)]

    def _insert(self, row: WalletOrder) -> tuple[OrderView, bool]:
        """The new order, True; or the terminal's order of the same idempotency key, False."""
        try:
            with self.sessions.begin() as session:
                session.add(row)
            return OrderView.of(row), True
        except IntegrityError:
            if row.idempotency_key is None:
                raise
            with self.sessions() as session:
                existing = session.scalars(
                    select(WalletOrder).where(
                        WalletOrder.tid == row.tid, WalletOrder.idempotency_key == row.idempotency_key
                    )
                ).one()
                return OrderView.of(existing), False

    def _locked(self, session: Session, order_id: str) -> WalletOrder:
        row = session.scalars(
            select(WalletOrder).where(WalletOrder.order_id == order_id).with_for_update()
        ).one_or_none()
        if row is None:
            raise OrderNotFound(order_id)
        return row

    def _set(
        self,
        order_id: str,
        state: str | None = None,
        *,
        trade: ProviderTrade | None = None,
        failure: str | None = None,
        qr_payload: str | None = None,
    ) -> OrderView:
        """Move an order (under its row lock): to `state`, or to where the provider's `trade` says."""
        with self.sessions.begin() as session:
            row = self._locked(session, order_id)
            target = state
            if trade is not None:
                target = st.FROM_PROVIDER[trade.state]
                if trade.raw_state == "TRADE_CLOSED" and row.refunded_fen < row.amount_fen:
                    # Alipay: a trade paid then closed without our full refund was cancelled (reversed)
                    target = st.CLOSED
                row.provider_state = trade.raw_state[:24]
                row.trade_no = trade.trade_no or row.trade_no
                if (
                    trade.amount_fen is not None
                    and trade.state == "paid"
                    and trade.amount_fen != row.amount_fen
                ):
                    log.error(
                        "wallet order %s: provider reports %s fen paid of %s",
                        order_id,
                        trade.amount_fen,
                        row.amount_fen,
                    )
                    target = st.UNKNOWN
            if target is not None:
                try:
                    row.state = st.move(row.state, target)
                except st.Conflict as exc:
                    log.warning("wallet order %s: %s", order_id, exc)
                if row.state == st.PAID and row.paid_at is None:
                    row.paid_at = (
                        trade.paid_at.astimezone(dt.UTC).replace(tzinfo=None)
                        if trade is not None and trade.paid_at
                        else self.now()
                    )
            if failure is not None:
                row.failure = failure[:200]
            if qr_payload is not None:
                row.qr_payload = qr_payload
            row.updated_at = self.now()
            return OrderView.of(row)

    # -- merchant-presented ------------------------------------------------------------------------------

    async def create_qr(
        self,
        merchant: Merchant,
        tid: str,
        amount_fen: int,
        provider: str,
        idempotency_key: str | None = None,
    ) -> OrderView:
        """A dynamic order: created at the provider, its EMVCo payload stored. A provider time-out leaves it
        `unknown` (a query resolves it); a refusal `failed`."""
        if amount_fen <= 0:
            raise WalletError("the amount must be positive")
        adapter = self.adapter(provider)
        now = self.now()
        view, new = self._insert(
            WalletOrder(
                order_id=new_order_id(now),
                provider=provider,
                flow=QR,
                mid=merchant.mid,
                tid=tid,
                amount_fen=amount_fen,
                refunded_fen=0,
                state=st.CREATED,
                idempotency_key=idempotency_key,
                created_at=now,
                expires_at=now + dt.timedelta(seconds=self.ttl_s),
                updated_at=now,
            )
        )
        if not new:
            return view
        try:
            created = await adapter.create_order(
                view.order_id, amount_fen, merchant.name, _aware(view.expires_at), self.notify_url(provider)
            )
        except ProviderTimeout as exc:
            return self._set(view.order_id, st.UNKNOWN, failure=str(exc))
        except (ProviderError, ProviderUnavailable) as exc:
            return self._set(view.order_id, st.FAILED, failure=str(exc))
        payload = order_payload(
            provider,
            created.code_url,
            amount_fen,
            merchant.name,
            merchant.city,
            merchant.mcc,
            view.order_id,
            tid,
        )
        return self._set(view.order_id, qr_payload=payload)

    # -- customer-presented ------------------------------------------------------------------------------

    async def scan(
        self, merchant: Merchant, tid: str, code: str, amount_fen: int, idempotency_key: str | None = None
    ) -> OrderView:
        """Charge a scanned payment code (routed by its prefix: `UnknownCodePrefix` names it) and wait for
        the end: paid, failed, or — "user paying" past `scan_wait_s` — reversed (closed). A retry with the
        same idempotency key waits for the first one's order and never charges again."""
        if amount_fen <= 0:
            raise WalletError("the amount must be positive")
        code = code.strip()
        provider = route_code(code, enabled=self.adapters).provider
        adapter = self.adapter(provider)
        now = self.now()
        view, new = self._insert(
            WalletOrder(
                order_id=new_order_id(now, "S"),
                provider=provider,
                flow=SCAN,
                mid=merchant.mid,
                tid=tid,
                amount_fen=amount_fen,
                refunded_fen=0,
                state=st.CREATED,
                code_masked=mask_code(code),
                idempotency_key=idempotency_key,
                created_at=now,
                expires_at=now + dt.timedelta(seconds=self.scan_wait_s),
                updated_at=now,
            )
        )
        if not new:
            return await self._wait_final(view.order_id, self.scan_wait_s + 5 * self.poll_interval_s)
        try:
            trade = await adapter.charge_code(
                view.order_id, code, amount_fen, merchant.name, self.notify_url(provider)
            )
        except ProviderTimeout as exc:
            view = self._set(view.order_id, st.UNKNOWN, failure=str(exc))
        except ProviderError as exc:
            if exc.reason in ("system", "duplicate"):
                view = self._set(view.order_id, st.UNKNOWN, failure=str(exc))
            else:
                return self._set(view.order_id, st.FAILED, failure=str(exc))
        except ProviderUnavailable as exc:
            return self._set(view.order_id, st.FAILED, failure=str(exc))
        else:
            view = self._set(view.order_id, trade=trade)
        return await self._settle_scan(view)

    async def _settle_scan(self, view: OrderView) -> OrderView:
        deadline = asyncio.get_running_loop().time() + self.scan_wait_s
        while view.state not in st.FINAL and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(self.poll_interval_s)
            view = await self.refresh(view.order_id, close_expired=False)
        if view.state in st.FINAL:
            return view
        return await self.close(view.order_id)

    async def _wait_final(self, order_id: str, timeout_s: float) -> OrderView:
        deadline = asyncio.get_running_loop().time() + timeout_s
        view = self.get(order_id)
        while view.state not in st.FINAL and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(min(self.poll_interval_s, 0.2))
            view = self.get(order_id)
        return view

    # -- status, close -----------------------------------------------------------------------------------

    async def refresh(self, order_id: str, close_expired: bool = True) -> OrderView:
        """Ask the provider and follow its answer (polling: a lost notification, an `unknown` order). An
        unpaid merchant-presented order past its expiry is closed at the provider."""
        view = self.get(order_id)
        if view.state in st.FINAL:
            return view
        adapter = self.adapter(view.provider)
        try:
            trade = await adapter.query(order_id)
        except ProviderError as exc:
            if exc.reason != "not_found":
                return view
            # never reached the provider: nothing was or can be paid under this id
            return self._set(order_id, st.FAILED if view.state != st.UNKNOWN else st.CLOSED, failure=str(exc))
        except (ProviderTimeout, ProviderUnavailable):
            return view
        view = self._set(order_id, trade=trade)
        if close_expired and view.state not in st.FINAL and self.now() >= view.expires_at:
            return await self.close(order_id)
        return view

    async def close(self, order_id: str) -> OrderView:
        """End an unpaid order at the provider (close an order, reverse a charge); a paid one stays paid."""
        view = self.get(order_id)
        if view.state in st.FINAL:
            return view
        adapter = self.adapter(view.provider)
        try:
            if view.flow == SCAN:
                await adapter.reverse(order_id)
            else:
                await adapter.close(order_id)
        except ProviderError as exc:
            if exc.reason == "not_found":
                return self._set(order_id, st.CLOSED, failure=str(exc))
            if exc.reason in ("order_paid", "order_closed", "state"):
                return await self.refresh(order_id, close_expired=False)
            return self._set(order_id, failure=str(exc))
        except (ProviderTimeout, ProviderUnavailable) as exc:
            return self._set(order_id, st.UNKNOWN, failure=str(exc))
        return self._set(order_id, st.CLOSED)

    async def expire_due(self) -> list[OrderView]:
        """Resolve every unfinished order past its expiry (query; close if still unpaid)."""
        now = self.now()
        with self.sessions() as session:
            due = list(
                session.scalars(
                    select(WalletOrder.order_id).where(
                        WalletOrder.state.in_((st.CREATED, st.PAYING, st.UNKNOWN)),
                        WalletOrder.expires_at <= now,
                    )
                )
            )
        return [await self.refresh(order_id) for order_id in due]

    # -- refunds -----------------------------------------------------------------------------------------

    async def refund(self, order_id: str, amount_fen: int, idempotency_key: str | None = None) -> RefundView:
        """Refund part of a paid order: reserved in the order's `refunded_fen` first (a conditional update, so
        concurrent refunds never sum above the paid amount), then asked of the provider. A refusal releases
        the reservation (`RefundRefused`); no answer leaves the refund `unknown`, still reserved."""
        now = self.now()
        refund_no = "R" + now.strftime("%y%m%d%H%M%S") + secrets.token_hex(6).upper()
        with self.sessions.begin() as session:
            if idempotency_key is not None:
                existing = session.scalars(
                    select(WalletRefund).where(
                        WalletRefund.order_id == order_id, WalletRefund.idempotency_key == idempotency_key
                    )
                ).one_or_none()
                if existing is not None:
                    row = self._locked(session, order_id)
                    return RefundView(
                        existing.refund_no, order_id, existing.amount_fen, existing.state, row.refunded_fen
                    )
            row = self._locked(session, order_id)
            why = st.refundable(row.state, row.amount_fen, row.refunded_fen, amount_fen)
            if why is not None:
                raise RefundRefused(why)
            reserved = session.execute(
                update(WalletOrder)
                .where(
                    WalletOrder.order_id == order_id,
                    WalletOrder.state == st.PAID,
                    WalletOrder.refunded_fen + amount_fen <= WalletOrder.amount_fen,
                )
                .values(refunded_fen=WalletOrder.refunded_fen + amount_fen, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if reserved.rowcount != 1:  # type: ignore[attr-defined]
                raise RefundRefused("refund is above what is left")
            session.add(
                WalletRefund(
                    refund_no=refund_no,
                    order_id=order_id,
                    amount_fen=amount_fen,
                    state="pending",
                    idempotency_key=idempotency_key,
                    created_at=now,
                    updated_at=now,
                )
            )
            total = row.amount_fen
            provider = row.provider
        adapter = self.adapter(provider)
        try:
            result = await adapter.refund(order_id, refund_no, amount_fen, total)
        except (ProviderTimeout, ProviderUnavailable) as exc:
            log.warning("wallet refund %s: %s", refund_no, exc)
            return self._refund_state(refund_no, "unknown")
        except ProviderError as exc:
            self._refund_state(refund_no, "failed", release=True, provider_refund_id=None)
            raise RefundRefused(str(exc)) from None
        return self._refund_state(
            refund_no, "succeeded" if result.succeeded else "pending", provider_refund_id=result.refund_id
        )

    def _refund_state(
        self, refund_no: str, state: str, release: bool = False, provider_refund_id: str | None = None
    ) -> RefundView:
        with self.sessions.begin() as session:
            refund = session.get(WalletRefund, refund_no)
            if refund is None:
                raise WalletError(f"no wallet refund {refund_no!r}")
            order = self._locked(session, refund.order_id)
            if refund.state in ("succeeded", "failed"):
                return RefundView(
                    refund_no, order.order_id, refund.amount_fen, refund.state, order.refunded_fen
                )
            refund.state = state
            refund.provider_refund_id = provider_refund_id or refund.provider_refund_id
            refund.updated_at = self.now()
            if release:
                order.refunded_fen -= refund.amount_fen
                order.updated_at = self.now()
            return RefundView(refund_no, order.order_id, refund.amount_fen, refund.state, order.refunded_fen)

    def refunds(self, order_id: str) -> list[RefundView]:
        with self.sessions() as session:
            order = session.get(WalletOrder, order_id)
            if order is None:
                raise OrderNotFound(order_id)
            rows = session.scalars(
                select(WalletRefund)
                .where(WalletRefund.order_id == order_id)
                .order_by(WalletRefund.created_at)
            )
            return [
                RefundView(r.refund_no, order_id, r.amount_fen, r.state, order.refunded_fen) for r in rows
            ]

    # -- notifications -----------------------------------------------------------------------------------

    def notify(self, provider: str, headers: Mapping[str, str], body: bytes) -> NotifyOutcome:
        """Verify a provider's notification and apply it once: its event is recorded in the same unit of
        work, so a second delivery (a retry, a replay inside the window, on any node) applies nothing. A
        forged, undecryptable or stale one is refused (the provider retries a genuine one)."""
        adapter = self.adapter(provider)
        now = self.now()
        try:
            note = adapter.read_notification(headers, body, _aware(now))
        except NotificationRejected as exc:
            log.warning("wallet notification from %s rejected: %s", provider, exc.reason)
            return NotifyOutcome(adapter.notification_ack(False), f"rejected:{exc.reason}")
        sent_at = note.sent_at.astimezone(dt.UTC).replace(tzinfo=None)
        try:
            with self.sessions.begin() as session:
                seen = WalletNotificationSeen(
                    provider=provider,
                    event_id=note.event_id[:128],
                    kind=note.kind,
                    order_id=note.out_trade_no[:32],
                    sent_at=sent_at,
                    received_at=now,
                    outcome="applied",
                )
                session.add(seen)
                session.flush()
                seen.outcome = self._apply(session, note)
                outcome = seen.outcome
        except IntegrityError:
            return NotifyOutcome(adapter.notification_ack(True), "duplicate")
        return NotifyOutcome(adapter.notification_ack(True), outcome)

    def _apply(self, session: Session, note: WalletNotification) -> str:
        row = session.scalars(
            select(WalletOrder).where(WalletOrder.order_id == note.out_trade_no).with_for_update()
        ).one_or_none()
        if row is None or row.provider != note.provider:
            return "unknown_order"
        if note.kind == "refund":
            refund = session.get(WalletRefund, note.out_refund_no or "")
            if refund is None or refund.order_id != row.order_id:
                return "unknown_order"
            if refund.state in ("pending", "unknown"):
                refund.state = "succeeded"
                refund.updated_at = self.now()
                return "applied"
            return "unchanged"
        if note.amount_fen != row.amount_fen:
            log.error(
                "wallet order %s: notification of %s fen for %s",
                row.order_id,
                note.amount_fen,
                row.amount_fen,
            )
            return "mismatch"
        before = row.state
        try:
            row.state = st.follow(row.state, note.state)
        except st.Conflict:
            return "unchanged"
        row.trade_no = note.trade_no or row.trade_no
        if row.state == st.PAID and row.paid_at is None:
            row.paid_at = self.now()
        row.updated_at = self.now()
        return "applied" if row.state != before else "unchanged"

    def prune_notifications(self, keep_s: float = 600.0) -> int:
        """Forget notifications received more than `keep_s` ago (older ones are refused as stale anyway:
        keep at least twice the adapters' window)."""
        with self.sessions.begin() as session:
            result = session.execute(
                delete(WalletNotificationSeen).where(
                    WalletNotificationSeen.received_at < self.now() - dt.timedelta(seconds=keep_s)
                )
            )
            return int(result.rowcount)  # type: ignore[attr-defined]


__all__ = [
    "Merchant",
    "NotifyOutcome",
    "OrderNotFound",
    "OrderView",
    "RefundRefused",
    "RefundView",
    "WalletOrders",
]
