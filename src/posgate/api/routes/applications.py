"""`/api/applications`: file an application (multipart form with photos), list and read them, the photos,
the operator's resubmission and the reviewer's decisions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from posgate.api.auth import require
from posgate.api.context import AppContext, app_context
from posgate.api.inputs import CheckedRoute, Id
from posgate.api.users import Principal
from posgate.merchants import operations
from posgate.merchants.applications import get_application
from posgate.merchants.errors import FieldError, NotFound
from posgate.merchants.feeplan import MAX_CAP_FEN, MAX_PPM
from posgate.merchants.images import PHOTO_KINDS, inspect_image
from posgate.merchants.provisioning import DEFAULT_MAC_ALGORITHM, MAX_TERMINALS_PER_REQUEST
from posgate.merchants.queries import application_view, list_applications, upload_row
from posgate.merchants.workflow import STATUSES

router = APIRouter(prefix="/api/applications", tags=["applications"], route_class=CheckedRoute)

Text = Annotated[str | None, Form()]
Photo = Annotated[UploadFile | None, File(description="JPEG or PNG, 1 KiB to 5 MiB")]


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(description="shown to the operator and kept in the audit trail")


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mdr_debit_ppm: int | None = Field(
        default=None, ge=1, le=MAX_PPM, description="debit rate, ppm (default 5000 = 0.50 %)"
    )
    mdr_debit_cap_fen: int | None = Field(
        default=None, ge=1, le=MAX_CAP_FEN, description="debit fee cap in fen (default 2000; null: no cap)"
    )
    mdr_credit_ppm: int | None = Field(
        default=None, ge=1, le=MAX_PPM, description="credit rate, ppm (default 6000 = 0.60 %)"
    )
    mdr_wallet_ppm: int | None = Field(
        default=None, ge=1, le=MAX_PPM, description="QR wallet rate, ppm (default 3800 = 0.38 %)"
    )
    settlement_cycle: str | None = Field(default=None, description="T+1 (default) or D0")
    d0_allowed: bool | None = Field(default=None, description="default false")
    terminals: int = Field(
        default=1, ge=1, le=MAX_TERMINALS_PER_REQUEST, description="terminals to provision (1-20)"
    )
    mac_algorithm: str = Field(
        default=DEFAULT_MAC_ALGORITHM, description="their MAC: x919 (default) or cup_ecb (legacy terminals)"
    )


def _files(uploads: dict[str, UploadFile | None]) -> dict[str, tuple[bytes, str]]:
    files = {}
    for kind, upload in uploads.items():
        read = operations.read_upload(
            upload.file if upload else None, upload.filename if upload else None, kind
        )
        if read is not None:
            files[kind] = read
    return files


def _application_form(
    applicant_name: Text = None,
    id_number: Text = None,
    mobile: Text = None,
    settlement_card: Text = None,
    settlement_card_holder: Text = None,
    shop_name: Text = None,
    address: Text = None,
    business_type: Text = None,
    licence_number: Text = None,
    id_card_front: Photo = None,
    id_card_back: Photo = None,
    storefront: Photo = None,
    interior: Photo = None,
    cashier: Photo = None,
) -> tuple[dict[str, str | None], dict[str, UploadFile | None]]:
    """The application form's fields and photos, as filed and as resubmitted (the photos not yet read)."""
    values = {
        "applicant_name": applicant_name,
        "id_number": id_number,
        "mobile": mobile,
        "settlement_card": settlement_card,
        "settlement_card_holder": settlement_card_holder,
        "shop_name": shop_name,
        "address": address,
        "business_type": business_type,
        "licence_number": licence_number,
    }
    uploads = {
        "id_card_front": id_card_front,
        "id_card_back": id_card_back,
        "storefront": storefront,
        "interior": interior,
        "cashier": cashier,
    }
    return values, uploads


ApplicationForm = Annotated[
    tuple[dict[str, str | None], dict[str, UploadFile | None]], Depends(_application_form)
]


@router.post("", status_code=201, summary="File an application (multipart: fields and five photos)")
def create_application(
    ctx: Annotated[AppContext, Depends(app_context)],
    who: Annotated[Principal, Depends(require("applications.create"))],
    form: ApplicationForm,
) -> dict[str, Any]:
    values, uploads = form
    return operations.submit(ctx, who, values, _files(uploads))


@router.get("", summary="Applications, newest first (filter by status)")
def get_applications(
    ctx: Annotated[AppContext, Depends(app_context)],
    who: Annotated[Principal, Depends(require("applications.read"))],
    status: Annotated[str | None, Query(description=" | ".join(STATUSES))] = None,
) -> list[dict[str, Any]]:
    if status is not None and status not in STATUSES:
        raise FieldError("status", f"must be one of {', '.join(STATUSES)}, got {status!r}")
    return ctx.transact(lambda s: list_applications(s, (status,) if status else ()))


@router.get("/{application_id}", summary="One application with its checks, photos and history")
def get_one(
    application_id: Id,
    ctx: Annotated[AppContext, Depends(app_context)],
    who: Annotated[Principal, Depends(require("applications.read"))],
) -> dict[str, Any]:
    return ctx.transact(lambda s: application_view(s, get_application(s, application_id)))


@router.get("/{application_id}/uploads/{kind}", summary="A photo of the application", response_class=Response)
def get_upload(
    application_id: Id,
    kind: str,
    ctx: Annotated[AppContext, Depends(app_context)],
    who: Annotated[Principal, Depends(require("applications.read"))],
) -> Response:
    if kind not in PHOTO_KINDS:
        raise NotFound(f"no upload kind {kind!r}; one of {', '.join(PHOTO_KINDS)}")
    row = ctx.transact(lambda s: upload_row(s, application_id, kind))
    if row is None:
        raise NotFound(f"application {application_id} has no {kind} photo")
    ext = "png" if row.mime == "image/png" else "jpg"
    data = ctx.uploads.read(row.sha256, ext)
    media_type, disposition = row.mime, "inline"
    try:  # stored before today's checks? a file they refuse is only ever downloaded, as bytes
        inspect_image(data, kind)
    except FieldError:
        media_type, disposition = "application/octet-stream", "attachment"
    return Response(
        data,
        media_type=media_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Content-Disposition": f'{disposition}; filename="{kind}.{ext}"',
            "Cache-Control": "private, max-age=3600",
            "ETag": f'"{row.sha256}"',
        },
    )


@router.post("/{application_id}/resubmit", summary="Answer 'more info needed': changed fields and photos")
def resubmit(
    application_id: Id,
    ctx: Annotated[AppContext, Depends(app_context)],
    who: Annotated[Principal, Depends(require("applications.create"))],
    form: ApplicationForm,
) -> dict[str, Any]:
    values, uploads = form
    changed = {key: value for key, value in values.items() if value is not None}
    return operations.resubmit(ctx, who, application_id, changed, _files(uploads))


@router.post("/{application_id}/start-review", summary="submitted → under_review")
def start_review(
    application_id: Id,
    ctx: Annotated[AppContext, Depends(app_context)],
    who: Annotated[Principal, Depends(require("applications.review"))],
) -> dict[str, Any]:
    return operations.decide(ctx, who, application_id, "start_review")


@router.post("/{application_id}/request-more-info", summary="under_review → more_info_needed (reason)")
def request_more_info(
    application_id: Id,
    body: ReasonBody,
    ctx: Annotated[AppContext, Depends(app_context)],
    who: Annotated[Principal, Depends(require("applications.review"))],
) -> dict[str, Any]:
    return operations.decide(ctx, who, application_id, "request_more_info", reason=body.reason)


@router.post("/{application_id}/reject", summary="under_review → rejected (reason)")
def reject(
    application_id: Id,
    body: ReasonBody,
    ctx: Annotated[AppContext, Depends(app_context)],
    who: Annotated[Principal, Depends(require("applications.review"))],
) -> dict[str, Any]:
    return operations.decide(ctx, who, application_id, "reject", reason=body.reason)


@router.post(
    "/{application_id}/approve",
    summary="under_review → approved: merchant (MID, fee plan, status testing) and terminals (TID, TMK)",
)
def approve(
    application_id: Id,
    ctx: Annotated[AppContext, Depends(app_context)],
    who: Annotated[Principal, Depends(require("applications.review"))],
    body: ApproveBody | None = None,
) -> dict[str, Any]:
    body = body or ApproveBody()
    plan = {k: getattr(body, k) for k in body.model_fields_set if k not in ("terminals", "mac_algorithm")}
    return operations.decide(
        ctx,
        who,
        application_id,
        "approve",
        fee_plan=plan,
        terminals=body.terminals,
        mac_algorithm=body.mac_algorithm,
    )
