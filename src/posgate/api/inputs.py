"""What the API and the console accept at their boundary, before any route runs: integers within the range
the store can hold, and text that is valid Unicode without NUL.

- `Id`: an integer path parameter naming a row (1 to 2⁶³ − 1, the store's BIGINT); anything else is 422
  naming the parameter, instead of an overflow in the database driver.
- `CheckedRoute` (every router's `route_class`): refuses with 422, naming the field, a JSON string or key
  holding a lone surrogate (`"\\ud800"`: Python decodes it, nothing can encode it) or NUL (PostgreSQL
  refuses it in text), the same in form fields, upload file names, query and path parameters.

The checks are pure functions of the decoded values (`bad_text`, `first_bad`), so the fuzz targets and the
unit tests call them without a server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any

from fastapi import HTTPException, Path, Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import FormData, UploadFile

from posgate.merchants.errors import FieldError

MAX_ID = 2**63 - 1  # BIGINT / SQLite INTEGER: the largest integer the store can hold

Id = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id, 1 to 2^63-1")]

_BAD = re.compile("[\x00\ud800-\udfff]")


class InvalidText(HTTPException):
    """422 for a value that is not text the store can keep; carries the field's name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(status_code=422, detail=f"{field}: {message}")
        self.field = field


def bad_text(value: str) -> str | None:
    """Why `value` is refused (None when it is fine).

    >>> bad_text("收单 😀"), bad_text("a\\x00b"), bad_text("\\ud800")
    (None, 'contains NUL (character 2)', 'is not valid Unicode (a lone surrogate at character 1)')
    """
    match = _BAD.search(value)
    if match is None:
        return None
    where = f"character {match.start() + 1}"
    if match.group() == "\x00":
        return f"contains NUL ({where})"
    return f"is not valid Unicode (a lone surrogate at {where})"


def _walk(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str, bool]]:
    """(path, text, is_key) of every string in a decoded JSON document."""
    if isinstance(value, str):
        yield path, value, False
    elif isinstance(value, dict):
        for key, item in value.items():
            yield path, key, True
            yield from _walk(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, str(index)))


def _name(path: tuple[str, ...]) -> str:
    return ".".join(part if bad_text(part) is None else "?" for part in path) or "body"


def first_bad(document: Any) -> InvalidText | None:
    """The refusal of the first bad string or key in a decoded JSON document, naming where it is.

    >>> str(first_bad({"reason": "\\ud800"}).detail), first_bad({"ok": ["fine", 1]}) is None
    ('reason: is not valid Unicode (a lone surrogate at character 1)', True)
    """
    for path, text, is_key in _walk(document, ()):
        why = bad_text(text)
        if why is not None:
            if is_key:
                return InvalidText(_name(path) if path else "body", f"a key {why}")
            return InvalidText(_name(path), why)
    return None


def check_form(form: FormData) -> None:
    """Form fields (names and values) and upload file names."""
    for key, value in form.multi_items():
        if (why := bad_text(key)) is not None:
            raise InvalidText("form", f"a field name {why}")
        if isinstance(value, UploadFile):
            if value.filename is not None and (why := bad_text(value.filename)) is not None:
                raise InvalidText(key, f"the file name {why}")
        elif (why := bad_text(value)) is not None:
            raise InvalidText(key, why)


def check_params(request: Request) -> None:
    """Path and query parameters (the server decodes %-escapes, so NUL can arrive here)."""
    for key, value in request.path_params.items():
        if isinstance(value, str) and (why := bad_text(value)) is not None:
            raise InvalidText(key, why)
    for key, value in request.query_params.multi_items():
        if (why := bad_text(key)) is not None:
            raise InvalidText("query", f"a parameter name {why}")
        if (why := bad_text(value)) is not None:
            raise InvalidText(key, why)


class CheckedRequest(Request):
    """A request whose JSON body and form are checked as they are read (by FastAPI or by a route)."""

    async def json(self) -> Any:
        document = await super().json()
        refusal = first_bad(document)
        if refusal is not None:
            raise refusal
        return document

    async def _get_form(self, **limits: Any) -> FormData:
        form = await super()._get_form(**limits)
        check_form(form)
        return form


class CheckedRoute(APIRoute):
    """An API route whose parameters, JSON body and form pass the checks above before the route runs."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            check_params(request)
            return await handler(CheckedRequest(request.scope, request.receive))

        return checked


def parse_int(text: str, field: str, low: int, high: int) -> int:
    """A whole number from form text, `low` to `high`, or `FieldError` naming the field.

    >>> parse_int(" 42 ", "count", 1, 20)
    Traceback (most recent call last):
    ...
    posgate.merchants.errors.FieldError: count: must be 1 to 20, got 42
    """
    try:
        value = int(text.strip())
    except ValueError:
        raise FieldError(field, f"must be a whole number, got {text[:40]!r}") from None
    if not low <= value <= high:
        shown = str(value) if len(str(value)) <= 24 else f"a number of {len(str(value))} digits"
        raise FieldError(field, f"must be {low} to {high}, got {shown}")
    return value
