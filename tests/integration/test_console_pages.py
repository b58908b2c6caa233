"""The web console: sign-in with a session cookie, every page renders for the roles that may see it, forms
need the CSRF token, zh/en labels, no asset from outside posgate, masked PANs in the transaction search."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from posgate.api.app import create_app
from posgate.api.console.i18n import LABELS
from posgate.bootstrap.store import open_store
from posgate.config import Settings
from posgate.store.models import Transaction
from posgate.store.runtime import StoreHandle
from posgate.tools.onboarding_data import DEMO_PASSWORD, form_values, photo_files


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[TestClient, StoreHandle]]:
    settings = Settings(data_dir=tmp_path / "data", env="test")
    handle = open_store(settings)
    with TestClient(create_app(handle, settings), follow_redirects=False) as client:
        yield client, handle
    handle.store.close()


def login(client: TestClient, username: str) -> str:
    response = client.post("/login", data={"username": username, "password": DEMO_PASSWORD, "next": "/"})
    assert response.status_code == 303, response.text
    page = client.get("/").text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def test_pages_need_a_session_and_the_login_page_signs_in(console) -> None:  # type: ignore[no-untyped-def]
    client, _handle = console
    assert client.get("/merchants").headers["location"] == "/login?next=/merchants"
    bad = client.post("/login", data={"username": "operator", "password": "nope-nope"})
    assert bad.status_code == 401 and "wrong username or password" in bad.text
    login(client, "operator")
    assert client.get("/").status_code == 200


def test_both_languages_have_the_same_labels_and_the_switch_is_remembered(console) -> None:  # type: ignore[no-untyped-def]
    assert set(LABELS["en"]) == set(LABELS["zh"])
    client, _handle = console
    login(client, "operator")
    zh = client.get("/applications?lang=zh")
    assert "进件申请" in zh.text and 'lang="zh-CN"' in zh.text
    assert "进件申请" in client.get("/applications").text  # the cookie remembers
    assert "Applications" in client.get("/applications?lang=en").text


def test_the_whole_flow_through_the_console_forms(console) -> None:  # type: ignore[no-untyped-def]
    client, _handle = console
    csrf = login(client, "operator")
    files = {kind: (name, data, mime) for kind, (name, data, mime) in photo_files().items()}
    no_csrf = client.post("/applications/new", data=form_values(), files=files)
    assert no_csrf.status_code == 403
    refused = client.post(
        "/applications/new", data={**form_values(mobile="123"), "csrf_token": csrf}, files=files
    )
    assert refused.status_code == 422 and "mobile: must be 11 digits" in refused.text
    assert 'value="Zhang San"' in refused.text and "6229990000000012" not in refused.text
    filed = client.post("/applications/new", data={**form_values(), "csrf_token": csrf}, files=files)
    assert filed.status_code == 303 and filed.headers["location"] == "/applications/1?done=submit"
    detail = client.get("/applications/1").text
    assert "440106********" in detail and 'src="/api/applications/1/uploads/storefront"' in detail
    assert "start-review" not in detail  # operators do not review
    csrf = login(client, "reviewer")
    queue = client.get("/review").text
    assert "Happy Noodles" in queue and "/api/applications/1/uploads/cashier" in queue
    client.post("/applications/1/decide", data={"action": "start_review", "csrf_token": csrf})
    bad_plan = client.post(
        "/applications/1/decide", data={"action": "approve", "mdr_debit_ppm": "99999", "csrf_token": csrf}
    )
    assert bad_plan.status_code == 422 and "mdr_debit_ppm" in bad_plan.text
    approved = client.post(
        "/applications/1/decide",
        data={"action": "approve", "mdr_debit_ppm": "5000", "terminals": "1", "csrf_token": csrf},
    )
    assert approved.status_code == 303
    merchant = client.get("/merchants/898440158120001").text
    assert "10000002" in merchant and "status s-testing" in merchant
    # the wallet sub-merchant ids allocated at approval are shown
    assert re.search(r'id="sub-merchant-wechat">16\d{8}<', merchant)
    assert 'id="sub-merchant-unionpay">898440158120001<' in merchant
    terminal = client.post("/terminals/10000002/tr31", data={"csrf_token": csrf})
    assert terminal.status_code == 200 and re.search(
        r'id="key-block">B0096K0TD00N0000[0-9A-F]+<', terminal.text
    )
    profile = client.post("/terminals/10000002/profile", data={"csrf_token": csrf})
    assert profile.status_code == 200
    assert profile.headers["content-disposition"] == 'attachment; filename="terminal-10000002.json"'
    assert profile.json()["tid"] == "10000002" and len(profile.json()["tmk_hex"]) == 32
    assert profile.json()["mac_algorithm"] == "x919"  # new terminals: ANSI X9.19 (issue 9)
    page = client.get("/terminals/10000002").text
    assert re.search(r'id="mac-algorithm">ANSI X9.19<', page)
    assert re.search(r'id="mac-algorithm">CUP ECB \(legacy, weak\)<', client.get("/terminals/10000001").text)
    csrf = login(client, "risk")
    suspended = client.post(
        "/merchants/898440158120001/lifecycle", data={"action": "suspend", "reason": "", "csrf_token": csrf}
    )
    assert suspended.status_code == 422 and "reason: is required" in suspended.text


def test_transactions_show_masked_pans_only(console) -> None:  # type: ignore[no-untyped-def]
    client, handle = console
    import datetime as dt

    protected = handle.vault.protect_pan("6229990000000012")

    def add(session):  # type: ignore[no-untyped-def]
        session.add(
            Transaction(
                tid="10000001",
                mid="898440153110001",
                batch_no="000001",
                stan="000001",
                mti="0200",
                processing_code="000000",
                business_date=dt.date(2026, 11, 26),
                kind="sale",
                amount_fen=12345,
                pan_ciphertext=protected.ciphertext,
                pan_hash=protected.pan_hash,
                pan_masked=protected.masked,
                state="approved",
                response_code="00",
            )
        )

    handle.store.transact(add)
    login(client, "finance")
    page = client.get("/transactions?tid=10000001&state=approved&date_from=2026-11-26").text
    assert "622999******0012" in page and "123.45" in page
    assert "6229990000000012" not in page and protected.pan_hash not in page
    assert "622999******0012" not in client.get("/transactions?date_from=2026-11-27").text
    api = client.get("/api/transactions?mid=898440153110001").json()
    assert api[0]["pan_masked"] == "622999******0012" and "pan_hash" not in api[0]
    bad = client.get("/api/transactions?date_from=26/11/2026")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "date_from"
    login(client, "operator")
    assert client.get("/transactions").status_code == 403


def test_no_page_loads_anything_from_outside_posgate(console) -> None:  # type: ignore[no-untyped-def]
    client, _handle = console
    login(client, "admin")
    client.post(
        "/api/applications",
        data=form_values(),
        files=photo_files(),
        headers={"X-CSRF-Token": login(client, "admin")},
    )
    for path in (
        "/login",
        "/",
        "/applications",
        "/applications/new",
        "/applications/1",
        "/review",
        "/merchants",
        "/merchants/898440153110001",
        "/terminals/10000001",
        "/transactions",
        "/docs",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        for url in re.findall(r'(?:src|href)="([^"]+)"', response.text):
            assert url.startswith(("/", "?", "#")), (path, url)
        assert "cdn" not in response.text.lower(), path
    assert client.get("/static/console.css").status_code == 200
    assert client.get("/static/docs/swagger-ui-bundle.js").status_code == 200
    assert "default-src 'self'" in client.get("/").headers["content-security-policy"]


def test_wallet_orders_are_listed_beside_card_transactions(console) -> None:  # type: ignore[no-untyped-def]
    client, handle = console
    import datetime as dt

    from posgate.store.models_wallet import WalletOrder

    at = dt.datetime(2026, 11, 26, 9, 30)

    def add(session):  # type: ignore[no-untyped-def]
        session.add(
            WalletOrder(
                order_id="S2611260930001234567890AB",
                provider="alipay",
                flow="scan",
                mid="898440153110001",
                tid="10000001",
                amount_fen=5000,
                refunded_fen=2000,
                state="paid",
                code_masked="28************1234",
                created_at=at,
                expires_at=at,
                updated_at=at,
            )
        )

    handle.store.transact(add)
    login(client, "finance")
    page = client.get("/transactions?tid=10000001&date_from=2026-11-26").text
    table = page[page.index('id="wallet-orders"') :]
    for shown in ("S2611260930001234567890AB", "alipay", "scan", "50.00", "20.00", "paid"):
        assert shown in table, shown
    other_day = client.get("/transactions?date_from=2026-11-27").text
    assert "S2611260930001234567890AB" not in other_day
