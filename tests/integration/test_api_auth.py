"""Users and roles: console login with a session cookie, Argon2 hashes, the login rate limit (in the
database), API keys for machines, CSRF on cookie-authenticated changes, and a role check on every route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from posgate.api.app import create_app
from posgate.api.roles import PERMISSIONS
from posgate.api.users import ensure_demo_users
from posgate.bootstrap.store import open_store
from posgate.config import Settings
from posgate.errors import ConfigError
from posgate.store.models_onboarding import LoginThrottle, User
from posgate.store.runtime import StoreHandle
from posgate.tools.onboarding_data import sign_in


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, StoreHandle]]:
    settings = Settings(data_dir=tmp_path / "data", env="test")
    handle = open_store(settings)
    with TestClient(create_app(handle, settings)) as client:
        yield client, handle
    handle.store.close()


def test_login_sets_an_httponly_samesite_cookie_and_passwords_are_argon2(api) -> None:  # type: ignore[no-untyped-def]
    client, handle = api
    response = client.post("/api/auth/login", json={"username": "reviewer", "password": "posgate-demo"})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert "posgate_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert client.get("/api/auth/me").json()["role"] == "reviewer"
    hashes = handle.store.transact(lambda s: list(s.scalars(select(User.password_hash))))
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    client.post("/api/auth/logout", headers={"X-CSRF-Token": response.json()["csrf_token"]})
    assert client.get("/api/auth/me").status_code == 401


def test_a_wrong_password_is_401_and_the_sixth_try_is_429(api) -> None:  # type: ignore[no-untyped-def]
    client, handle = api
    for _ in range(5):
        wrong = client.post("/api/auth/login", json={"username": "admin", "password": "guess-guess"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["field"] == "password"
    limited = client.post("/api/auth/login", json={"username": "admin", "password": "posgate-demo"})
    assert limited.status_code == 429
    assert (
        limited.json()["error"]["code"] == "rate_limited" and limited.json()["error"]["field"] == "username"
    )
    assert (
        handle.store.transact(
            lambda s: s.scalar(select(func.sum(LoginThrottle.count)).where(LoginThrottle.key.like("user:%")))
        )
        == 5
    )
    # another user from the same address is not affected
    assert (
        client.post("/api/auth/login", json={"username": "risk", "password": "posgate-demo"}).status_code
        == 200
    )
    missing = client.post("/api/auth/login", json={"username": "nobody", "password": "posgate-demo"})
    assert missing.status_code == 401


def test_api_keys_for_machines_and_their_revocation(api) -> None:  # type: ignore[no-untyped-def]
    client, _handle = api
    admin = sign_in(client, "admin")
    created = client.post("/api/api-keys", json={"label": "batch job", "role": "finance"}, headers=admin)
    assert created.status_code == 201
    key, key_id = created.json()["key"], created.json()["id"]
    listed = client.get("/api/api-keys").json()
    assert key not in str(listed) and listed[0]["prefix"] == key[:12]
    machine = TestClient(client.app)
    assert machine.get("/api/merchants", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert machine.get("/api/transactions", headers={"X-API-Key": key}).status_code == 200
    denied = machine.post("/api/applications", headers={"X-API-Key": key})
    assert denied.status_code == 403
    client.post(f"/api/api-keys/{key_id}/revoke", headers=admin)
    revoked = machine.get("/api/merchants", headers={"Authorization": f"Bearer {key}"})
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "unauthenticated"
    bad_role = client.post("/api/api-keys", json={"label": "x", "role": "root"}, headers=admin)
    assert bad_role.status_code == 422 and bad_role.json()["error"]["field"] == "role"


def test_cookie_sessions_need_the_csrf_token_to_change_anything(api) -> None:  # type: ignore[no-untyped-def]
    client, _handle = api
    sign_in(client, "risk")
    response = client.post("/api/merchants/898440153110001/suspend", json={"reason": "x"})
    assert response.status_code == 403 and response.json()["error"]["field"] == "csrf_token"
    wrong = client.post(
        "/api/merchants/898440153110001/suspend", json={"reason": "x"}, headers={"X-CSRF-Token": "nope"}
    )
    assert wrong.status_code == 403


def test_admin_manages_users(api) -> None:  # type: ignore[no-untyped-def]
    client, _handle = api
    admin = sign_in(client, "admin")
    weak = client.post(
        "/api/users", json={"username": "wang", "password": "short", "role": "operator"}, headers=admin
    )
    assert weak.status_code == 422 and weak.json()["error"]["field"] == "password"
    made = client.post(
        "/api/users",
        json={"username": "wang", "password": "a-long-password", "role": "operator"},
        headers=admin,
    )
    assert made.status_code == 201
    dup = client.post(
        "/api/users",
        json={"username": "wang", "password": "a-long-password", "role": "operator"},
        headers=admin,
    )
    assert dup.status_code == 409
    other = TestClient(client.app)
    sign_in(other, "wang", "a-long-password")
    client.post("/api/users/wang/deactivate", headers=admin)
    assert other.get("/api/auth/me").status_code == 401
    assert (
        other.post("/api/auth/login", json={"username": "wang", "password": "a-long-password"}).status_code
        == 401
    )


def test_demo_users_are_refused_in_production(api) -> None:  # type: ignore[no-untyped-def]
    _client, handle = api
    with pytest.raises(ConfigError, match="POSGATE_ENV=production"):
        handle.store.transact(lambda s: ensure_demo_users(s, "production"))


def test_every_api_route_checks_the_caller(api) -> None:  # type: ignore[no-untyped-def]
    client, _handle = api
    open_routes = {("POST", "/api/auth/login"), ("POST", "/api/auth/logout"), ("GET", "/api/auth/me")}
    checked = 0
    for path, operations in client.app.openapi()["paths"].items():
        for method in (m.upper() for m in operations):
            url = (
                path.replace("{application_id}", "1")
                .replace("{mid}", "898440153110001")
                .replace("{tid}", "10000001")
                .replace("{kind}", "storefront")
                .replace("{key_id}", "1")
                .replace("{username}", "operator")
            )
            response = client.request(method, url)
            if (method, path) in open_routes:
                continue
            assert response.status_code == 401, (method, path, response.status_code)
            checked += 1
    assert checked >= 25


@pytest.mark.parametrize("permission", sorted(PERMISSIONS))
def test_roles_table_is_enforced(api, permission) -> None:  # type: ignore[no-untyped-def]
    client, _handle = api
    probes = {
        "applications.create": ("POST", "/api/applications"),
        "applications.read": ("GET", "/api/applications"),
        "applications.review": ("POST", "/api/applications/1/start-review"),
        "merchants.read": ("GET", "/api/merchants"),
        "merchants.lifecycle": ("POST", "/api/merchants/898440153110001/resume"),
        "terminals.provision": ("POST", "/api/merchants/898440153110001/terminals"),
        "terminals.keys": ("GET", "/api/keys/ktk"),
        "transactions.read": ("GET", "/api/transactions"),
        "users.manage": ("GET", "/api/users"),
        "reference.read": ("GET", "/api/business-types"),
        "kpi.read": ("GET", "/api/kpi/summary?from=2026-11-01&to=2026-11-30"),
        "console.dashboard": ("GET", "/"),
        "qr.pay": ("GET", "/api/qr/orders/Q1"),
        "qr.refund": ("POST", "/api/qr/orders/Q1/refunds"),
        "risk.read": ("GET", "/api/risk/alerts"),
        "risk.decide": ("POST", "/api/risk/alerts/1/dismiss"),
    }
    method, url = probes[permission]
    for role in ("operator", "reviewer", "risk", "finance", "admin"):
        headers = sign_in(client, role)
        status = client.request(method, url, headers=headers).status_code
        if role in PERMISSIONS[permission]:
            assert status != 403, (role, permission)
        else:
            assert status == 403, (role, permission, status)
