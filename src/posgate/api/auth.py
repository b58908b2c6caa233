"""Who is calling and whether their role may: an API key (`Authorization: Bearer pgk_…` or `X-API-Key`)
or the console's session cookie. A cookie-authenticated request that changes something must carry the
session's CSRF token (header `X-CSRF-Token`, or the form field `csrf_token` on console forms)."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Depends, Request

from posgate.api.context import AppContext, app_context
from posgate.api.errors import Forbidden, Unauthenticated
from posgate.api.roles import allowed
from posgate.api.sessions import COOKIE_NAME, principal_for_token, read_cookie
from posgate.api.users import Principal, principal_for_api_key
from posgate.store.base import utcnow

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _api_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def identify(request: Request, ctx: AppContext) -> Principal | None:
    """The caller, or None. Cached on the request."""
    if hasattr(request.state, "principal"):
        return request.state.principal  # type: ignore[no-any-return]
    principal = None
    key = _api_key(request)
    if key:
        principal = ctx.transact(lambda s: principal_for_api_key(s, key))
        if principal is None:
            raise Unauthenticated("the API key is unknown or revoked")
    else:
        cookie = request.cookies.get(COOKIE_NAME)
        token = read_cookie(ctx.cookie_key, cookie) if cookie else None
        if token:
            principal = ctx.transact(lambda s: principal_for_token(s, token, utcnow()))
    request.state.principal = principal
    return principal


def check_csrf(principal: Principal, supplied: str | None) -> None:
    if principal.via != "session":
        return
    if not supplied or not principal.csrf_token or not hmac.compare_digest(supplied, principal.csrf_token):
        raise Forbidden("csrf_token: missing or wrong (reload the page)", "csrf_token")


def require(permission: str) -> Callable[..., Principal]:
    """A dependency: the caller, if signed in and their role has `permission`; 401 / 403 otherwise."""

    def dependency(request: Request, ctx: AppContext = Depends(app_context)) -> Principal:
        principal = identify(request, ctx)
        if principal is None:
            raise Unauthenticated("sign in (session cookie) or send an API key (Authorization: Bearer …)")
        if not allowed(principal.role, permission):
            raise Forbidden(f"role {principal.role} may not {permission.replace('.', ': ')}")
        if request.method not in SAFE_METHODS and request.url.path.startswith("/api/"):
            check_csrf(principal, request.headers.get("x-csrf-token"))
        return principal

    dependency.__name__ = f"require_{permission.replace('.', '_')}"
    return dependency
