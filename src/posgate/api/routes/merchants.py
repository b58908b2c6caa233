"""`/api/merchants` and `/api/terminals`: merchants with their terminals, lifecycle (suspend, resume,
close), provisioning more terminals, and TMK delivery as a TR-31 key block (never the clear TMK)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from posgate.api.auth import require
from posgate.api.context import AppContext, app_context
from posgate.api.inputs import CheckedRoute
from posgate.api.users import Principal
from posgate.merchants import operations
from posgate.merchants.errors import FieldError
from posgate.merchants.provisioning import DEFAULT_MAC_ALGORITHM, MAX_TERMINALS_PER_REQUEST, key_kcv
from posgate.merchants.queries import list_merchants, merchant_view, terminal_view

router = APIRouter(tags=["merchants and terminals"], route_class=CheckedRoute)
STATUSES = ("testing", "live", "suspended", "closed")


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str


class ProvisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(default=1, ge=1, le=MAX_TERMINALS_PER_REQUEST, description="1-20")
    mac_algorithm: str = Field(
        default=DEFAULT_MAC_ALGORITHM,
        description="x919 (ANSI X9.19, default) or cup_ecb (legacy: only for terminals that cannot do X9.19)",
    )


Ctx = Annotated[AppContext, Depends(app_context)]


@router.get("/api/merchants", summary="Merchants (filter by status)")
def get_merchants(
    ctx: Ctx, who: Annotated[Principal, Depends(require("merchants.read"))], status: str | None = None
) -> list[dict[str, Any]]:
    if status is not None and status not in STATUSES:
        raise FieldError("status", f"must be one of {', '.join(STATUSES)}, got {status!r}")
    return ctx.transact(lambda s: list_merchants(s, status))


@router.get("/api/merchants/{mid}", summary="One merchant: fee plan, status, terminals, history")
def get_merchant(
    mid: str, ctx: Ctx, who: Annotated[Principal, Depends(require("merchants.read"))]
) -> dict[str, Any]:
    return ctx.transact(lambda s: merchant_view(s, mid))


@router.post("/api/merchants/{mid}/suspend", summary="testing|live → suspended: its terminals get 03")
def suspend_merchant(
    mid: str, body: ReasonBody, ctx: Ctx, who: Annotated[Principal, Depends(require("merchants.lifecycle"))]
) -> dict[str, Any]:
    return operations.merchant_lifecycle(ctx, who, mid, "suspend", body.reason)


@router.post("/api/merchants/{mid}/resume", summary="suspended → the status it had")
def resume_merchant(
    mid: str, ctx: Ctx, who: Annotated[Principal, Depends(require("merchants.lifecycle"))]
) -> dict[str, Any]:
    return operations.merchant_lifecycle(ctx, who, mid, "resume", None)


@router.post("/api/merchants/{mid}/close", summary="→ closed (final), with all its terminals")
def close_merchant(
    mid: str, body: ReasonBody, ctx: Ctx, who: Annotated[Principal, Depends(require("merchants.lifecycle"))]
) -> dict[str, Any]:
    return operations.merchant_lifecycle(ctx, who, mid, "close", body.reason)


@router.post(
    "/api/merchants/{mid}/terminals", status_code=201, summary="Provision terminals (fresh TMK each)"
)
def provision(
    mid: str,
    ctx: Ctx,
    who: Annotated[Principal, Depends(require("terminals.provision"))],
    body: ProvisionBody | None = None,
) -> dict[str, Any]:
    body = body or ProvisionBody()
    tids = operations.provision(ctx, who, mid, body.count, body.mac_algorithm)
    return {"mid": mid, "tids": tids}


@router.get("/api/terminals/{tid}", summary="One terminal: status, TMK KCV, merchant, history")
def get_terminal(
    tid: str, ctx: Ctx, who: Annotated[Principal, Depends(require("merchants.read"))]
) -> dict[str, Any]:
    return ctx.transact(lambda s: terminal_view(s, tid))


@router.post("/api/terminals/{tid}/suspend", summary="testing|live → suspended: the host answers 03")
def suspend_terminal(
    tid: str, body: ReasonBody, ctx: Ctx, who: Annotated[Principal, Depends(require("merchants.lifecycle"))]
) -> dict[str, Any]:
    return operations.terminal_lifecycle(ctx, who, tid, "suspend", body.reason)


@router.post("/api/terminals/{tid}/resume", summary="suspended → the status it had (merchant must be active)")
def resume_terminal(
    tid: str, ctx: Ctx, who: Annotated[Principal, Depends(require("merchants.lifecycle"))]
) -> dict[str, Any]:
    return operations.terminal_lifecycle(ctx, who, tid, "resume", None)


@router.post("/api/terminals/{tid}/close", summary="→ closed (final)")
def close_terminal(
    tid: str, body: ReasonBody, ctx: Ctx, who: Annotated[Principal, Depends(require("merchants.lifecycle"))]
) -> dict[str, Any]:
    return operations.terminal_lifecycle(ctx, who, tid, "close", body.reason)


@router.post("/api/terminals/{tid}/tmk/tr31", summary="The TMK as a TR-31 key block under the KTK (+ KCVs)")
def tmk_tr31(
    tid: str, ctx: Ctx, who: Annotated[Principal, Depends(require("terminals.keys"))]
) -> dict[str, Any]:
    export = operations.tr31_export(ctx, who, tid)
    return {
        "tid": export.tid,
        "key_block": export.key_block,
        "tmk_kcv": export.tmk_kcv,
        "ktk_kcv": export.ktk_kcv,
    }


@router.get("/api/keys/ktk", summary="The key-transfer key's KCV (null until the first TR-31 export)")
def ktk(ctx: Ctx, who: Annotated[Principal, Depends(require("terminals.keys"))]) -> dict[str, Any]:
    return {"kcv": ctx.transact(lambda s: key_kcv(s, "acquirer", "KTK", "KTK"))}
