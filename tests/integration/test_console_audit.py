"""Every console action in the audit trail (issue 9, build item 6): the test enumerates every state-changing
route (POST, PUT, PATCH, DELETE) of the REST API and the console from the app's route table, performs each
as a user allowed to, and finds its record — who, role, action, route, target, outcome, status, source
address. Refused attempts are recorded too: no credentials (401, or a console form sent to sign in), a role
without the permission (403), a session without its CSRF token (403), a wrong password. A new route without
a case here fails the test. No record holds a clear PAN, a PIN block or a key, even when one is put in the
path or typed as a username."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select

from posgate.api.app import create_app
from posgate.api.audit_trail import CHANGING_METHODS
from posgate.bootstrap.store import open_store
from posgate.config import Settings
from posgate.risk.alerts import open_alerts
from posgate.risk.decision import Decision
from posgate.store.models_onboarding import AuditEvent
from posgate.store.runtime import StoreHandle
from posgate.tools.onboarding_data import DEMO_DEBIT_CARD, DEMO_PASSWORD, form_values, id_number, photo_files

SOURCE = ("203.0.113.7", 50123)  # TEST-NET-3: the address every request here comes from


#: the wallet providers' notifications: no caller (the provider's signature is checked), so neither signed in
#: nor refused as a user's request
NOTIFY_ROUTE = "POST /api/qr/notify/{provider}"


def wallet_routes(routes: set[str]) -> set[str]:
    """The cashier API's routes: performed against the provider simulators in tests/e2e/test_wallet_up.py (a
    bench without them answers 503); their refusals are audited below like every other route's."""
    return {route for route in routes if route.split(" ", 1)[1].startswith("/api/qr/")}


def changing_routes(app: Any) -> set[str]:
    """`"POST /api/…"` for every state-changing route in the app's route table."""
    found = set()
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ():
            if method in CHANGING_METHODS:
                found.add(f"{method} {route.path}")
    return found


class Bench:
    """A client of the app and the audit trail's route records."""

    def __init__(self, client: TestClient, handle: StoreHandle) -> None:
        self.client = client
        self.handle = handle
        self.checked: dict[str, set[str]] = {}  # route → outcomes seen

    def rows(self, route: str | None = None) -> list[AuditEvent]:
        def read(session: Any) -> list[AuditEvent]:
            query = select(AuditEvent).where(AuditEvent.subject_kind == "route")
            if route is not None:
                query = query.where(AuditEvent.subject_ref == route)
            rows = list(session.scalars(query.order_by(AuditEvent.id)))
            session.expunge_all()
            return rows

        return self.handle.store.transact(read)

    def call(
        self,
        route: str,
        params: dict[str, str] | None = None,
        *,
        expect: int,
        actor: str,
        role: str | None,
        outcome: str = "done",
        via: str | None = "session",
        reason: str | None = None,
        client: TestClient | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Perform `route` with `params` in its path; check the answer and the one new record."""
        method, template = route.split(" ", 1)
        before = len(self.rows(route))
        response = (client or self.client).request(method, template.format(**(params or {})), **kwargs)
        assert response.status_code == expect, (route, response.status_code, response.text[:300])
        rows = self.rows(route)
        assert len(rows) == before + 1, f"{route}: {len(rows) - before} records"
        row = rows[-1]
        detail = json.loads(row.detail)
        assert row.actor == actor, (route, row.actor)
        assert row.action == ("api_call" if template.startswith("/api/") else "console_form")
        assert detail["role"] == role, (route, detail)
        assert detail["via"] == via, (route, detail)
        assert detail["target"] == (params or {}), (route, detail)
        assert detail["outcome"] == outcome and detail["status"] == expect, (route, detail)
        assert detail["ip"] == SOURCE[0], (route, detail)
        if reason is not None:
            assert detail["reason"] == reason, (route, detail)
        self.checked.setdefault(route, set()).add(outcome)
        return response

    def sign_in(self, username: str) -> str:
        """A console session for `username` (API sign-in, which the console forms accept); its CSRF token."""
        response = self.call(
            "POST /api/auth/login",
            expect=200,
            actor=username,
            role=ROLE[username],
            via=None,
            json={"username": username, "password": DEMO_PASSWORD},
        )
        return str(response.json()["csrf_token"])


ROLE = {name: name for name in ("operator", "reviewer", "risk", "finance", "admin")}


@pytest.fixture
def bench(tmp_path: Path, database_url: str) -> Iterator[Bench]:
    settings = Settings(data_dir=tmp_path / "data", env="test", database_url=database_url)
    handle = open_store(settings)
    app = create_app(handle, settings)
    with TestClient(app, follow_redirects=False, client=SOURCE) as client:
        yield Bench(client, handle)
    handle.store.close()


def _form(seed: int) -> dict[str, str]:
    return form_values(id_number=id_number(sequence=f"{100 + seed}"), shop_name=f"Noodles {seed}")


def test_every_state_changing_route_is_audited_when_done(bench: Bench) -> None:
    api, b = bench.client, bench
    routes = changing_routes(api.app)
    assert all(len(route) <= 64 for route in routes)  # the subject_ref column
    routes -= wallet_routes(routes)

    # operator: files applications (API and console), answers "more info" (API and console)
    csrf = b.sign_in("operator")
    h = {"X-CSRF-Token": csrf}
    app_ids = []
    for seed in range(3):
        filed = b.call(
            "POST /api/applications",
            expect=201,
            actor="operator",
            role="operator",
            headers=h,
            data=_form(seed),
            files=photo_files(seed),
        )
        app_ids.append(str(filed.json()["id"]))
    a, b_id, c = app_ids
    new = b.call(
        "POST /applications/new",
        expect=303,
        actor="operator",
        role="operator",
        data={**_form(9), "csrf_token": csrf},
        files=photo_files(9),
    )
    match = re.match(r"/applications/(\d+)\?done=submit", new.headers["location"])
    assert match, new.headers["location"]
    d = match.group(1)

    # reviewer: review, more info, reject, approve (API and console)
    csrf = b.sign_in("reviewer")
    h = {"X-CSRF-Token": csrf}
    for app_id in (a, b_id, c):
        b.call(
            "POST /api/applications/{application_id}/start-review",
            {"application_id": app_id},
            expect=200,
            actor="reviewer",
            role="reviewer",
            headers=h,
        )
    b.call(
        "POST /api/applications/{application_id}/request-more-info",
        {"application_id": a},
        expect=200,
        actor="reviewer",
        role="reviewer",
        headers=h,
        json={"reason": "the storefront photo is blurred"},
    )
    b.call(
        "POST /api/applications/{application_id}/reject",
        {"application_id": b_id},
        expect=200,
        actor="reviewer",
        role="reviewer",
        headers=h,
        json={"reason": "not a real shop"},
    )
    approved = b.call(
        "POST /api/applications/{application_id}/approve",
        {"application_id": c},
        expect=200,
        actor="reviewer",
        role="reviewer",
        headers=h,
        json={"terminals": 1},
    )
    mid = approved.json()["mid"]
    for action in ("start_review", "request_more_info"):
        b.call(
            "POST /applications/{application_id}/decide",
            {"application_id": d},
            expect=303,
            actor="reviewer",
            role="reviewer",
            data={"action": action, "reason": "the licence photo is cut", "csrf_token": csrf},
        )
    provisioned = b.call(
        "POST /api/merchants/{mid}/terminals",
        {"mid": mid},
        expect=201,
        actor="reviewer",
        role="reviewer",
        headers=h,
        json={"count": 2},
    )
    tid, tid2 = provisioned.json()["tids"]
    b.call(
        "POST /merchants/{mid}/terminals",
        {"mid": mid},
        expect=303,
        actor="reviewer",
        role="reviewer",
        data={"count": "1", "csrf_token": csrf},
    )
    b.call(
        "POST /api/terminals/{tid}/tmk/tr31",
        {"tid": tid},
        expect=200,
        actor="reviewer",
        role="reviewer",
        headers=h,
    )
    b.call(
        "POST /terminals/{tid}/tr31",
        {"tid": tid},
        expect=200,
        actor="reviewer",
        role="reviewer",
        data={"csrf_token": csrf},
    )
    profile = b.call(
        "POST /terminals/{tid}/profile",
        {"tid": tid},
        expect=200,
        actor="reviewer",
        role="reviewer",
        data={"csrf_token": csrf},
    )
    tmk_hex = profile.json()["tmk_hex"]

    # operator answers both "more info" requests
    csrf = b.sign_in("operator")
    b.call(
        "POST /api/applications/{application_id}/resubmit",
        {"application_id": a},
        expect=200,
        actor="operator",
        role="operator",
        headers={"X-CSRF-Token": csrf},
        data={"mobile": "13900139000"},
        files={"storefront": photo_files(7)["storefront"]},
    )
    b.call(
        "POST /applications/{application_id}/resubmit",
        {"application_id": d},
        expect=303,
        actor="operator",
        role="operator",
        data={"mobile": "13900139001", "csrf_token": csrf},
    )

    # risk: the alerts desk (API and console): lists, holds, an alert's assignment, actions and verdicts
    csrf = b.sign_in("risk")
    h = {"X-CSRF-Token": csrf}
    first, second = _alerts(bench, mid, tid)
    entry = b.call(
        "POST /api/risk/lists",
        expect=200,
        actor="risk",
        role="risk",
        headers=h,
        json={"kind": "bin", "value": "622999", "reason": "compromised range"},
    ).json()["id"]
    b.call(
        "POST /api/risk/lists/{entry_id}/remove",
        {"entry_id": str(entry)},
        expect=200,
        actor="risk",
        role="risk",
        headers=h,
    )
    b.call(
        "POST /risk/lists",
        expect=303,
        actor="risk",
        role="risk",
        data={"op": "add", "kind": "mcc", "value": "7995", "reason": "no gambling", "csrf_token": csrf},
    )
    b.call(
        "POST /api/risk/lists/remove",
        expect=200,
        actor="risk",
        role="risk",
        headers=h,
        json={"kind": "mcc", "value": "7995"},
    )
    b.call(
        "POST /api/risk/holds",
        expect=200,
        actor="risk",
        role="risk",
        headers=h,
        json={"mid": mid, "reason": "refunds"},
    )
    b.call(
        "POST /api/risk/holds/{mid}/release",
        {"mid": mid},
        expect=200,
        actor="risk",
        role="risk",
        headers=h,
        json={},
    )
    b.call(
        "POST /api/risk/alerts/{alert_id}/assign",
        {"alert_id": str(first)},
        expect=200,
        actor="risk",
        role="risk",
        headers=h,
        json={"username": "risk"},
    )
    b.call(
        "POST /api/risk/alerts/{alert_id}/{step}",
        {"alert_id": str(first), "step": "dismiss"},
        expect=200,
        actor="risk",
        role="risk",
        headers=h,
        json={"note": "a regular customer"},
    )
    b.call(
        "POST /risk/alerts/{alert_id}",
        {"alert_id": str(second)},
        expect=303,
        actor="risk",
        role="risk",
        data={"action": "confirm", "csrf_token": csrf},
    )

    # risk: terminal and merchant lifecycle (API and console)
    why = {"reason": "chargebacks"}
    for action, body in (("suspend", why), ("resume", None), ("close", why)):
        b.call(
            f"POST /api/terminals/{{tid}}/{action}",
            {"tid": tid2},
            expect=200,
            actor="risk",
            role="risk",
            headers=h,
            json=body,
        )
    b.call(
        "POST /terminals/{tid}/lifecycle",
        {"tid": tid},
        expect=303,
        actor="risk",
        role="risk",
        data={"action": "suspend", "reason": "lost", "csrf_token": csrf},
    )
    b.call(
        "POST /merchants/{mid}/lifecycle",
        {"mid": mid},
        expect=303,
        actor="risk",
        role="risk",
        data={"action": "suspend", "reason": "fraud", "csrf_token": csrf},
    )
    for action, body in (("resume", None), ("suspend", why), ("resume", None), ("close", why)):
        b.call(
            f"POST /api/merchants/{{mid}}/{action}",
            {"mid": mid},
            expect=200,
            actor="risk",
            role="risk",
            headers=h,
            json=body,
        )

    # admin: users and API keys; then a machine with a key
    csrf = b.sign_in("admin")
    h = {"X-CSRF-Token": csrf}
    b.call(
        "POST /api/users",
        expect=201,
        actor="admin",
        role="admin",
        headers=h,
        json={"username": "audit.clerk", "password": "a long enough password", "role": "finance"},
    )
    for action in ("deactivate", "activate"):
        b.call(
            f"POST /api/users/{{username}}/{action}",
            {"username": "audit.clerk"},
            expect=200,
            actor="admin",
            role="admin",
            headers=h,
        )
    key = b.call(
        "POST /api/api-keys",
        expect=201,
        actor="admin",
        role="admin",
        headers=h,
        json={"label": "nightly job", "role": "admin"},
    ).json()
    machine = TestClient(api.app, follow_redirects=False, client=SOURCE)
    b.call(
        "POST /api/users/{username}/deactivate",
        {"username": "audit.clerk"},
        expect=200,
        actor=f"api-key:{key['key'][:12]}",
        role="admin",
        via="api_key",
        client=machine,
        headers={"Authorization": f"Bearer {key['key']}"},
    )
    b.call(
        "POST /api/api-keys/{key_id}/revoke",
        {"key_id": str(key["id"])},
        expect=200,
        actor="admin",
        role="admin",
        headers=h,
    )

    # signing out (API and console), and the console's own sign-in form
    b.call("POST /api/auth/logout", expect=200, actor="admin", role="admin", headers=h)
    signed = b.call(
        "POST /login",
        expect=303,
        actor="operator",
        role="operator",
        via=None,
        data={"username": "operator", "password": DEMO_PASSWORD, "next": "/"},
    )
    assert signed.headers["location"] == "/"
    page = api.get("/").text
    csrf_match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf_match
    b.call("POST /logout", expect=303, actor="operator", role="operator", data={"csrf_token": csrf_match[1]})

    done = {route for route, outcomes in b.checked.items() if "done" in outcomes}
    missing, unknown = sorted(routes - done), sorted(done - routes)
    assert done == routes, f"not performed: {missing}; not in the route table: {unknown}"
    _no_secrets(bench, [tmk_hex])


def _alerts(bench: Bench, mid: str, tid: str) -> tuple[int, int]:
    """Two open alerts on the merchant's terminal, as the host's RaiseRiskAlerts step opens them."""
    decision = Decision("2026.12.1", "review", 40, None, (), decided_by="card-many-merchants")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)

    def work(session: Any) -> list[int]:
        return [
            *open_alerts(
                session,
                decision,
                now,
                txn_id=None,
                kind="sale",
                tid=tid,
                mid=mid,
                pan_masked=None,
                amount_fen=100,
                response_code="00",
            ),
            *open_alerts(
                session,
                decision,
                now,
                txn_id=None,
                kind="sale",
                tid=tid,
                mid=mid,
                pan_masked=None,
                amount_fen=200,
                response_code="00",
            ),
        ]

    first, second = bench.handle.store.transact(work)
    return first, second


def _sample(template: str) -> dict[str, str]:
    values = {"application_id": "1", "mid": "898440153110001", "tid": "10000001", "username": "operator"}
    values["key_id"] = "1"
    values["alert_id"], values["step"], values["entry_id"] = "1", "dismiss", "1"
    values["order_id"], values["provider"] = "Q1", "wechat"
    return {name: values[name] for name in re.findall(r"{(\w+)}", template)}


def test_refused_attempts_on_every_route_are_audited(bench: Bench) -> None:
    api, b = bench.client, bench
    routes = sorted(changing_routes(api.app) - {NOTIFY_ROUTE})
    sign_in_routes = {"POST /api/auth/login", "POST /login"}
    # a wrong password, on both sign-in routes
    b.call(
        "POST /api/auth/login",
        expect=401,
        actor="admin",
        role=None,
        via=None,
        outcome="unauthenticated",
        reason="unauthenticated:password",
        json={"username": "admin", "password": "not the password"},
    )
    b.call(
        "POST /login",
        expect=401,
        actor="admin",
        role=None,
        via=None,
        outcome="unauthenticated",
        data={"username": "admin", "password": "not the password"},
    )
    # no credentials at all
    anonymous = TestClient(api.app, follow_redirects=False, client=SOURCE)
    for route in routes:
        if route in sign_in_routes or route == "POST /api/auth/logout":
            continue  # signing out without a session is not refused (there is nothing to end)
        console = not route.split(" ", 1)[1].startswith("/api/")
        b.call(
            route,
            _sample(route),
            expect=303 if console else 401,
            actor="anonymous",
            role=None,
            via=None,
            outcome="unauthenticated",
            reason="login_required" if console else "unauthenticated",
            client=anonymous,
        )
    # a role that may not (finance may only read), with its CSRF token
    csrf = b.sign_in("finance")
    for route in routes:
        if route in sign_in_routes or route.endswith("/logout"):
            continue
        console = not route.split(" ", 1)[1].startswith("/api/")
        b.call(
            route,
            _sample(route),
            expect=403,
            actor="finance",
            role="finance",
            outcome="refused",
            reason="forbidden",
            headers={"X-CSRF-Token": csrf},
            data={"csrf_token": csrf} if console else None,
        )
    # the admin may do everything, but not without the session's CSRF token (signing out included)
    b.sign_in("admin")
    for route in routes:
        if route in sign_in_routes:
            continue
        b.call(
            route,
            _sample(route),
            expect=403,
            actor="admin",
            role="admin",
            outcome="refused",
            reason="forbidden:csrf_token",
            headers={"X-CSRF-Token": "forged"} if "/api/" in route else None,
        )
    refused = {route for route, outcomes in b.checked.items() if "refused" in outcomes}
    assert refused == set(routes) - sign_in_routes
    _no_secrets(bench, [])


def test_card_numbers_and_keys_put_in_paths_or_usernames_stay_out_of_the_trail(bench: Bench) -> None:
    api, b = bench.client, bench
    pin_block = "0412AC89ABCDEF67"
    key = "0123456789ABCDEFFEDCBA9876543210"
    b.call(
        "POST /api/auth/login",
        expect=401,
        actor="622999******0012",
        role=None,
        via=None,
        outcome="unauthenticated",
        json={"username": DEMO_DEBIT_CARD, "password": "wrong password"},
    )
    csrf = b.sign_in("risk")
    h = {"X-CSRF-Token": csrf}
    for value, masked in (
        (DEMO_DEBIT_CARD, "622999******0012"),
        (pin_block, "[16 hex digits]"),
        (key, "[32 hex digits]"),
    ):
        response = api.post(f"/api/terminals/{value}/suspend", json={"reason": "x"}, headers=h)
        assert response.status_code in (404, 422)
        row = b.rows("POST /api/terminals/{tid}/suspend")[-1]
        assert json.loads(row.detail)["target"] == {"tid": masked}
        response = api.post(f"/api/merchants/{value}/close", json={"reason": "x"}, headers=h)
        assert json.loads(b.rows("POST /api/merchants/{mid}/close")[-1].detail)["target"] == {"mid": masked}
    _no_secrets(bench, [pin_block, key])


def _no_secrets(bench: Bench, extra: list[str]) -> None:
    """No audit record (of any kind) holds the demo card's PAN or one of `extra` (hex, any case)."""

    def read(session: Any) -> str:
        rows = session.scalars(select(AuditEvent))
        return "\n".join(f"{r.actor} {r.action} {r.subject_kind} {r.subject_ref} {r.detail}" for r in rows)

    text = bench.handle.store.transact(read).upper()
    assert "\n" in text  # records were read
    for secret in [DEMO_DEBIT_CARD, *extra]:
        assert secret.upper() not in text, secret
