"""Filing an application: validate the form (pure), enforce the per-ID limit, run the automatic checks,
store the application with its personal data sealed and its photos as files — all in the caller's unit of
work (`Store.transact` wrapped by `uploads.with_files`, which removes the files if anything fails).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from posgate.cards.pan import mask_pan
from posgate.merchants.checks import MAX_MERCHANTS_PER_ID, automatic_checks
from posgate.merchants.errors import FieldError, NotFound
from posgate.merchants.form import TEXT_FIELDS, Route, ValidApplication, validate_form
from posgate.merchants.images import PHOTO_KINDS, ImageInfo, inspect_image
from posgate.merchants.personal import CARD_LABEL, ID_NUMBER_LABEL, Vault, lookup_hash, seal, unseal
from posgate.merchants.uploads import Staging
from posgate.merchants.workflow import OPEN_STATUSES, next_status
from posgate.store.audit import audit
from posgate.store.models import IssuerRoute, Merchant
from posgate.store.models_onboarding import Application, ApplicationUpload

_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass(frozen=True)
class Photo:
    kind: str
    original_name: str
    info: ImageInfo
    data: bytes = field(repr=False)


def check_photos(files: Mapping[str, tuple[bytes, str]], required: bool = True) -> dict[str, Photo]:
    """Validate each upload (kind → (bytes, original file name)); all five kinds when `required`."""
    for kind in files:
        if kind not in PHOTO_KINDS:
            raise FieldError(kind, f"is not an upload field; one of {', '.join(PHOTO_KINDS)}")
    photos: dict[str, Photo] = {}
    for kind in PHOTO_KINDS:
        if kind not in files:
            if required:
                raise FieldError(kind, "is required (a JPEG or PNG photo)")
            continue
        data, name = files[kind]
        info = inspect_image(data, kind)
        clean = (
            _UNSAFE_NAME.sub("_", name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1])[-255:] or f"{kind}.{info.ext}"
        )
        photos[kind] = Photo(kind, clean, info, data)
    return photos


def load_routes(session: Session) -> list[Route]:
    return [
        Route(row.name, tuple(b.strip() for b in row.bins.split(",") if b.strip()), row.kind)
        for row in session.scalars(select(IssuerRoute).order_by(IssuerRoute.name))
    ]


def merchants_for_id(session: Session, id_hash: str, exclude_application: int | None = None) -> int:
    """Open applications plus merchants not closed, of one ID number."""
    query = (
        select(func.count(Application.id))
        .outerjoin(Merchant, Merchant.id == Application.merchant_id)
        .where(
            Application.id_number_hash == id_hash,
            or_(
                Application.status.in_(OPEN_STATUSES),
                and_(Application.status == "approved", Merchant.status != "closed"),
            ),
        )
    )
    if exclude_application is not None:
        query = query.where(Application.id != exclude_application)
    return session.scalar(query) or 0


def _shared(session: Session, column: object, value: str, id_hash: str) -> int:
    return (
        session.scalar(
            select(func.count(func.distinct(Application.id_number_hash))).where(
                column == value,  # type: ignore[operator]
                Application.id_number_hash != id_hash,
            )
        )
        or 0
    )


def _enforce_id_limit(session: Session, id_hash: str, exclude: int | None) -> int:
    count = merchants_for_id(session, id_hash, exclude)
    if count >= MAX_MERCHANTS_PER_ID:
        raise FieldError(
            "id_number",
            f"already has {count} merchants or open applications "
            f"(at most {MAX_MERCHANTS_PER_ID} per ID number)",
        )
    return count


def _fill(row: Application, app: ValidApplication, vault: Vault, id_hash: str, card_hash: str) -> None:
    row.applicant_name = app.applicant_name
    row.id_number_sealed = seal(vault, app.id_number.value, ID_NUMBER_LABEL)
    row.id_number_hash = id_hash
    row.id_number_masked = app.id_number.masked
    row.birth_date = app.id_number.birth_date
    row.mobile = app.mobile
    row.settlement_card_sealed = seal(vault, app.settlement_card, CARD_LABEL)
    row.settlement_card_hash = card_hash
    row.settlement_card_masked = mask_pan(app.settlement_card)
    row.settlement_bank = app.settlement_bank
    row.shop_name = app.shop_name
    row.address = app.address
    row.area_code = app.area_code
    row.business_type = app.business_type
    row.mcc = app.mcc
    row.licence_number = app.licence_number


def _store_photos(
    session: Session, staging: Staging, application_id: int, photos: Mapping[str, Photo]
) -> None:
    for kind, photo in photos.items():
        staging.put(photo.data, photo.info)
        session.execute(
            delete(ApplicationUpload).where(
                ApplicationUpload.application_id == application_id, ApplicationUpload.kind == kind
            )
        )
        session.add(
            ApplicationUpload(
                application_id=application_id,
                kind=kind,
                sha256=photo.info.sha256,
                mime=photo.info.mime,
                size=photo.info.size,
                width=photo.info.width,
                height=photo.info.height,
                original_name=photo.original_name,
            )
        )


def _checks_json(
    session: Session,
    app: ValidApplication,
    infos: Mapping[str, ImageInfo],
    id_hash: str,
    card_hash: str,
    count: int,
) -> str:
    checks = automatic_checks(
        app,
        infos,
        merchants_for_id=count,
        mobile_shared_with=_shared(session, Application.mobile, app.mobile, id_hash),
        card_shared_with=_shared(session, Application.settlement_card_hash, card_hash, id_hash),
    )
    return json.dumps([c.as_dict() for c in checks], ensure_ascii=False)


def submit_application(
    session: Session,
    staging: Staging,
    vault: Vault,
    values: Mapping[str, str | None],
    photos: Mapping[str, Photo],
    actor: str,
    now: dt.datetime,
) -> int:
    """File a new application (status submitted); returns its id. Refusals raise `FieldError`."""
    app = validate_form(values, load_routes(session), now.date())
    id_hash = lookup_hash(vault, app.id_number.value, ID_NUMBER_LABEL)
    card_hash = lookup_hash(vault, app.settlement_card, CARD_LABEL)
    count = _enforce_id_limit(session, id_hash, None)
    row = Application(status="submitted", submitted_by=actor, created_at=now, updated_at=now)
    _fill(row, app, vault, id_hash, card_hash)
    infos = {kind: photo.info for kind, photo in photos.items()}
    row.checks = _checks_json(session, app, infos, id_hash, card_hash, count)
    session.add(row)
    session.flush()
    _store_photos(session, staging, row.id, photos)
    audit(session, actor, "submit", "application", row.id, now, status="submitted", shop=app.shop_name)
    return row.id


def get_application(session: Session, application_id: int, for_update: bool = False) -> Application:
    query = select(Application).where(Application.id == application_id)
    if for_update:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise NotFound(f"no application {application_id}")
    return row


def form_values(row: Application, vault: Vault) -> dict[str, str | None]:
    """The application's fields as the form had them (ID number and card unsealed), for a resubmission."""
    return {
        "applicant_name": row.applicant_name,
        "id_number": unseal(vault, row.id_number_sealed, ID_NUMBER_LABEL),
        "mobile": row.mobile,
        "settlement_card": unseal(vault, row.settlement_card_sealed, CARD_LABEL),
        "settlement_card_holder": row.applicant_name,
        "shop_name": row.shop_name,
        "address": row.address,
        "business_type": row.business_type,
        "licence_number": row.licence_number,
    }


def _stored_infos(session: Session, application_id: int) -> dict[str, ImageInfo]:
    rows = session.scalars(
        select(ApplicationUpload).where(ApplicationUpload.application_id == application_id)
    )
    return {
        r.kind: ImageInfo(
            r.mime, "png" if r.mime == "image/png" else "jpg", r.size, r.width, r.height, r.sha256
        )
        for r in rows
    }


def resubmit_application(
    session: Session,
    staging: Staging,
    vault: Vault,
    application_id: int,
    changes: Mapping[str, str | None],
    photos: Mapping[str, Photo],
    actor: str,
    now: dt.datetime,
) -> None:
    """The operator answers "more info needed": changed fields and replaced photos, re-validated and
    re-checked as a whole; the application goes back to submitted."""
    row = get_application(session, application_id, for_update=True)
    status = next_status(application_id, row.status, "resubmit")
    values = form_values(row, vault)
    for key, value in changes.items():
        if key not in TEXT_FIELDS:
            raise FieldError(key, "is not a field of the application")
        if value is not None and value.strip():
            values[key] = value
    if changes.get("applicant_name") and not (changes.get("settlement_card_holder") or "").strip():
        raise FieldError("settlement_card_holder", "is required when applicant_name changes")
    app = validate_form(values, load_routes(session), now.date())
    id_hash = lookup_hash(vault, app.id_number.value, ID_NUMBER_LABEL)
    card_hash = lookup_hash(vault, app.settlement_card, CARD_LABEL)
    count = _enforce_id_limit(session, id_hash, application_id)
    _fill(row, app, vault, id_hash, card_hash)
    _store_photos(session, staging, application_id, photos)
    session.flush()
    infos = _stored_infos(session, application_id)
    row.checks = _checks_json(session, app, infos, id_hash, card_hash, count)
    row.status, row.updated_at = status, now
    changed = sorted(k for k, v in changes.items() if v is not None and v.strip()) + sorted(photos)
    audit(session, actor, "resubmit", "application", application_id, now, status=status, changed=changed)
