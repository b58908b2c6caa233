"""Every console action in the audit trail: an ASGI middleware that records each state-changing request
(POST, PUT, PATCH, DELETE) to a route of the app — API call or console form, allowed or refused — as one
`audit_events` row, committed before the answer leaves, so that no client sees an answer whose record is
missing.

The row: `actor` (the user, `api-key:<prefix>`, the username a sign-in tried, or `anonymous`), `action`
(`api_call` for `/api/…`, else `console_form`), subject kind `route` and subject ref `"POST /api/…/{mid}"`
(the route's template, never the raw path), and a detail of `role`, `via` (session · api_key), `target`
(the path parameters), `outcome`, `status`, `reason` (the error code and field of a refusal) and `ip` (the
source address as `client_ip` sees it). Outcomes: `done` (2xx, 3xx), `unauthenticated` (401, or a console
form sent to the sign-in page), `refused` (403: role or CSRF token), `throttled` (429), `rejected` (any
other 4xx), `failed` (5xx or an exception).

The domain's own records (`submit`, `approve`, `suspend`, `key_stored` …) are written in the unit of work of
the change and say what changed; these say who asked for what, from where, and what they were answered.
Neither holds card data, PIN blocks or keys: target values are masked (`mask_card_data`, and any run of 16
or more hex digits), except a MID that names an existing merchant; bodies are never read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from posgate.api.context import AppContext
from posgate.errors import mask_card_data
from posgate.store.audit import audit
from posgate.store.models import Merchant

log = logging.getLogger("posgate.api.audit")
CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{16,}")
_MID = re.compile(r"\d{15}")


def client_ip(request: Request) -> str:
    """The caller's address as the server sees it (after the trusted proxies' headers, `api/proxies.py`)."""
    return request.client.host if request.client else "unknown"


def note_actor(request: Request, username: str, role: str | None = None) -> None:
    """Who a request says it is before it is signed in (the username a sign-in tries; with `role`, the
    user it signed in)."""
    request.state.audit_actor = username
    request.state.audit_role = role


def note_refusal(request: Request, code: str, field: str | None = None, outcome: str | None = None) -> None:
    """Why a request was refused (an error's code and field), for its audit record; `outcome` overrides
    the one its status gives (a console form sent to the sign-in page is `unauthenticated`)."""
    request.state.audit_reason = f"{code}:{field}" if field else code
    if outcome is not None:
        request.state.audit_outcome = outcome


def outcome_of(status: int) -> str:
    """
    >>> [outcome_of(s) for s in (200, 303, 401, 403, 409, 429, 500)]
    ['done', 'done', 'unauthenticated', 'refused', 'rejected', 'throttled', 'failed']
    """
    if status < 400:
        return "done"
    return {401: "unauthenticated", 403: "refused", 429: "throttled"}.get(
        status, "failed" if status >= 500 else "rejected"
    )


def safe_value(value: object) -> str:
    """A path parameter as the trail may keep it: card numbers masked, long hex runs (a PIN block, a key)
    replaced, at most 64 characters.

    >>> safe_value("6229990000000012"), safe_value("0123456789ABCDEF0123456789ABCDEF"), safe_value(7)
    ('622999******0012', '[32 hex digits]', '7')
    """
    text = mask_card_data(str(value))
    return _HEX_RUN.sub(lambda m: f"[{len(m.group())} hex digits]", text)[:64]


def _target(session: Session, params: dict[str, Any]) -> dict[str, str]:
    target = {}
    for name, value in params.items():
        text = str(value)
        known_mid = (
            name == "mid"
            and _MID.fullmatch(text) is not None
            and session.scalar(select(Merchant.id).where(Merchant.mid == text)) is not None
        )
        target[name] = text if known_mid else safe_value(text)
    return target


def route_table(routes: Sequence[BaseRoute]) -> list[Any]:
    """The app's endpoints with their methods, flattened (FastAPI ≥ 0.16x keeps included routers as one
    entry each; `iter_route_contexts` opens them). Mounts (static files) are left out: they change
    nothing."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: the routes are already flat
        flat: Sequence[Any] = routes
    else:
        flat = list(iter_route_contexts(routes))
    return [route for route in flat if getattr(route, "methods", None) and getattr(route, "path", None)]


def _match(routes: Sequence[Any], scope: Scope) -> tuple[str, dict[str, Any]] | None:
    """The route template and path parameters of the route `scope` asks for (a full match, else one
    that matches the path but not the method); None when no route has the path."""
    partial = None
    for route in routes:
        path = route.path
        match, child = route.matches(scope)
        if match == Match.FULL:
            return path, child.get("path_params", {})
        if match == Match.PARTIAL and partial is None:
            partial = path, child.get("path_params", {})
    return partial


class AuditTrail:
    """The middleware (outermost, so that refusals before routing are recorded too)."""

    def __init__(self, app: ASGIApp, ctx: AppContext, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.ctx = ctx
        self._routes = routes
        self._table: list[Any] | None = None

    @property
    def routes(self) -> list[Any]:
        if self._table is None:  # at the first request: every router is included by then
            self._table = route_table(self._routes)
        return self._table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in CHANGING_METHODS:
            await self.app(scope, receive, send)
            return
        matched = _match(self.routes, scope)
        if matched is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        recorded = False

        async def record(status: int) -> None:
            nonlocal recorded
            recorded = True
            try:
                await run_in_threadpool(self._record, request, scope["method"], matched, status)
            except Exception:  # the action's own unit of work has committed; say so, do not hide the answer
                log.exception("audit record of %s %s not written", scope["method"], matched[0])

        async def send_recorded(message: Message) -> None:
            if message["type"] == "http.response.start" and not recorded:
                await record(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_recorded)
        except Exception:
            if not recorded:
                await record(500)
            raise

    def _record(
        self, request: Request, method: str, matched: tuple[str, dict[str, Any]], status: int
    ) -> None:
        template, params = matched
        state = request.state
        principal = getattr(state, "principal", None)
        if principal is not None:
            actor, role, via = principal.username, principal.role, principal.via
        else:
            tried = getattr(state, "audit_actor", None)
            actor, via = (safe_value(tried) if tried else "anonymous"), None
            role = getattr(state, "audit_role", None)
        outcome = getattr(state, "audit_outcome", None) or outcome_of(status)
        reason = getattr(state, "audit_reason", None)

        def write(session: Session) -> None:
            audit(
                session,
                actor[:64],
                "api_call" if template.startswith("/api/") else "console_form",
                "route",
                f"{method} {template}"[:64],
                role=role,
                via=via,
                target=_target(session, params),
                outcome=outcome,
                status=status,
                reason=safe_value(reason) if reason else None,
                ip=safe_value(client_ip(request)),
            )

        self.ctx.transact(write)
