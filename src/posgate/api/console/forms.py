"""Console forms (POST, each with the session's CSRF token): sign in and out, file an application,
resubmit it, the reviewer's decisions, merchant and terminal lifecycle, provisioning, TR-31 export and the
simulator profile download. A refusal shows the page again with the message and the error's status."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from posgate.api.audit_trail import client_ip, note_actor
from posgate.api.auth import check_csrf
from posgate.api.console import pages
from posgate.api.console.render import console_user, render
from posgate.api.context import AppContext, app_context, over_tls
from posgate.api.errors import Overloaded, RateLimited, Unauthenticated, http_status
from posgate.api.inputs import CheckedRoute, Id, parse_int
from posgate.api.login import login, logout
from posgate.api.routes.auth import set_session_cookie
from posgate.api.sessions import COOKIE_NAME
from posgate.merchants import operations
from posgate.merchants.errors import OnboardingError
from posgate.merchants.feeplan import MAX_CAP_FEN, MAX_PPM
from posgate.merchants.form import TEXT_FIELDS
from posgate.merchants.images import PHOTO_KINDS
from posgate.merchants.provisioning import MAX_TERMINALS_PER_REQUEST
from posgate.terminal.state import TerminalState

router = APIRouter(include_in_schema=False, route_class=CheckedRoute)
Ctx = Annotated[AppContext, Depends(app_context)]


def _text(form: FormData, key: str) -> str | None:
    value = form.get(key)
    return value if isinstance(value, str) else None


def _files(form: FormData) -> dict[str, tuple[bytes, str]]:
    files = {}
    for kind in PHOTO_KINDS:
        upload = form.get(kind)
        if isinstance(upload, UploadFile):
            read = operations.read_upload(upload.file, upload.filename, kind)
            if read is not None:
                files[kind] = read
    return files


def _int(form: FormData, key: str, low: int, high: int, default: int | None = None) -> int | None:
    text = (_text(form, key) or "").strip()
    if not text:
        return default
    return parse_int(text, key, low, high)


def _see(url: str, done: str | None = None) -> RedirectResponse:
    return RedirectResponse(f"{url}?done={done}" if done else url, status_code=303)


async def _guarded_form(request: Request, ctx: AppContext, permission: str) -> tuple[Any, FormData]:
    who = await run_in_threadpool(console_user, request, ctx, permission)
    form = await request.form()
    check_csrf(who, _text(form, "csrf_token"))
    return who, form


@router.post("/login", response_class=HTMLResponse)
async def login_form(request: Request, ctx: Ctx) -> Response:
    form = await request.form()
    next_url = _text(form, "next") or "/"
    next_url = next_url if next_url.startswith("/") and not next_url.startswith("//") else "/"
    note_actor(request, _text(form, "username") or "")
    try:
        signed = await run_in_threadpool(
            login, ctx, _text(form, "username") or "", _text(form, "password") or "", client_ip(request)
        )
    except (Unauthenticated, RateLimited, Overloaded) as exc:
        page = render(
            request, ctx, "login.html", status_code=http_status(exc), error=str(exc), next_url=next_url
        )
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            page.headers["Retry-After"] = str(retry_after)
        return page
    note_actor(request, signed.username, signed.role)
    response = RedirectResponse(next_url, status_code=303)
    set_session_cookie(response, request, signed.cookie)
    return response


@router.post("/logout")
async def logout_form(request: Request, ctx: Ctx) -> Response:
    who, _form = await _guarded_form(request, ctx, "reference.read")
    await run_in_threadpool(logout, ctx, who)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/", secure=over_tls(request), httponly=True)
    return response


@router.post("/applications/new")
async def new_application(request: Request, ctx: Ctx) -> Response:
    who, form = await _guarded_form(request, ctx, "applications.create")
    values = {key: _text(form, key) for key in TEXT_FIELDS}
    try:
        view = await run_in_threadpool(lambda: operations.submit(ctx, who, values, _files(form)))
    except OnboardingError as exc:
        safe = {k: v for k, v in values.items() if k not in ("settlement_card",)}
        return pages.new_application_page(request, ctx, safe, str(exc), http_status(exc))
    return _see(f"/applications/{view['id']}", "submit")


@router.post("/applications/{application_id}/resubmit")
async def resubmit(request: Request, ctx: Ctx, application_id: Id) -> Response:
    who, form = await _guarded_form(request, ctx, "applications.create")
    values = {key: v for key in TEXT_FIELDS if (v := _text(form, key))}
    try:
        await run_in_threadpool(lambda: operations.resubmit(ctx, who, application_id, values, _files(form)))
    except OnboardingError as exc:
        return await run_in_threadpool(
            pages.application_page, request, ctx, application_id, str(exc), http_status(exc)
        )
    return _see(f"/applications/{application_id}", "resubmit")


@router.post("/applications/{application_id}/decide")
async def decide(request: Request, ctx: Ctx, application_id: Id) -> Response:
    who, form = await _guarded_form(request, ctx, "applications.review")
    action = _text(form, "action") or ""
    try:
        plan: dict[str, Any] = {}
        terminals = 1
        if action == "approve":
            plan = {
                "mdr_debit_ppm": _int(form, "mdr_debit_ppm", 1, MAX_PPM),
                "mdr_debit_cap_fen": _int(form, "mdr_debit_cap_fen", 1, MAX_CAP_FEN),
                "mdr_credit_ppm": _int(form, "mdr_credit_ppm", 1, MAX_PPM),
                "mdr_wallet_ppm": _int(form, "mdr_wallet_ppm", 1, MAX_PPM),
                "settlement_cycle": _text(form, "settlement_cycle") or "T+1",
                "d0_allowed": _text(form, "d0_allowed") == "true",
            }
            terminals = _int(form, "terminals", 1, MAX_TERMINALS_PER_REQUEST, 1) or 0
        await run_in_threadpool(
            lambda: operations.decide(
                ctx, who, application_id, action, _text(form, "reason"), plan, terminals
            )
        )
    except OnboardingError as exc:
        return await run_in_threadpool(
            pages.application_page, request, ctx, application_id, str(exc), http_status(exc)
        )
    return _see(f"/applications/{application_id}", action)


async def _lifecycle_form(
    request: Request,
    ctx: AppContext,
    key: str,
    change: Callable[..., Any],
    page: Callable[..., Response],
    url: str,
) -> Response:
    """A merchant's or terminal's lifecycle form: `change` it, or show its `page` again with the refusal."""
    who, form = await _guarded_form(request, ctx, "merchants.lifecycle")
    action = _text(form, "action") or ""
    try:
        await run_in_threadpool(change, ctx, who, key, action, _text(form, "reason"))
    except OnboardingError as exc:
        return await run_in_threadpool(page, request, ctx, key, str(exc), http_status(exc))
    return _see(url, action)


@router.post("/merchants/{mid}/lifecycle")
async def merchant_lifecycle(request: Request, ctx: Ctx, mid: str) -> Response:
    return await _lifecycle_form(
        request, ctx, mid, operations.merchant_lifecycle, pages.merchant_page, f"/merchants/{mid}"
    )


@router.post("/merchants/{mid}/terminals")
async def provision(request: Request, ctx: Ctx, mid: str) -> Response:
    who, form = await _guarded_form(request, ctx, "terminals.provision")
    try:
        count = _int(form, "count", 1, MAX_TERMINALS_PER_REQUEST, 1) or 0
        await run_in_threadpool(operations.provision, ctx, who, mid, count)
    except OnboardingError as exc:
        return await run_in_threadpool(pages.merchant_page, request, ctx, mid, str(exc), http_status(exc))
    return _see(f"/merchants/{mid}", "provision")


@router.post("/terminals/{tid}/lifecycle")
async def terminal_lifecycle(request: Request, ctx: Ctx, tid: str) -> Response:
    return await _lifecycle_form(
        request, ctx, tid, operations.terminal_lifecycle, pages.terminal_page, f"/terminals/{tid}"
    )


@router.post("/terminals/{tid}/tr31", response_class=HTMLResponse)
async def tr31(request: Request, ctx: Ctx, tid: str) -> Response:
    who, _form = await _guarded_form(request, ctx, "terminals.keys")
    try:
        export = await run_in_threadpool(operations.tr31_export, ctx, who, tid)
    except OnboardingError as exc:
        return await run_in_threadpool(pages.terminal_page, request, ctx, tid, str(exc), http_status(exc))
    return await run_in_threadpool(lambda: pages.terminal_page(request, ctx, tid, export=export))


@router.post("/terminals/{tid}/profile")
async def profile(request: Request, ctx: Ctx, tid: str) -> Response:
    """The simulator's TerminalState file (clear TMK): test deployments only."""
    who, _form = await _guarded_form(request, ctx, "terminals.keys")
    profile = await run_in_threadpool(operations.terminal_profile, ctx, who, tid)
    state = TerminalState(
        tid=profile.tid,
        mid=profile.mid,
        tmk_hex=profile.tmk_hex,
        nii=profile.nii,
        mac_algorithm=profile.mac_algorithm,
    )
    return Response(
        json.dumps(state.to_dict(), indent=2, sort_keys=True) + "\n",
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="terminal-{tid}.json"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
