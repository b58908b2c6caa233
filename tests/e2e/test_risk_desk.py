"""The alerts desk end to end, on SQLite and PostgreSQL: a running `posgate up` stack (host over real TCP, the
console over real HTTP) with the default rules. A watched terminal's sale opens an alert; a risk officer
works it over the REST API (`/api/risk/…`) and over the console's pages and forms (a real HTTP client, CSRF
tokens from the pages): the queue with its filters, the case with the transaction, the rules that hit, the
card's history masked, the merchant's chart and the terminal's locations; assign, hold and release
settlement, confirm fraud — and the card's next sale gets 59. Roles other than risk and admin are refused,
and so is a form without its CSRF token. The browser test plays the same story in Chromium, with
screenshots in test-artifacts/screenshots/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from posgate.bootstrap.stack import Running, start_all
from posgate.config import Settings
from posgate.logs import configure_logging
from posgate.store.models import Terminal
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state
from posgate.tools.onboarding_data import DEMO_PASSWORD
from tests.e2e.conftest import stack_settings
from tests.e2e.helpers import eventually

pytestmark = pytest.mark.default_risk_rules  # the host's own default risk rules

PAN = "6229990000000012"
CARD = demo_card(PAN)
OTHER = demo_card("6229990000000020")
MID, TID = "898440153110001", "10000001"
SHOP = "22.5431,114.0579"  # Shenzhen


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return stack_settings(tmp_path, database_url, console_port=0)


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Running]:
    configure_logging(settings.data_dir, "INFO", console=False)
    running = await start_all(settings, console=True)
    await running.handle.store.run(
        lambda s: s.execute(update(Terminal).where(Terminal.tid == TID).values(location=SHOP))
    )
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def terminal(stack: Running) -> AsyncIterator[TerminalClient]:
    host, port = stack.pos_address
    state = demo_terminal_state()
    state.location = "22.5441,114.0589"  # ≈ 150 m from the shop
    client = TerminalClient(host, port, state, timeout_s=5.0)
    await client.connect()
    assert (await client.sign_in()).approved
    try:
        yield client
    finally:
        await client.close()


def base_url(stack: Running) -> str:
    assert stack.console_address is not None
    host, port = stack.console_address
    return f"http://{host}:{port}"


@asynccontextmanager
async def api_session(
    stack: Running, username: str
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    async with httpx.AsyncClient(base_url=base_url(stack), timeout=20) as client:
        response = await client.post(
            "/api/auth/login", json={"username": username, "password": DEMO_PASSWORD}
        )
        assert response.status_code == 200, response.text
        yield client, {"X-CSRF-Token": response.json()["csrf_token"]}


async def open_alert(api: httpx.AsyncClient, csrf: dict[str, str], terminal: TerminalClient) -> dict:  # type: ignore[type-arg]
    """Watch the terminal, make a sale on it: the alert it opens."""
    watch = {"kind": "terminal", "list": "watch", "value": TID, "reason": "new owner since Monday"}
    response = await api.post("/api/risk/lists", json=watch, headers=csrf)
    assert response.status_code == 200, response.text
    assert (await terminal.sale(CARD, "123456", 12_300)).response_code == "00"

    async def listed() -> bool:
        return bool((await api.get("/api/risk/alerts")).json())

    assert await eventually(listed, timeout_s=5)
    [alert] = (await api.get("/api/risk/alerts")).json()
    return alert  # type: ignore[no-any-return]


async def test_an_officer_works_an_alert_over_the_api(stack: Running, terminal: TerminalClient) -> None:
    async with api_session(stack, "risk") as (api, csrf):
        alert = await open_alert(api, csrf, terminal)
        assert {"id", "rule", "tid", "mid", "created_at", "state", "age_s"} <= alert.keys()
        assert (alert["rule"], alert["tid"], alert["mid"], alert["state"]) == (
            "watched-terminal-or-merchant",
            TID,
            MID,
            "open",
        )
        assert alert["pan_masked"] == "622999******0012"
        assert (await api.get("/api/risk/alerts", params={"rule": "blocked-card"})).json() == []
        assert len((await api.get("/api/risk/alerts", params={"tid": TID, "assigned_to": "-"})).json()) == 1

        response = await api.get(f"/api/risk/alerts/{alert['id']}")
        assert response.status_code == 200 and PAN not in response.text
        case = response.json()
        assert (
            case["transaction"]["amount_fen"] == 12_300
            and case["transaction"]["location"] == "22.5441,114.0589"
        )
        assert "watched-terminal-or-merchant" in case["decision"]["hits"]
        assert [x["pan_masked"] for x in case["card_history"]] == ["622999******0012"]
        assert len(case["merchant"]["daily"]) == 30 and case["merchant"]["daily"][-1]["amount_fen"] == 12_300
        assert case["terminal"]["registered"] == {"lat": 22.5431, "lon": 114.0579}
        assert case["terminal"]["reported"][0]["distance_km"] == 0.2  # ≈ 150 m, to 100 m

        no_csrf = await api.post(f"/api/risk/alerts/{alert['id']}/confirm", json={})
        assert no_csrf.status_code == 403
        assigned = await api.post(
            f"/api/risk/alerts/{alert['id']}/assign", json={"username": "risk"}, headers=csrf
        )
        assert assigned.json() == {"id": alert["id"], "assigned_to": "risk"}
        held = await api.post(
            f"/api/risk/alerts/{alert['id']}/hold", json={"note": "ask for invoices"}, headers=csrf
        )
        assert held.status_code == 200 and held.json()["new"] is True
        [hold] = (await api.get("/api/risk/holds")).json()
        assert (hold["mid"], hold["alert_id"], hold["created_by"]) == (MID, alert["id"], "risk")
        released = await api.post(
            f"/api/risk/holds/{MID}/release", json={"note": "invoices seen"}, headers=csrf
        )
        assert released.status_code == 200 and (await api.get("/api/risk/holds")).json() == []
        again = await api.post(f"/api/risk/holds/{MID}/release", json={}, headers=csrf)
        assert again.status_code == 409

        confirmed = await api.post(
            f"/api/risk/alerts/{alert['id']}/confirm", json={"note": "owner"}, headers=csrf
        )
        assert confirmed.status_code == 200 and confirmed.json()["state"] == "confirmed"
        assert (await terminal.sale(CARD, "123456", 1_000)).response_code == "59"
        assert (await terminal.sale(OTHER, "123456", 100)).response_code == "00"
        twice = await api.post(f"/api/risk/alerts/{alert['id']}/dismiss", json={}, headers=csrf)
        assert twice.status_code == 409 and "already confirmed" in twice.text
        missing = await api.get("/api/risk/alerts/999999")
        assert missing.status_code == 404

        entries = (await api.get("/api/risk/lists", params={"kind": "card"})).json()
        assert [e["value"] for e in entries] == ["622999******0012"]
        removed = await api.post(f"/api/risk/lists/{entries[0]['id']}/remove", headers=csrf)
        assert removed.status_code == 200
        assert (await terminal.sale(CARD, "123456", 1_000)).response_code == "00"
        bad = await api.post(
            "/api/risk/lists", json={"kind": "card", "value": "6229990000000013", "reason": "x"}, headers=csrf
        )
        assert bad.status_code == 422 and "6229990000000013" not in bad.text

    for role in ("operator", "finance", "reviewer"):
        async with api_session(stack, role) as (other, other_csrf):
            assert (await other.get("/api/risk/alerts")).status_code == 403
            refused = await other.post(f"/api/risk/alerts/{alert['id']}/dismiss", json={}, headers=other_csrf)
            assert refused.status_code == 403


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def test_an_officer_confirms_fraud_on_the_console_and_the_card_gets_59(
    stack: Running, terminal: TerminalClient
) -> None:
    async with api_session(stack, "risk") as (api, csrf):
        alert = await open_alert(api, csrf, terminal)
    async with httpx.AsyncClient(base_url=base_url(stack), timeout=20) as browser:
        signed = await browser.post(
            "/login", data={"username": "risk", "password": DEMO_PASSWORD, "next": "/risk/alerts"}
        )
        assert signed.status_code == 303
        queue = await browser.get("/risk/alerts")
        assert queue.status_code == 200 and f'href="/risk/alerts/{alert["id"]}"' in queue.text
        assert "622999******0012" in queue.text and PAN not in queue.text
        empty = await browser.get("/risk/alerts", params={"state": "dismissed"})
        assert f'href="/risk/alerts/{alert["id"]}"' not in empty.text

        case = await browser.get(f"/risk/alerts/{alert['id']}")
        assert case.status_code == 200 and PAN not in case.text
        for marker in (
            'id="merchant-chart"',
            'id="location-plot"',
            'class="reported"',
            'class="home"',
            "watched-terminal-or-merchant",
        ):
            assert marker in case.text, marker
        token = csrf_of(case.text)

        forged = await browser.post(f"/risk/alerts/{alert['id']}", data={"action": "confirm"})
        assert forged.status_code == 403
        taken = await browser.post(
            f"/risk/alerts/{alert['id']}", data={"action": "assign", "csrf_token": token}
        )
        assert taken.status_code == 303
        assert 'id="alert-assignee">risk<' in (await browser.get(f"/risk/alerts/{alert['id']}")).text
        done = await browser.post(
            f"/risk/alerts/{alert['id']}",
            data={"action": "confirm", "note": "owner's card", "csrf_token": token},
        )
        assert done.status_code == 303 and done.headers["location"].endswith("done=risk_confirm")
        page = (await browser.get(f"/risk/alerts/{alert['id']}")).text
        assert 'id="alert-state">confirmed<' in page and "risk_alert_confirmed" in page
        assert (await terminal.sale(CARD, "123456", 1_000)).response_code == "59"

        lists = await browser.get("/risk/lists")
        assert "622999******0012" in lists.text and "confirmed fraud" in lists.text

    async with httpx.AsyncClient(base_url=base_url(stack), timeout=20) as other:
        await other.post("/login", data={"username": "finance", "password": DEMO_PASSWORD, "next": "/"})
        assert (await other.get("/risk/alerts")).status_code == 403
        assert 'id="nav-risk"' not in (await other.get("/settlement")).text


@pytest.mark.browser
@pytest.mark.slow
async def test_the_desk_in_a_browser_queue_case_confirm_and_the_next_sale_gets_59(
    stack: Running, terminal: TerminalClient, settings: Settings
) -> None:
    from playwright.async_api import async_playwright

    from tests.e2e.test_browser_onboarding import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, need_chromium

    need_chromium()
    if not str(settings.database_url).startswith("sqlite"):
        pytest.skip("the browser plays the story once (SQLite); the API and form tests cover PostgreSQL")
    async with api_session(stack, "risk") as (api, csrf):
        alert = await open_alert(api, csrf, terminal)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1300, "height": 1000})
            await page.goto(base_url(stack) + "/login?next=/risk/alerts")
            await page.fill("input[name=username]", "risk")
            await page.fill("input[name=password]", DEMO_PASSWORD)
            await page.click("button[type=submit]")
            await page.click("#nav-risk")
            await page.wait_for_selector("#alerts .alert-link")
            await page.screenshot(path=str(SCREENSHOTS / "risk-alerts-queue.png"), full_page=True)
            await page.click(f'#alerts a[href="/risk/alerts/{alert["id"]}"]')
            await page.wait_for_selector("#location-plot")
            assert (await page.text_content("#alert-pan")) == "622999******0012"
            await page.screenshot(path=str(SCREENSHOTS / "risk-alert-case.png"), full_page=True)
            await page.fill("#note", "the owner's own card, seen on camera")
            await page.click("#confirm")
            await page.wait_for_selector("#alert-state:text('confirmed')")
            await page.screenshot(path=str(SCREENSHOTS / "risk-alert-confirmed.png"), full_page=True)
            await page.goto(base_url(stack) + "/risk/lists")
            assert "622999******0012" in (await page.text_content("#list-entries") or "")
        finally:
            await browser.close()
    assert (await terminal.sale(CARD, "123456", 1_000)).response_code == "59"
