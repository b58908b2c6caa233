"""The KPI dashboard in a real browser (Playwright driving Debian's /usr/bin/chromium) over a console with
generated history: the headline numbers equal `GET /api/kpi/summary`'s, a shorter period changes them and
the trend chart, and a chart's data downloads as CSV. Screenshot in test-artifacts/screenshots/."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from posgate.kpi.history import seed_history
from posgate.tools.onboarding_data import DEMO_PASSWORD
from tests.e2e.test_browser_onboarding import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, need_chromium
from tests.integration.live_console import live_console

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _number(text: str | None) -> int:
    return int(re.sub(r"[^0-9]", "", text or ""))


def test_dashboard_numbers_filter_and_csv(tmp_path: Path) -> None:
    need_chromium()
    with live_console(tmp_path) as console:
        seed_history(console.handle.store, console.handle.vault, days=40, transactions=4000, env="test")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
            page.goto(console.base_url + "/login")
            page.fill("input[name=username]", "finance")
            page.fill("input[name=password]", DEMO_PASSWORD)
            page.click("button[type=submit]")
            page.goto(console.base_url + "/kpi")
            page.wait_for_selector("body[data-kpi-loaded]", timeout=60_000)
            start = page.input_value("input[name=from]")
            end = page.input_value("input[name=to]")
            api = page.request.get(f"{console.base_url}/api/kpi/summary?from={start}&to={end}").json()
            assert _number(page.text_content("#kpi-approved")) == api["approved_count"] > 0
            assert page.text_content("#kpi-rate") == f"{api['approval_rate'] * 100:.2f} %"
            assert _number(page.text_content("#kpi-volume")) == api["approved_amount_fen"]
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "kpi-dashboard.png"), full_page=True)

            week = (dt.date.fromisoformat(end) - dt.timedelta(days=6)).isoformat()
            page.fill("input[name=from]", week)
            page.click("#kpi-filters button[type=submit]")
            # the page marks what it loaded (no eval: the console's CSP forbids it)
            page.wait_for_selector(f'body[data-kpi-loaded="from={week}&to={end}"]', timeout=60_000)
            shorter = page.request.get(f"{console.base_url}/api/kpi/summary?from={week}&to={end}").json()
            assert _number(page.text_content("#kpi-approved")) == shorter["approved_count"]
            assert shorter["approved_count"] < api["approved_count"]

            with page.expect_download() as download:
                page.click("button[data-csv=trend]")
            lines = Path(download.value.path()).read_text().splitlines()
            assert lines[0] == "period,approved_count,approved_amount_fen,approval_rate"
            assert len(lines) == 1 + 7  # one row a day of the week asked for
            assert lines[-1].startswith(end + ",")
            browser.close()
