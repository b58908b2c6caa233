"""The onboarding use cases: what the API routes, the console pages and `posgate merchant` do, as plain
functions of a `Desk` (one unit of work, the vault, the upload folder, the settings) and the `Actor` on
whose behalf: one unit of work each, errors as `OnboardingError` (each face turns them into JSON, a page or
a message). Photos are checked before the unit of work opens and written inside it; `uploads.with_files`
removes the files again if it fails, so nothing is stored on any error."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.config import Settings
from posgate.merchants import lifecycle, review
from posgate.merchants.applications import (
    Photo,
    check_photos,
    get_application,
    resubmit_application,
    submit_application,
)
from posgate.merchants.errors import FieldError, UploadTooLarge
from posgate.merchants.feeplan import fee_plan_from
from posgate.merchants.images import MAX_BYTES
from posgate.merchants.provisioning import (
    DEFAULT_MAC_ALGORITHM,
    ProfileData,
    Tr31Export,
    export_tr31,
    get_merchant,
    provision_terminals,
    simulator_profile,
)
from posgate.merchants.queries import application_view, merchant_view, terminal_view
from posgate.merchants.uploads import Staging, UploadStore, with_files
from posgate.security.at_rest import CardVault
from posgate.store.base import utcnow
from posgate.store.models_onboarding import ApplicationUpload
from posgate.store.runtime import StoreHandle

REVIEW_ACTIONS = ("start_review", "request_more_info", "reject", "approve")
LIFECYCLE_ACTIONS = ("suspend", "resume", "close")
T = TypeVar("T")


class Desk(Protocol):
    """What the use cases need of their caller (the API's `AppContext`, the command line's `StoreDesk`)."""

    settings: Settings
    uploads: UploadStore

    @property
    def vault(self) -> CardVault: ...

    def transact(self, work: Callable[[Session], T]) -> T: ...


class Actor(Protocol):
    """Who acts: a console user, an API key, the command line. Audited by name."""

    @property
    def username(self) -> str: ...


@dataclass
class StoreDesk:
    """A `Desk` straight over an opened store (the command line's)."""

    handle: StoreHandle
    settings: Settings
    uploads: UploadStore

    @property
    def vault(self) -> CardVault:
        return self.handle.vault

    def transact(self, work: Callable[[Session], T]) -> T:
        return self.handle.store.transact(work)


@dataclass(frozen=True)
class Operator:
    """An `Actor` named by the caller (`cli` for the command line)."""

    username: str


def read_upload(stream: BinaryIO | None, filename: str | None, field: str) -> tuple[bytes, str] | None:
    """At most 5 MiB of an uploaded file (413 beyond); None for an empty part (no file chosen)."""
    if stream is None:
        return None
    data = stream.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise UploadTooLarge(field, f"is larger than {MAX_BYTES} bytes (5 MiB)")
    if not data and not filename:
        return None
    return data, filename or field


def _referenced(ctx: Desk, sha256: str) -> bool:
    return ctx.transact(
        lambda s: (
            s.scalar(select(ApplicationUpload.id).where(ApplicationUpload.sha256 == sha256).limit(1))
            is not None
        )
    )


def submit(
    ctx: Desk, who: Actor, values: Mapping[str, str | None], files: Mapping[str, tuple[bytes, str]]
) -> dict[str, Any]:
    photos = check_photos(files)

    def work(session: Session, staging: Staging) -> dict[str, Any]:
        app_id = submit_application(session, staging, ctx.vault, values, photos, who.username, utcnow())
        return application_view(session, get_application(session, app_id))

    return with_files(ctx.transact, ctx.uploads, work, lambda sha: _referenced(ctx, sha))


def resubmit(
    ctx: Desk,
    who: Actor,
    application_id: int,
    values: Mapping[str, str | None],
    files: Mapping[str, tuple[bytes, str]],
) -> dict[str, Any]:
    photos: dict[str, Photo] = check_photos(files, required=False)

    def work(session: Session, staging: Staging) -> dict[str, Any]:
        resubmit_application(
            session, staging, ctx.vault, application_id, values, photos, who.username, utcnow()
        )
        return application_view(session, get_application(session, application_id))

    return with_files(ctx.transact, ctx.uploads, work, lambda sha: _referenced(ctx, sha))


def decide(
    ctx: Desk,
    who: Actor,
    application_id: int,
    action: str,
    reason: str | None = None,
    fee_plan: Mapping[str, Any] | None = None,
    terminals: int = 1,
    mac_algorithm: str = DEFAULT_MAC_ALGORITHM,
) -> dict[str, Any]:
    """A reviewer's action on an application; returns the application as it now is."""
    if action not in REVIEW_ACTIONS:
        raise FieldError("action", f"must be one of {', '.join(REVIEW_ACTIONS)}, got {action!r}")
    plan = fee_plan_from(fee_plan or {}) if action == "approve" else None

    def work(session: Session) -> dict[str, Any]:
        now = utcnow()
        if action == "start_review":
            review.start_review(session, application_id, who.username, now)
        elif action == "request_more_info":
            review.request_more_info(session, application_id, reason or "", who.username, now)
        elif action == "reject":
            review.reject(session, application_id, reason or "", who.username, now)
        else:
            assert plan is not None
            review.approve(
                session, ctx.vault, application_id, plan, terminals, who.username, now, mac_algorithm
            )
        return application_view(session, get_application(session, application_id))

    return ctx.transact(work)


def _lifecycle(
    ctx: Desk,
    who: Actor,
    key: str,
    action: str,
    reason: str | None,
    steps: tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]],
    view: Callable[[Session, str], dict[str, Any]],
) -> dict[str, Any]:
    """Suspend, resume or close one merchant or terminal (`steps` in that order); returns it as it now is."""
    if action not in LIFECYCLE_ACTIONS:
        raise FieldError("action", f"must be one of {', '.join(LIFECYCLE_ACTIONS)}, got {action!r}")
    suspend, resume, close = steps

    def work(session: Session) -> dict[str, Any]:
        if action == "suspend":
            suspend(session, key, reason or "", who.username)
        elif action == "resume":
            resume(session, key, who.username)
        else:
            close(session, key, reason or "", who.username)
        return view(session, key)

    return ctx.transact(work)


def merchant_lifecycle(ctx: Desk, who: Actor, mid: str, action: str, reason: str | None) -> dict[str, Any]:
    steps = (lifecycle.suspend_merchant, lifecycle.resume_merchant, lifecycle.close_merchant)
    return _lifecycle(ctx, who, mid, action, reason, steps, merchant_view)


def terminal_lifecycle(ctx: Desk, who: Actor, tid: str, action: str, reason: str | None) -> dict[str, Any]:
    steps = (lifecycle.suspend_terminal, lifecycle.resume_terminal, lifecycle.close_terminal)
    return _lifecycle(ctx, who, tid, action, reason, steps, terminal_view)


def provision(
    ctx: Desk, who: Actor, mid: str, count: int, mac_algorithm: str = DEFAULT_MAC_ALGORITHM
) -> list[str]:
    return ctx.transact(
        lambda s: provision_terminals(
            s, ctx.vault, get_merchant(s, mid), count, who.username, utcnow(), mac_algorithm
        )
    )


def tr31_export(ctx: Desk, who: Actor, tid: str) -> Tr31Export:
    return ctx.transact(lambda s: export_tr31(s, ctx.vault, tid, who.username, utcnow()))


def terminal_profile(ctx: Desk, who: Actor, tid: str) -> ProfileData:
    """What the terminal simulator's profile (its `TerminalState`) holds, clear TMK included; refused in
    production."""
    return ctx.transact(
        lambda s: simulator_profile(s, ctx.vault, tid, ctx.settings.env, who.username, utcnow())
    )
