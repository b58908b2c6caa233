"""Fuzz target: every API and console request body through the body-validation layer, the way the app reads
it: the form parser or JSON decoder of `posgate.api.inputs.CheckedRequest` (lone surrogates and NUL
refused), the route's pydantic body model, the domain checks a route makes before the store (fee plan,
password policy, role, the application form's rules, the photo checker via `read_upload`/`check_photos`),
and the rendering of every refusal as the JSON error the API answers (encoding it is what failed on a
lone surrogate).

Why this layer and not the whole app: the in-process ASGI target (`api_asgi`) runs 150-300 requests/s on
one core, too slow for a million inputs in half an hour; this one runs the same parsing and validation code
without routing, authentication and store, several thousand inputs a second.

Input: byte 0 picks the route (every route of the app that takes a body, JSON or form, in a fixed order),
byte 1 the content type (JSON, URL-encoded form, multipart with boundary `fuzz`); the rest is the body.
Contract: a body is accepted or refused with an error the app turns into a 4xx: `FieldError`
(`OnboardingError`), `InvalidText`, a pydantic `ValidationError`, a JSON decode error or a malformed form
(400); each refusal renders as one-line JSON. Anything else escaping is a bug (the app would answer 500).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from posgate.api.console import forms as console_forms
from posgate.api.errors import http_error_response, onboarding_error_response, validation_error_response
from posgate.api.inputs import CheckedRequest, InvalidText, first_bad, parse_int
from posgate.api.passwords import check_password_policy
from posgate.api.routes import admin, applications, auth, merchants, transactions
from posgate.api.users import check_role
from posgate.merchants import operations
from posgate.merchants.applications import check_photos
from posgate.merchants.errors import OnboardingError
from posgate.merchants.feeplan import MAX_CAP_FEN, MAX_PPM, fee_plan_from
from posgate.merchants.form import TEXT_FIELDS, Route, validate_form
from posgate.merchants.images import PHOTO_KINDS
from tests.fuzz._harness import INSTRUMENTED, fuzz

CONTENT_TYPES = (
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=fuzz",
)
ISSUERS = [Route("Demo Bank A", ("622999",), "debit"), Route("Demo Bank B", ("622888",), "credit")]
TODAY = dt.date(2026, 12, 1)
_LOOP = asyncio.new_event_loop()


def _routes() -> list[tuple[str, str, Any]]:
    """(method, path, JSON body type or None for a form route) of every route that takes a body."""
    found: list[tuple[str, str, Any]] = []
    for router in (
        auth.router,
        applications.router,
        merchants.router,
        transactions.router,
        admin.router,
    ):  # settlement's routes take no body
        for route in router.routes:
            if not isinstance(route, APIRoute) or route.body_field is None:
                continue
            annotation = route.body_field.field_info.annotation
            models = [a for a in (annotation, *getattr(annotation, "__args__", ())) if isinstance(a, type)]
            # FastAPI's own Body_* model stands for form fields: those routes read a form
            is_model = any(issubclass(a, BaseModel) and a.__module__.startswith("posgate") for a in models)
            found.extend(
                (method, route.path, annotation if is_model else None) for method in sorted(route.methods)
            )
    for route in console_forms.router.routes:
        if isinstance(route, APIRoute):
            found.extend((method, route.path, None) for method in sorted(route.methods))
    return sorted(found, key=lambda r: (r[1], r[0]))


ROUTES = _routes()
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(annotation: Any) -> TypeAdapter[Any]:
    if annotation not in _ADAPTERS:
        _ADAPTERS[annotation] = TypeAdapter(annotation)
    return _ADAPTERS[annotation]


def _render(response: Any) -> None:
    """The refusal as the app sends it: one-line JSON that encodes (a lone surrogate would not)."""
    body = bytes(response.body)
    document = json.loads(body)
    message = document["error"]["message"]
    assert isinstance(message, str) and message and "\n" not in message, message
    assert 400 <= response.status_code < 500, response.status_code


async def _form(body: bytes, content_type: str) -> FormData:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
        "query_string": b"",
        "app": None,  # as in the app: a malformed multipart body is HTTPException(400)
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return await CheckedRequest(scope, receive).form()


def _text(form: FormData, key: str) -> str | None:
    value = form.get(key)
    return value if isinstance(value, str) else None


def _after_model(path: str, value: Any) -> None:
    """What the route checks before it opens a unit of work."""
    if isinstance(value, applications.ApproveBody):
        plan = {
            k: getattr(value, k) for k in value.model_fields_set if k not in ("terminals", "mac_algorithm")
        }
        fee_plan_from(plan)
    elif isinstance(value, admin.NewUser):
        check_password_policy(value.password)
        check_role(value.role)
    elif isinstance(value, admin.NewApiKey):
        check_role(value.role)


def _after_form(path: str, form: FormData) -> None:
    """The console's and the API's form routes: numbers, the application form, the photos."""
    for name, high in (("mdr_debit_ppm", MAX_PPM), ("mdr_debit_cap_fen", MAX_CAP_FEN), ("count", 20)):
        if (text := _text(form, name)) and text.strip():
            parse_int(text, name, 1, high)
    if path.endswith(("/applications", "/applications/new", "/resubmit")):
        files = {}
        for kind in PHOTO_KINDS:
            upload = form.get(kind)
            if isinstance(upload, UploadFile):
                read = operations.read_upload(upload.file, upload.filename, kind)
                if read is not None:
                    files[kind] = read
        values = {key: _text(form, key) for key in TEXT_FIELDS}
        check_photos(files, required=not path.endswith("/resubmit"))
        validate_form(values, ISSUERS, TODAY)


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    _method, path, body_type = ROUTES[data[0] % len(ROUTES)]
    content_type = CONTENT_TYPES[data[1] % 3]
    body = data[2:]
    try:
        if body_type is not None and data[1] % 3 == 0:
            try:
                document = json.loads(body)
            except ValueError:
                return  # FastAPI: 422 json_invalid, or 400 for bytes that are not UTF-8
            refusal = first_bad(document)  # what CheckedRequest.json() does with the decoded body
            if refusal is not None:
                raise refusal
            value = _adapter(body_type).validate_python(document)
            if isinstance(value, BaseModel):
                _after_model(path, value)
        else:
            form = _LOOP.run_until_complete(_form(body, content_type))
            _after_form(path, form)
    except InvalidText as refusal:
        _render(http_error_response(refusal))
    except ValidationError as refusal:
        _render(validation_error_response(RequestValidationError(refusal.errors())))
    except OnboardingError as refusal:
        _render(onboarding_error_response(refusal))
    except HTTPException as refusal:  # a malformed form: FastAPI answers 400
        assert 400 <= refusal.status_code < 500, refusal


if __name__ == "__main__":
    logging.disable(logging.WARNING)  # python-multipart warns on every malformed part
    fuzz(Path(__file__).stem, one_input, (*INSTRUMENTED, "multipart"))
