"""`GET /api/kpi/...` over a seeded store: the Contract's keys, the same object as `posgate kpi --json`, and
a partner bank's user and key held to their own issuer on every KPI route — asking for another bank's
numbers is 403, asking for none gives their own, never the acquirer's total."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from posgate.api.app import create_app
from posgate.bootstrap.store import open_store
from posgate.cli import app as cli_app
from posgate.config import Settings
from posgate.kpi.history import seed_history
from posgate.store.runtime import StoreHandle
from posgate.tools.onboarding_data import sign_in

END = dt.date(2026, 11, 30)
PERIOD = {"from": "2026-11-17", "to": "2026-11-30"}
BANK_A, BANK_B = "Demo Bank A", "Demo Bank B"
CONTRACT_KEYS = {
    "approved_count",
    "approved_amount_fen",
    "declined_count",
    "approval_rate",
    "active_terminals",
    "average_ticket_fen",
    "by_response_code",
}


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[TestClient, StoreHandle, Settings]]:
    settings = Settings(data_dir=tmp_path / "data", env="test")
    handle = open_store(settings)  # the demo fixture: its two banks are the partner banks
    seed_history(handle.store, handle.vault, days=14, transactions=2000, env="test", end=END)
    with TestClient(create_app(handle, settings)) as client:
        yield client, handle, settings
    handle.store.close()


def _kpi_routes(client: TestClient) -> list[str]:
    routes = [p for p in client.app.openapi()["paths"] if p.startswith("/api/kpi/")]
    assert len(routes) >= 4
    return routes


def _bank_key(client: TestClient, issuer: str) -> dict[str, str]:
    admin = sign_in(client, "admin")
    made = client.post(
        "/api/api-keys", json={"label": "bank", "role": "bank", "issuer": issuer}, headers=admin
    )
    assert made.status_code == 201, made.text
    client.post("/api/auth/logout", headers=admin)
    client.cookies.clear()
    return {"Authorization": f"Bearer {made.json()['key']}"}


def test_summary_has_the_contract_keys_and_equals_the_command_line(seeded) -> None:  # type: ignore[no-untyped-def]
    client, _handle, settings = seeded
    sign_in(client, "finance")
    got = client.get("/api/kpi/summary", params=PERIOD)
    assert got.status_code == 200, got.text
    body = got.json()
    assert set(body) >= CONTRACT_KEYS
    assert 0 < body["approval_rate"] < 1 and body["approved_count"] > 0
    assert sum(body["by_response_code"].values()) >= body["approved_count"] + body["declined_count"]
    printed = CliRunner().invoke(
        cli_app,
        [
            "kpi",
            "--from",
            PERIOD["from"],
            "--to",
            PERIOD["to"],
            "--json",
            "--data-dir",
            str(settings.data_dir),
        ],
        env={"POSGATE_ENV": "test"},
    )
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == body


def test_a_bank_key_sees_only_its_own_issuer_on_every_kpi_route(seeded) -> None:  # type: ignore[no-untyped-def]
    client, _handle, _settings = seeded
    sign_in(client, "admin")
    own = client.get("/api/kpi/summary", params={**PERIOD, "issuer": BANK_A}).json()
    everyone = client.get("/api/kpi/summary", params=PERIOD).json()
    assert 0 < own["approved_count"] < everyone["approved_count"]
    client.cookies.clear()
    bank = _bank_key(client, BANK_A)
    for route in _kpi_routes(client):
        other = client.get(route, params={**PERIOD, "issuer": BANK_B}, headers=bank)
        assert other.status_code == 403, (route, other.status_code)
        assert client.get(route, params=PERIOD, headers=bank).status_code == 200, route
    mine = client.get("/api/kpi/summary", params=PERIOD, headers=bank).json()
    assert mine["approved_count"] == own["approved_count"]
    assert mine["by_response_code"] == own["by_response_code"]
    mix = client.get("/api/kpi/breakdowns", params=PERIOD, headers=bank).json()
    assert set(mix["issuer_mix"]) == {BANK_A} and set(mix["declines_by_issuer"]) <= {BANK_A}
    # nor any other route: transactions, merchants, users are not a bank's
    for url in ("/api/transactions", "/api/merchants", "/api/users", "/api/applications"):
        assert client.get(url, headers=bank).status_code == 403, url


def test_a_bank_user_signed_in_is_held_to_its_issuer_too(seeded) -> None:  # type: ignore[no-untyped-def]
    client, _handle, _settings = seeded
    admin = sign_in(client, "admin")
    body = {"username": "bank_a", "password": "correct horse battery 9", "role": "bank", "issuer": BANK_A}
    made = client.post("/api/users", json=body, headers=admin)
    assert made.status_code == 201, made.text
    refused = client.post("/api/users", json={**body, "username": "bank_x", "issuer": None}, headers=admin)
    assert refused.status_code in (400, 422), refused.text  # a bank user must name its issuer
    client.cookies.clear()
    sign_in(client, "bank_a", "correct horse battery 9")
    for route in _kpi_routes(client):
        assert client.get(route, params={**PERIOD, "issuer": BANK_B}).status_code == 403, route
    mine = client.get("/api/kpi/breakdowns", params=PERIOD).json()
    assert set(mine["issuer_mix"]) == {BANK_A}
    assert client.get("/").status_code == 403  # the acquirer's dashboard is not a bank's


def test_the_dashboard_page_serves_echarts_itself(seeded) -> None:  # type: ignore[no-untyped-def]
    client, _handle, _settings = seeded
    sign_in(client, "finance")
    page = client.get("/kpi")
    assert page.status_code == 200
    assert '<script src="/static/echarts.min.js">' in page.text and "https://" not in page.text
    assert 'id="nav-kpi"' in page.text
    script = client.get("/static/echarts.min.js")
    assert script.status_code == 200 and len(script.content) > 500_000
    assert client.get("/static/kpi.js").status_code == 200
    client.cookies.clear()
    sign_in(client, "reviewer")  # no kpi.read: no link, and the page is refused
    assert 'id="nav-kpi"' not in client.get("/merchants").text
    assert client.get("/kpi").status_code == 403


def test_a_bank_session_gets_no_other_page_or_route(seeded) -> None:  # type: ignore[no-untyped-def]
    """Every GET route without a path parameter, as a signed-in bank user: only its KPI page and KPI
    numbers, sign-in pages, reference data and static files answer; everything else is 403."""
    client, _handle, _settings = seeded
    admin = sign_in(client, "admin")
    body = {"username": "bank_b", "password": "correct horse battery 9", "role": "bank", "issuer": BANK_B}
    assert client.post("/api/users", json=body, headers=admin).status_code == 201
    client.cookies.clear()
    sign_in(client, "bank_b", "correct horse battery 9")
    open_to_it = {"/kpi", "/login", "/api/auth/me", "/api/business-types", "/docs", "/openapi.json"}
    checked = 0
    routes = []
    for route in client.app.routes:  # included routers keep their routes on `original_router`
        inner = getattr(route, "original_router", None)
        routes.extend(inner.routes if inner is not None else [route])
    for route in routes:
        path, methods = getattr(route, "path", ""), getattr(route, "methods", None) or set()
        if "GET" not in methods or "{" in path or path.startswith(("/static", "/api/kpi/")):
            continue
        status = client.get(path, params=PERIOD, follow_redirects=False).status_code
        if path in open_to_it:
            continue
        assert status == 403, (path, status)
        checked += 1
    assert checked >= 8
