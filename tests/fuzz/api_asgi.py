"""Fuzz target: every request body, query string and integer or text path parameter of the REST API and the
console forms, through the whole ASGI application in-process (middleware, routing, the input checks of
`posgate.api.inputs`, FastAPI's validation, the API-key lookup, the route, the store).

The app runs on a SQLite store in /dev/shm with the demo fixture, one application under review and an admin
API key, called directly as an ASGI callable (no socket, no HTTP client). That is 150-300 requests/s on
one core: `make fuzz` caps it at RUNS_CAP inputs; the million-input run of the same bodies is the
`api_bodies` target (the body-validation layer without routing and store, thousands a second).

Input: byte 0 picks the route (every route of the app with a body or parameters, in a fixed order),
byte 1 the content type (JSON, URL-encoded form, multipart with boundary `fuzz`, none) and the path
values (real objects, or hostile ids and text); the rest is the body (for GET: the query string).
Contract: the answer is never 5xx; an /api/ answer of 4xx is the JSON error
`{"error": {"code", "message"[, "field"]}}` with a one-line message and no clear PAN.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from posgate.api.app import create_app
from posgate.api.inputs import MAX_ID
from posgate.api.users import create_api_key
from posgate.bootstrap.store import open_store
from posgate.config import Settings
from posgate.tools.onboarding_data import form_values, photo_files
from tests.fuzz._harness import INSTRUMENTED, fuzz

RUNS_CAP = 200_000
_SCRATCH = Path(
    tempfile.mkdtemp(prefix="posgate-fuzz-api-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
)
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
_CLEAR_PAN = re.compile(r"(?<!\d)\d{13,19}(?!\d)")
CONTENT_TYPES = (
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=fuzz",
    None,
)
HOSTILE_IDS = ("0", "-1", "9223372036854775807", "9223372036854775808", "1e3", "%00", "%ED%A0%80", "x" * 300)
HOSTILE_TEXT = ("%00", "%ED%A0%80", "%FF", "x" * 300, "1%0A2", "..%2F..%2Fetc", "")


class _App:
    """The app, its admin key and the path values that name real objects (built once per process)."""

    def __init__(self) -> None:
        os.environ.pop("POSGATE_ADMIN_PASSWORD", None)
        settings = Settings(data_dir=_SCRATCH / "data", env="test")
        self.handle = open_store(settings)
        self.app = create_app(self.handle, settings)
        _id, self.key = self.handle.store.transact(lambda s: create_api_key(s, "fuzz", "admin", "admin"))
        self.loop = asyncio.new_event_loop()
        self.routes = sorted(
            (method, route.path)
            for route in _all_routes(self.app.routes)
            for method in route.methods
            if "{" in route.path or method != "GET" or route.dependant.query_params
        )
        merchant = self.call("GET", "/api/merchants", b"")[1][0]
        terminals = self.call("GET", f"/api/merchants/{merchant['mid']}", b"")[1]["terminals"]
        app_id = self._file_application()
        self.real = {
            "application_id": str(app_id),
            "mid": merchant["mid"],
            "tid": terminals[0]["tid"],
            "username": "risk",
            "key_id": "1",
            "kind": "storefront",
        }

    def _file_application(self) -> int:
        body, content_type = _multipart(form_values(), photo_files(3))
        status, view = self.call("POST", "/api/applications", body, content_type)
        assert status == 201, view
        self.call("POST", f"/api/applications/{view['id']}/start-review", b"")
        return int(view["id"])

    def call(
        self, method: str, path: str, body: bytes, content_type: str | None = None, query: bytes = b""
    ) -> tuple[int, Any]:
        return self.loop.run_until_complete(self._call(method, path, body, content_type, query))

    async def _call(
        self, method: str, path: str, body: bytes, content_type: str | None, query: bytes
    ) -> tuple[int, Any]:
        headers = [(b"host", b"fuzz"), (b"authorization", f"Bearer {self.key}".encode())]
        if content_type:
            headers.append((b"content-type", content_type.encode()))
        headers.append((b"content-length", str(len(body)).encode()))
        raw_path = path.encode("latin-1")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(path),
            "raw_path": raw_path,
            "root_path": "",
            "query_string": query,
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        status = 0
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        data = b"".join(chunks)
        try:
            return status, json.loads(data) if data[:1] in (b"{", b"[") else data
        except ValueError:
            return status, data


def _all_routes(routes: list[Any]) -> list[Any]:
    from fastapi.routing import APIRoute

    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (included := getattr(route, "original_router", None)) is not None:
            found.extend(_all_routes(included.routes))
    return found


def _multipart(values: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    parts = []
    for name, value in values.items():
        parts.append(f'--fuzz\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (file_name, data, mime) in files.items():
        head = f'--fuzz\r\nContent-Disposition: form-data; name="{name}"; filename="{file_name}"\r\n'
        parts.append(head.encode() + f"Content-Type: {mime}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + b"--fuzz--\r\n", CONTENT_TYPES[2]


_STATE: _App | None = None


def _state() -> _App:
    global _STATE
    if _STATE is None:
        _STATE = _App()
    return _STATE


def _path(template: str, real: dict[str, str], choice: int) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1]
        if choice < 4 or name not in real:
            return real.get(name, "x")
        pool = HOSTILE_IDS if name in ("application_id", "key_id") else HOSTILE_TEXT
        return pool[(choice + len(name)) % len(pool)] or "x"

    return re.sub(r"{(\w+)}", value, template)


def check_answer(method: str, path: str, status: int, answer: Any, sent: bytes = b"") -> None:
    assert status and status < 500, f"{method} {path}: {status} {answer!r:.300}"
    if path.startswith("/api/") and 400 <= status < 500 and status != 405:
        assert isinstance(answer, dict) and isinstance(answer.get("error"), dict), f"{path}: {answer!r:.300}"
        message = answer["error"].get("message")
        assert isinstance(message, str) and message and "\n" not in message, f"{path}: {message!r}"
        echoed = set(re.findall(r"\d+", unquote(path) + sent.decode("latin-1"))) | {str(MAX_ID)}
        leaked = [d for d in _CLEAR_PAN.findall(message) if d not in echoed]
        assert not leaked, f"{path}: 13-19 digits it was not sent in {message!r}"


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    app = _state()
    method, template = app.routes[data[0] % len(app.routes)]
    content_type = CONTENT_TYPES[data[1] & 3]
    path = _path(template, app.real, data[1] >> 2)
    body = data[2:]
    if method in ("GET", "HEAD", "DELETE"):
        # a server accepts only printable ASCII in the request target (uvicorn answers 400 otherwise)
        query = b"".join(
            bytes([b]) if 0x21 <= b <= 0x7E and b != 0x23 else b"%%%02X" % b for b in body[:2000]
        )
        status, answer = app.call(method, path, b"", None, query)
    else:
        status, answer = app.call(method, path, body, content_type)
    check_answer(method, path, status, answer, body)


if __name__ == "__main__":
    logging.disable(logging.WARNING)  # python-multipart warns on every malformed part
    fuzz(Path(__file__).stem, one_input, (*INSTRUMENTED, "multipart"))
