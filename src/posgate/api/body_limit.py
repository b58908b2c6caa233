"""Request bodies: who may send one, and how large. ASGI middleware that runs before any body is read.

A request that carries a body (a `Content-Length` above 0 or `Transfer-Encoding: chunked`) is first
authenticated (session cookie or API key, as `auth.identify` does): without a caller it is answered 401 at
once — nothing read, nothing spooled to a temporary file. The sign-in and sign-out forms take a body
from anyone, at most `max_anonymous_request_bytes`. A signed-in caller may send `max_request_bytes`.
The limit is enforced on the declared length (413 before reading) and again while the body streams in
(chunked bodies declare none): the byte beyond the limit stops the reading, and the answer is 413 whatever
the route was doing with the body.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from posgate.api.audit_trail import note_refusal
from posgate.api.auth import identify
from posgate.api.context import AppContext
from posgate.api.errors import RequestTooLarge, Unauthenticated, onboarding_error_response

#: where a body may come before sign-in (the sign-in and sign-out forms, API and console)
ANONYMOUS_PATHS = frozenset({"/login", "/logout", "/api/auth/login", "/api/auth/logout"})
#: wallet providers' notifications: no caller to identify, each verified by the provider's signature
NOTIFY_PREFIX = "/api/qr/notify/"


class _TooLarge(Exception):
    """Raised out of `receive` into whatever was reading the body."""


def _body_expected(scope: Scope) -> tuple[bool, int | None]:
    """(does the request carry a body, its declared length)."""
    length: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            length = int(text) if text.isdigit() else None
        elif name == b"transfer-encoding":
            chunked = chunked or b"chunked" in value.lower()
    return chunked or bool(length), length


class BodyLimit:
    """See the module docstring. `ctx` gives the store (to identify the caller) and the settings."""

    def __init__(self, app: ASGIApp, ctx: Callable[[], AppContext]) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        has_body, length = _body_expected(scope)
        if not has_body:
            await self.app(scope, receive, send)
            return
        ctx = self.ctx()
        # who signs in is not who the cookie says, a provider has no API key: not identified here
        if scope["path"] in ANONYMOUS_PATHS or scope["path"].startswith(NOTIFY_PREFIX):
            limit = ctx.settings.max_anonymous_request_bytes
        else:
            try:
                principal = await run_in_threadpool(identify, Request(scope), ctx)
            except Unauthenticated as exc:
                await self._refuse(scope, receive, send, exc)
                return
            if principal is None:
                await self._refuse(scope, receive, send, Unauthenticated("sign in or send an API key first"))
                return
            limit = ctx.settings.max_request_bytes
        too_large = RequestTooLarge(f"request body is larger than {limit} bytes")
        if length is not None and length > limit:
            note_refusal(Request(scope), too_large.code)
            await onboarding_error_response(too_large)(scope, receive, send)
            return
        await self._limited(scope, receive, send, limit, too_large)

    async def _limited(
        self, scope: Scope, receive: Receive, send: Send, limit: int, too_large: RequestTooLarge
    ) -> None:
        received = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the route's answer to a body cut short is replaced by the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            pass
        except Exception:
            if not over:
                raise
        if over and not started:
            note_refusal(Request(scope), too_large.code)
            await onboarding_error_response(too_large)(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, exc: Unauthenticated) -> None:
        """401 (JSON for the API, the sign-in page for a browser), the body left unread."""
        note_refusal(Request(scope), exc.code)
        response: Response
        if scope["path"].startswith("/api/"):
            response = onboarding_error_response(exc)
        else:
            response = RedirectResponse(f"/login?next={scope['path']}", status_code=303)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
