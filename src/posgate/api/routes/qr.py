"""`/api/qr/…`: the cashier-system API for wallet payments (issue 12) over `wallets.orders.WalletOrders`.

- `POST /api/qr/orders` (`amount` yuan or `amount_fen`, `tid`, optional `provider`) → the order with
  `order_id`, `qr_payload`, `expires_at` (merchant-presented);
- `POST /api/qr/scans` (`code`, `amount` or `amount_fen`, `tid`) → the order in its final state
  (customer-presented; an unknown code prefix is 422 naming it);
- `GET /api/qr/orders/{id}` → the order, after asking the provider if it is not final;
- `POST /api/qr/orders/{id}/close`, `POST /api/qr/orders/{id}/refunds` (`amount` or `amount_fen`);
- `GET /api/qr/orders` → the newest orders (console, finance);
- `POST /api/qr/notify/{provider}` → the providers' notifications: no API key, verified by their signature.

API-key (or console session) authentication; an `Idempotency-Key` header makes a create, scan or refund
happen once: the same key again answers the first one's order or refund.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel

from posgate.api.auth import require
from posgate.api.context import AppContext, app_context
from posgate.api.inputs import CheckedRoute
from posgate.api.users import Principal
from posgate.merchants.errors import FieldError, NotFound, OnboardingError, StateConflict
from posgate.wallets.errors import ProviderError, UnknownCodePrefix, WalletError
from posgate.wallets.orders import OrderNotFound, RefundRefused
from posgate.wallets.runtime import WalletRuntime

router = APIRouter(prefix="/api/qr", tags=["wallets"], route_class=CheckedRoute)
_YUAN = re.compile(r"(\d{1,10})(?:\.(\d{1,2}))?")
MAX_FEN = 99_999_999_99


class Unavailable(OnboardingError):
    """No provider accounts on this node (409, not a 5xx: the API answers no 5xx for a request it refuses)."""

    status = 409
    code = "wallets_unavailable"


class ProviderRefused(OnboardingError):
    status = 409
    code = "provider_error"


class AmountIn(BaseModel):
    amount: str | float | None = None
    amount_fen: int | None = None

    def fen(self) -> int:
        if self.amount_fen is not None:
            fen = self.amount_fen
        elif self.amount is not None:
            match = _YUAN.fullmatch(str(self.amount).strip())
            if match is None:
                raise FieldError("amount", "must be yuan with at most 2 decimals, like 23.72")
            fen = int(match.group(1)) * 100 + int((match.group(2) or "").ljust(2, "0"))
        else:
            raise FieldError("amount", "amount (yuan) or amount_fen is required")
        if not 1 <= fen <= MAX_FEN:
            field = "amount_fen" if self.amount_fen is not None else "amount"
            raise FieldError(field, "must be positive and at most 9,999,999,999.99 yuan")
        return fen


class OrderIn(AmountIn):
    tid: str
    provider: str = "wechat"


class ScanIn(AmountIn):
    tid: str
    code: str


def wallets(ctx: AppContext) -> WalletRuntime:
    runtime = getattr(ctx, "wallets", None)
    if runtime is None or not runtime.providers:
        raise Unavailable("wallet payments are not configured on this node")
    return runtime  # type: ignore[no-any-return]


def _key(value: str | None) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= 64:
        raise FieldError("Idempotency-Key", "must be 1 to 64 characters")
    return value


def _refusal(exc: WalletError) -> OnboardingError:
    if isinstance(exc, OrderNotFound):
        return NotFound(str(exc))
    if isinstance(exc, UnknownCodePrefix):
        return FieldError("code", str(exc))
    if isinstance(exc, RefundRefused):
        return StateConflict(str(exc), "amount")
    if isinstance(exc, ProviderError):
        return ProviderRefused(str(exc))
    return StateConflict(str(exc))


Ctx = Annotated[AppContext, Depends(app_context)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


@router.post("/orders", summary="Merchant-presented: a dynamic QR order for an amount")
async def create_order(
    body: OrderIn,
    ctx: Ctx,
    who: Annotated[Principal, Depends(require("qr.pay"))],
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    fen = body.fen()
    runtime = wallets(ctx)
    if body.provider not in runtime.providers:
        raise FieldError("provider", f"must be one of {', '.join(runtime.providers)}")
    try:
        merchant = runtime.merchant(body.tid)
        order = await runtime.orders.create_qr(merchant, body.tid, fen, body.provider, _key(idempotency_key))
    except WalletError as exc:
        raise _refusal(exc) from None
    return order.as_json()


@router.post("/scans", summary="Customer-presented: charge a scanned payment code; the final order")
async def scan(
    body: ScanIn,
    ctx: Ctx,
    who: Annotated[Principal, Depends(require("qr.pay"))],
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    fen = body.fen()
    runtime = wallets(ctx)
    try:
        merchant = runtime.merchant(body.tid)
        order = await runtime.orders.scan(merchant, body.tid, body.code, fen, _key(idempotency_key))
    except WalletError as exc:
        raise _refusal(exc) from None
    return order.as_json()


@router.get("/orders", summary="Wallet orders, newest first")
def list_orders(
    ctx: Ctx, who: Annotated[Principal, Depends(require("transactions.read"))], tid: str | None = None
) -> list[dict[str, Any]]:
    return [order.as_json() for order in wallets(ctx).orders.list(200, tid)]


@router.get("/orders/{order_id}", summary="One order (the provider is asked when it is not final)")
async def get_order(
    order_id: str, ctx: Ctx, who: Annotated[Principal, Depends(require("qr.pay"))]
) -> dict[str, Any]:
    try:
        order = await wallets(ctx).orders.refresh(order_id[:32])
    except WalletError as exc:
        raise _refusal(exc) from None
    return order.as_json() | {"refunds": [r.as_json() for r in wallets(ctx).orders.refunds(order.order_id)]}


@router.post("/orders/{order_id}/close", summary="Close an unpaid order (reverse an unpaid scan)")
async def close_order(
    order_id: str, ctx: Ctx, who: Annotated[Principal, Depends(require("qr.pay"))]
) -> dict[str, Any]:
    try:
        return (await wallets(ctx).orders.close(order_id[:32])).as_json()
    except WalletError as exc:
        raise _refusal(exc) from None


@router.post("/orders/{order_id}/refunds", summary="Refund part of a paid order")
async def refund_order(
    order_id: str,
    body: AmountIn,
    ctx: Ctx,
    who: Annotated[Principal, Depends(require("qr.refund"))],
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    fen = body.fen()
    try:
        refund = await wallets(ctx).orders.refund(order_id[:32], fen, _key(idempotency_key))
    except WalletError as exc:
        raise _refusal(exc) from None
    return refund.as_json()


@router.post("/notify/{provider}", include_in_schema=False)
async def notify(provider: str, request: Request, ctx: Ctx) -> Response:
    runtime = wallets(ctx)
    if provider not in runtime.providers:
        raise NotFound(f"no wallet provider {provider[:16]!r}")
    body = await request.body()
    outcome = runtime.orders.notify(provider, request.headers, body)
    return Response(outcome.ack.body, outcome.ack.status, media_type=outcome.ack.media_type)
