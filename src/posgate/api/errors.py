"""Errors as the API answers them: `{"error": {"code", "field", "message"}}` with the HTTP status
`http_status` gives: the API's own errors carry theirs (401/403 auth and role, 413 request too large, 429
login rate limit and 503 too many password checks at once, both with Retry-After); the onboarding domain's
carry none and are mapped here by class (`DOMAIN_STATUS`: 422 invalid field, 413 upload too large, 409 state
conflict, 404 not found, 403 refused in this deployment). The console shows the same message on its
pages."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from posgate.merchants.errors import FieldError, NotFound, OnboardingError, StateConflict, UploadTooLarge
from posgate.merchants.provisioning import Refused


class Unauthenticated(OnboardingError):
    status = 401
    code = "unauthenticated"


class Forbidden(OnboardingError):
    status = 403
    code = "forbidden"


class RateLimited(OnboardingError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, field: str | None = None, retry_after_s: int | None = None) -> None:
        super().__init__(message, field)
        self.retry_after_s = retry_after_s


class Overloaded(OnboardingError):
    """Too much work of one kind at once (password checks): 503 with Retry-After."""

    status = 503
    code = "overloaded"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTooLarge(OnboardingError):
    status = 413
    code = "request_too_large"


# the onboarding domain's refusals, most specific first (a class not listed takes its nearest base's)
DOMAIN_STATUS: dict[type[OnboardingError], int] = {
    UploadTooLarge: 413,
    FieldError: 422,
    StateConflict: 409,
    NotFound: 404,
    Refused: 403,
    OnboardingError: 400,
}


def http_status(exc: OnboardingError) -> int:
    """The HTTP status of a refusal: an API error's own `status`, else the domain class's mapping."""
    own = getattr(type(exc), "status", None)
    if isinstance(own, int):
        return own
    for cls in type(exc).__mro__:
        if cls in DOMAIN_STATUS:
            return DOMAIN_STATUS[cls]
    return 400


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    r"""`text` with control characters (newlines included) written as escapes: an error message that
    echoes a caller's input stays one line.

    >>> one_line("no user 1\n2")
    'no user 1\\x0a2'
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": one_line(message)}
    if field is not None:
        error["field"] = one_line(field)
    return {"error": error}


def onboarding_error_response(exc: OnboardingError) -> JSONResponse:
    status = http_status(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(error_body(exc.code, str(exc), exc.field), status_code=status, headers=headers)


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's own validation (a JSON body of the wrong shape): the first problem, naming the field."""
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "form")]
    field = ".".join(loc) or "body"
    return JSONResponse(
        error_body("invalid_field", f"{field}: {first.get('msg', 'invalid')}", field), status_code=422
    )


def http_error_response(exc: StarletteHTTPException) -> JSONResponse:
    codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated", 403: "forbidden"}
    field = getattr(exc, "field", None)  # posgate.api.inputs.InvalidText
    code = "invalid_field" if field else codes.get(exc.status_code, "http_error")
    return JSONResponse(error_body(code, str(exc.detail), field), status_code=exc.status_code)


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path in ("/openapi.json",)
