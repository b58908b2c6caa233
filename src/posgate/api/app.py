"""`create_app(handle, settings)`: the REST API (OpenAPI at /docs, served with locally bundled Swagger UI
assets) and the web console in one FastAPI application.

At creation: the cookie-signing key (sealed in the keys table), the first admin (POSGATE_ADMIN_PASSWORD, or
a generated password printed once), and — unless POSGATE_ENV=production — the demo users.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from importlib import resources
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from posgate.api.audit_trail import AuditTrail, note_refusal
from posgate.api.body_limit import BodyLimit
from posgate.api.console import forms, kpi_pages, pages, risk_pages
from posgate.api.console import settlement as settlement_pages
from posgate.api.console.render import LoginRequired, render
from posgate.api.context import AppContext
from posgate.api.errors import (
    http_error_response,
    http_status,
    onboarding_error_response,
    validation_error_response,
    wants_json,
)
from posgate.api.hash_worker import HashWorker
from posgate.api.proxies import TrustedProxyHeaders
from posgate.api.routes import admin, applications, auth, kpi, merchants, qr, risk, settlement, transactions
from posgate.api.sessions import cookie_key
from posgate.api.throttle import Limits
from posgate.api.users import ensure_admin, ensure_demo_users
from posgate.config import Settings
from posgate.merchants.errors import OnboardingError
from posgate.merchants.uploads import UploadStore
from posgate.store.runtime import StoreHandle

log = logging.getLogger("posgate.api")
PACKAGE_DIR = Path(str(resources.files("posgate.api")))
CONSOLE_CSP = (
    "default-src 'self'; img-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'"
)


def _bootstrap_users(handle: StoreHandle, settings: Settings) -> None:
    generated = handle.store.transact(lambda s: ensure_admin(s, os.environ.get("POSGATE_ADMIN_PASSWORD")))
    if settings.env != "production":
        handle.store.transact(lambda s: ensure_demo_users(s, settings.env))
    if generated:
        print(
            f"posgate: created user admin with password {generated} (shown once)", file=sys.stderr, flush=True
        )


def create_app(handle: StoreHandle, settings: Settings) -> FastAPI:
    """The API and console over `handle`'s store."""
    key = handle.store.transact(lambda s: cookie_key(s, handle.vault))
    if settings.env == "production" or os.environ.get("POSGATE_ADMIN_PASSWORD"):
        _bootstrap_users(handle, settings)
    else:  # demo users first, so that the admin is the demo admin
        handle.store.transact(lambda s: ensure_demo_users(s, settings.env))
        _bootstrap_users(handle, settings)
    app = FastAPI(
        title="posgate",
        summary="Merchant onboarding, terminals, users and transactions of the posgate acquiring platform",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = AppContext(
        handle=handle,
        settings=settings,
        uploads=UploadStore(settings.data_dir / "uploads"),
        cookie_key=key,
        templates=Jinja2Templates(directory=str(PACKAGE_DIR / "templates")),
        login_limits=Limits(
            settings.login_max_failures,
            settings.login_max_failures_per_address,
            dt.timedelta(seconds=settings.login_window_s),
        ),
        hash_worker=HashWorker(settings.login_hash_workers, settings.login_hash_queue),
    )
    app.mount("/static/docs", StaticFiles(directory=str(Path(fastapi_offline.__file__).parent / "static")))
    app.mount("/static", StaticFiles(directory=str(PACKAGE_DIR / "static")), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="posgate API",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
        )

    # added before security_headers, so it runs inside it (its 401/413 get those headers), and before any
    # route reads a body
    ctx = app.state.ctx
    app.add_middleware(BodyLimit, ctx=lambda: ctx)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if settings.console_tls and settings.console_hsts_max_age_s:
            response.headers.setdefault(
                "Strict-Transport-Security", f"max-age={settings.console_hsts_max_age_s}"
            )
        if not request.url.path.startswith("/docs"):
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Content-Security-Policy", CONSOLE_CSP)
        return response

    @app.exception_handler(OnboardingError)
    async def onboarding_error(request: Request, exc: OnboardingError) -> Response:
        note_refusal(request, exc.code, exc.field)
        if wants_json(request):
            return onboarding_error_response(exc)
        if http_status(exc) == 401:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return render(request, app.state.ctx, "error.html", status_code=http_status(exc), error=str(exc))

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        note_refusal(request, "login_required", outcome="unauthenticated")
        return RedirectResponse(f"/login?next={exc.next_url}", status_code=303)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        note_refusal(request, "invalid_field")
        response = validation_error_response(exc)
        if wants_json(request):
            return response
        message = json.loads(bytes(response.body))["error"]["message"]
        return render(request, app.state.ctx, "error.html", status_code=422, error=message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        note_refusal(request, f"http_{exc.status_code}")
        if wants_json(request):
            return http_error_response(exc)
        return render(
            request, app.state.ctx, "error.html", status_code=exc.status_code, error=str(exc.detail)
        )

    for router in (
        auth.router,
        applications.router,
        merchants.router,
        transactions.router,
        settlement.router,
        admin.router,
        kpi.router,
        qr.router,
        risk.router,
    ):
        app.include_router(router)
    app.include_router(settlement_pages.router)
    app.include_router(pages.router)
    app.include_router(kpi_pages.router)
    app.include_router(risk_pages.router)
    app.include_router(forms.router)
    # last added, so outermost: it sees the refusals of the other middleware too
    app.add_middleware(AuditTrail, ctx=app.state.ctx, routes=app.router.routes)
    # outside even the audit trail: every layer sees the caller's address as trusted_proxies resolve it
    app.add_middleware(TrustedProxyHeaders, trusted=settings.trusted_proxies)
    return app
