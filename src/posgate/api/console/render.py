"""Rendering console pages: the labels of the chosen language, the signed-in user, a money formatter;
`LoginRequired` sends a browser to the sign-in page."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from posgate.api.auth import identify
from posgate.api.console.i18n import LANG_COOKIE, LANGUAGES, labels, pick_language
from posgate.api.context import AppContext, over_tls
from posgate.api.errors import Forbidden
from posgate.api.roles import allowed
from posgate.api.users import Principal
from posgate.money import yuan


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def console_user(request: Request, ctx: AppContext, permission: str | None = None) -> Principal:
    who = identify(request, ctx)
    if who is None or who.via != "session":
        raise LoginRequired(request.url.path)
    if permission is not None and not allowed(who.role, permission):
        raise Forbidden(f"role {who.role} may not {permission.replace('.', ': ')}")
    return who


def language(request: Request) -> str:
    return pick_language(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))


def render(
    request: Request, ctx: AppContext, template: str, status_code: int = 200, **values: Any
) -> HTMLResponse:
    lang = language(request)
    user = getattr(request.state, "principal", None)
    context = {
        "t": labels(lang),
        "lang": lang,
        "user": user,
        "yuan": yuan,
        "done": request.query_params.get("done"),
        "can_kpi": user is not None and allowed(user.role, "kpi.read"),
        "can_risk": user is not None and allowed(user.role, "risk.read"),
        **values,
    }
    response = ctx.templates.TemplateResponse(request, template, context, status_code=status_code)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", path="/", secure=over_tls(request)
        )
    return response
