"""Hostile input to the REST API and the console forms, over real HTTP on loopback (issue 9, finding 6):
integers beyond 64 bits in every integer path parameter, body field and console number input, and text
that is not valid Unicode (a lone surrogate escape `"\\ud800"`) or carries NUL in every JSON string, key,
form field, query and path parameter. Every one must get a 4xx naming the field, never a 500.

The routes and fields are found, not listed: the integer path parameters from the app's routes (API and
console), the body fields from the OpenAPI document, the console's number inputs from its pages."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from tests.integration.live_console import LiveConsole, csrf_of, live_console

HUGE = (2**63, 2**64 + 1, -(2**63) - 1, 10**40)
BAD_TEXT = {"lone surrogate": "\ud800", "low surrogate": "x\udfffy", "NUL": "a\x00b"}


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveConsole]:
    with live_console(tmp_path_factory.mktemp("console")) as live:
        yield live


@pytest.fixture(scope="module")
def admin_key(console: LiveConsole) -> str:
    return console.api_key("admin")


def _int_path_params(route: APIRoute) -> list[str]:
    params = route.dependant.path_params
    return [p.name for p in params if p.field_info.annotation is int]


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"{(\w+)}", lambda m: values.get(m[1], "x"), path)


def _all_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, also those of included routers (FastAPI keeps those by reference)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from _all_routes(included.routes)


def _routes_with_int_params(console: LiveConsole) -> list[tuple[APIRoute, str, str]]:
    found = []
    for route in _all_routes(console.app.routes):
        for name in _int_path_params(route):
            found.extend((route, method, name) for method in sorted(route.methods))
    return found


def _refused_naming(response: Any, field: str, what: str) -> None:
    assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    assert field in response.text, f"{what}: the answer does not name {field!r}: {response.text[:300]}"


def test_every_integer_path_parameter_refuses_ids_beyond_64_bits(console: LiveConsole) -> None:
    found = _routes_with_int_params(console)
    # at least: application (API: read, upload, decisions; console: page, forms) and API key revocation
    assert len({route.path for route, _m, _n in found}) >= 10, found
    with console.signed_in("admin") as (client, csrf):
        for route, method, name in found:
            for value in HUGE:
                url = _fill(route.path_format, {name: str(value), "kind": "storefront"})
                response = client.request(
                    method, url, headers={"X-CSRF-Token": csrf}, data={"csrf_token": csrf}
                )
                _refused_naming(response, name, f"{method} {url}")


def _schema(openapi: dict[str, Any], ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in ref_or_schema:
        return openapi["components"]["schemas"][ref_or_schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in ref_or_schema:  # Model | None
        for option in ref_or_schema["anyOf"]:
            if "$ref" in option:
                return _schema(openapi, option)
    return ref_or_schema


def _types(prop: dict[str, Any]) -> set[str]:
    options = prop.get("anyOf", [prop])
    return {option.get("type", "") for option in options}


def _json_bodies(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, body schema) of every operation that takes a JSON body."""
    found = []
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                found.append((method.upper(), path, _schema(openapi, content["application/json"]["schema"])))
    return found


def _form_bodies(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "multipart/form-data" in content:
                schema = _schema(openapi, content["multipart/form-data"]["schema"])
                found.append((method.upper(), path, schema))
    return found


def _valid_body(schema: dict[str, Any]) -> dict[str, Any]:
    """The body's required fields with plausible values (the test then breaks one field)."""
    samples = {"integer": 1, "string": "x", "boolean": False}
    body = {}
    for name in schema.get("required", []):
        kinds = _types(schema["properties"][name])
        body[name] = next(samples[k] for k in ("integer", "string", "boolean") if k in kinds)
    return body


@pytest.fixture(scope="module")
def targets(console: LiveConsole, admin_key: str) -> dict[str, str]:
    """Path values that name real objects: an application under review, the demo merchant and terminal."""
    mid, tid = console.a_mid_and_tid(admin_key)
    return {
        "application_id": str(console.application_under_review(admin_key)),
        "mid": mid,
        "tid": tid,
        "username": "risk",
        "key_id": "1",
        "kind": "storefront",
    }


def test_every_integer_body_field_refuses_values_beyond_64_bits(
    console: LiveConsole, admin_key: str, targets: dict[str, str]
) -> None:
    with console.client(admin_key) as client:
        openapi = client.get("/openapi.json").json()
        checked = []
        for method, path, schema in _json_bodies(openapi):
            for name, prop in schema.get("properties", {}).items():
                if "integer" not in _types(prop):
                    continue
                for value in HUGE:
                    body = {**_valid_body(schema), name: value}
                    response = client.request(method, _fill(path, targets), json=body)
                    _refused_naming(response, name, f"{method} {path} {name}={value}")
                checked.append(f"{path}:{name}")
    assert {"mdr_debit_cap_fen", "mdr_debit_ppm", "terminals", "count"} <= {c.split(":")[1] for c in checked}


def test_every_console_number_input_refuses_values_beyond_64_bits(
    console: LiveConsole, admin_key: str, targets: dict[str, str]
) -> None:
    with console.signed_in("admin") as (client, _csrf):
        pages = [f"/applications/{targets['application_id']}", f"/merchants/{targets['mid']}"]
        checked = []
        for page_url in pages:
            page = client.get(page_url).text
            for form in re.findall(r"<form\b(.*?)</form>", page, re.DOTALL):
                action = re.search(r'action="([^"]+)"', form)
                numbers = re.findall(r'<input name="(\w+)"[^>]*inputmode="numeric"', form)
                if not action or not numbers:
                    continue
                fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))
                for name in numbers:
                    for value in HUGE:
                        data = {**fields, "csrf_token": csrf_of(page), name: str(value)}
                        if "reason" in form:
                            data.setdefault("reason", "checked")
                        for button in re.findall(r'name="action" value="(\w+)"', form) or [""]:
                            response = client.post(action[1], data={**data, "action": button})
                            if button and button != "approve" and name.startswith("mdr"):
                                continue  # the plan is read only when approving
                            _refused_naming(response, name, f"POST {action[1]} {name}={value} {button}")
                    checked.append(name)
    assert {"mdr_debit_cap_fen", "mdr_debit_ppm", "terminals", "count"} <= set(checked), checked


def _raw_json(body: dict[str, Any]) -> bytes:
    """JSON text with \\uXXXX escapes for everything outside ASCII (a lone surrogate stays an escape)."""
    return json.dumps(body, ensure_ascii=True).encode()


@pytest.mark.parametrize("bad", sorted(BAD_TEXT))
def test_every_json_string_refuses_invalid_unicode_and_nul(
    console: LiveConsole, admin_key: str, targets: dict[str, str], bad: str
) -> None:
    with console.client(admin_key) as client:
        openapi = client.get("/openapi.json").json()
        checked = []
        for method, path, schema in _json_bodies(openapi):
            for name, prop in schema.get("properties", {}).items():
                if "string" not in _types(prop):
                    continue
                body = {**_valid_body(schema), name: BAD_TEXT[bad]}
                response = client.request(
                    method,
                    _fill(path, targets),
                    content=_raw_json(body),
                    headers={"Content-Type": "application/json"},
                )
                _refused_naming(response, name, f"{method} {path} {name}={bad}")
                checked.append(name)
            # a key that is not text
            body = {**_valid_body(schema), BAD_TEXT[bad]: "x"}
            response = client.request(
                method,
                _fill(path, targets),
                content=_raw_json(body),
                headers={"Content-Type": "application/json"},
            )
            assert 400 <= response.status_code < 500, f"{method} {path} bad key: {response.text[:300]}"
    assert {"reason", "label", "username", "password"} <= set(checked), checked


def test_multipart_text_and_file_names_refuse_nul(console: LiveConsole, admin_key: str) -> None:
    from posgate.tools.onboarding_data import form_values, photo_files

    with console.client(admin_key) as client:
        openapi = client.get("/openapi.json").json()
        forms = _form_bodies(openapi)
        assert forms
        for method, path, schema in forms:
            if "{" in path:
                continue
            for name, prop in schema["properties"].items():
                if prop.get("format") == "binary" or "binary" in str(prop):
                    files = photo_files(7)
                    _file_name, data, mime = files[name]
                    files[name] = ("a\x00b.jpg", data, mime)
                    response = client.request(method, path, data=form_values(), files=files)
                else:
                    response = client.request(
                        method, path, data=form_values(**{name: "a\x00b"}), files=photo_files(8)
                    )
                _refused_naming(response, name, f"{method} {path} {name} with NUL")


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/merchants/%00", "mid"),
        ("/api/terminals/12%0034", "tid"),
        ("/api/transactions?tid=%00", "tid"),
        ("/api/merchants?status=%00", "status"),
        ("/api/settlement/statement?mid=1%002", "mid"),
        ("/merchants/%00", "mid"),
        ("/transactions?mid=%00", "mid"),
    ],
)
def test_query_and_path_text_refuse_nul(console: LiveConsole, url: str, field: str) -> None:
    with console.signed_in("admin") as (client, _csrf):
        response = client.get(url)
    _refused_naming(response, field, url)


def test_console_forms_refuse_nul_in_text(console: LiveConsole, targets: dict[str, str]) -> None:
    with console.signed_in("admin") as (client, _csrf):
        url = f"/merchants/{targets['mid']}"
        csrf = csrf_of(client.get(url).text)
        response = client.post(
            f"/merchants/{targets['mid']}/lifecycle",
            data={"csrf_token": csrf, "action": "suspend", "reason": "fraud\x00"},
        )
    _refused_naming(response, "reason", "lifecycle reason with NUL")


def test_a_valid_request_still_works(console: LiveConsole, admin_key: str) -> None:
    """The checks refuse only what is broken: real Unicode (CJK, emoji as a surrogate pair) passes."""
    with console.client(admin_key) as client:
        made = client.post(
            "/api/api-keys",
            content=_raw_json({"label": "收单 😀 key", "role": "risk"}),
            headers={"Content-Type": "application/json"},
        )
        assert made.status_code == 201, made.text
        assert made.json()["label"] == "收单 😀 key"
        assert client.get(f"/api/applications/{2**63 - 1}").status_code == 404


def test_an_error_that_echoes_a_caller_value_stays_one_line(console: LiveConsole, admin_key: str) -> None:
    """Found by the api_asgi fuzzer: a username with a newline in the path came back in a two-line message."""
    with console.client(admin_key) as client:
        response = client.post("/api/users/1%0A2/deactivate")
    assert response.status_code == 404, response.text
    assert response.json()["error"]["message"] == "no user 1\\x0a2"


def test_every_route_with_input_runs_the_boundary_checks(console: LiveConsole) -> None:
    """A router added later without `route_class=CheckedRoute` would skip the checks: none may."""
    from posgate.api.inputs import CheckedRoute

    unchecked = [
        f"{sorted(route.methods)} {route.path}"
        for route in _all_routes(console.app.routes)
        if not isinstance(route, CheckedRoute) and route.path != "/docs"
    ]
    assert not unchecked, unchecked


def test_a_console_page_shows_an_out_of_range_id_on_its_error_page(console: LiveConsole) -> None:
    with console.signed_in("admin") as (client, _csrf):
        response = client.get(f"/applications/{2**64}")
    assert response.status_code == 422 and response.headers["content-type"].startswith("text/html")
    assert "application_id" in response.text


@pytest.mark.postgres
def test_nul_never_reaches_postgresql(tmp_path: Path, fresh_pg_database: str) -> None:
    """PostgreSQL refuses NUL in text (SQLite stores it): before the checks, a NUL in a key label answered
    500 there and one in a path dropped the connection."""
    with live_console(tmp_path, fresh_pg_database) as live:
        key = live.api_key("admin")
        mid, tid = live.a_mid_and_tid(key)
        with live.client(key) as client:
            for method, url, body, field in (
                ("POST", f"/api/merchants/{mid}/suspend", {"reason": "fraud\x00"}, "reason"),
                ("POST", "/api/api-keys", {"label": "a\x00b", "role": "risk"}, "label"),
                ("GET", "/api/merchants/12%003", None, "mid"),
                ("GET", f"/api/transactions?tid={tid}%00", None, "tid"),
            ):
                response = client.request(method, url, json=body)
                _refused_naming(response, field, f"{method} {url} on PostgreSQL")
            assert client.get(f"/api/merchants/{mid}").json()["status"] != "suspended"
