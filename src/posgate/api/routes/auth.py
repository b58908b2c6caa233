"""`/api/auth`: console sign-in (sets the session cookie), sign-out, who am I."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from posgate.api.audit_trail import client_ip, note_actor
from posgate.api.auth import check_csrf, identify
from posgate.api.context import AppContext, app_context, over_tls
from posgate.api.errors import Unauthenticated
from posgate.api.inputs import CheckedRoute
from posgate.api.login import login, logout
from posgate.api.sessions import COOKIE_NAME, SESSION_TTL

router = APIRouter(prefix="/api/auth", tags=["auth"], route_class=CheckedRoute)


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


def set_session_cookie(response: Response, request: Request, cookie: str) -> None:
    response.set_cookie(
        COOKIE_NAME,
        cookie,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=over_tls(request),
        path="/",
    )


@router.post("/login", summary="Sign in (console session cookie); 429 after 5 failures in 5 minutes")
def api_login(
    body: LoginBody, request: Request, response: Response, ctx: AppContext = Depends(app_context)
) -> dict[str, Any]:
    note_actor(request, body.username)
    signed = login(ctx, body.username, body.password, client_ip(request))
    note_actor(request, signed.username, signed.role)
    set_session_cookie(response, request, signed.cookie)
    return {"username": signed.username, "role": signed.role, "csrf_token": signed.csrf_token}


@router.post("/logout", summary="Sign out (ends the session everywhere; a session sends its X-CSRF-Token)")
def api_logout(
    request: Request, response: Response, ctx: AppContext = Depends(app_context)
) -> dict[str, Any]:
    who = identify(request, ctx)
    if who is not None:
        check_csrf(who, request.headers.get("x-csrf-token"))
        logout(ctx, who)
    response.delete_cookie(COOKIE_NAME, path="/", secure=over_tls(request), httponly=True)
    return {"signed_out": True}


@router.get("/me", summary="The caller: username, role, and the CSRF token of a console session")
def api_me(request: Request, ctx: AppContext = Depends(app_context)) -> dict[str, Any]:
    who = identify(request, ctx)
    if who is None:
        raise Unauthenticated("not signed in")
    return {"username": who.username, "role": who.role, "via": who.via, "csrf_token": who.csrf_token}
