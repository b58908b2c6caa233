"""The onboarding story in a real browser (Playwright driving Debian's /usr/bin/chromium) against the whole
stack in one event loop: the host and the issuer simulators (`start_all`) plus uvicorn serving the console.

An operator files an application with photos; a reviewer approves it, provisions another terminal, exports
the TMK as TR-31 and downloads the simulator profile; the terminal simulator signs in with the delivered TMK
and makes the test swipe (a 0.01 CNY sale, then its reversal); the merchant shows live in the console.
A screenshot of each page goes to test-artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import select

from posgate.api.app import create_app
from posgate.bootstrap.stack import start_all
from posgate.store.models import Merchant, Terminal
from posgate.terminal import TerminalClient, TerminalState, demo_card
from posgate.tools.onboarding_data import DEMO_PASSWORD, form_values, photo_files
from tests.e2e.conftest import stack_settings

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def need_chromium() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("/usr/bin/chromium is missing: apt-get install -y chromium")
        pytest.skip("/usr/bin/chromium is missing (apt-get install -y chromium)")


async def serve(app: object) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


async def test_operator_files_reviewer_approves_terminal_goes_live(tmp_path: Path) -> None:
    need_chromium()
    from playwright.async_api import async_playwright, expect

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    settings = stack_settings(tmp_path, f"sqlite:///{tmp_path / 'posgate.sqlite'}")
    running = await start_all(settings)
    server, task, base = await serve(create_app(running.handle, settings))
    photos = {}
    for kind, (name, data, _mime) in photo_files().items():
        (tmp_path / name).write_bytes(data)
        photos[kind] = tmp_path / name
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1366, "height": 900}, accept_downloads=True)

            async def shot(name: str) -> None:
                await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

            async def login(username: str) -> None:
                await page.goto(f"{base}/login")
                await page.fill("input[name=username]", username)
                await page.fill("input[name=password]", DEMO_PASSWORD)
                await page.click("#login-button")
                await expect(page.locator("#whoami")).to_have_text(username)

            async def logout() -> None:
                await page.click("button:has-text('Sign out')")
                await expect(page.locator("#login-button")).to_be_visible()

            # the operator files an application with five photos
            await page.goto(f"{base}/login")
            await shot("01-login")
            await login("operator")
            await shot("02-dashboard")
            await page.click("a[href='/applications']")
            await page.click("#new-application")
            values = form_values()
            for field, value in values.items():
                if field == "business_type":
                    await page.select_option("select[name=business_type]", value)
                else:
                    await page.fill(f"input[name={field}]", value)
            for kind, path in photos.items():
                await page.set_input_files(f"input[name={kind}]", str(path))
            await shot("03-application-form")
            await page.click("#submit-application")
            await expect(page.locator("#application-status")).to_contain_text("submitted")
            await expect(page.locator("#checks")).to_contain_text("Demo Bank A")
            await expect(page.locator(".photos img")).to_have_count(5)
            await shot("04-application-submitted")
            await logout()

            # the reviewer approves it from the queue
            await login("reviewer")
            await page.click("a[href='/review']")
            await expect(page.locator(".queue-item")).to_have_count(1)
            await expect(page.locator(".thumbs img")).to_have_count(5)
            await shot("05-review-queue")
            await page.click(".review-link")
            await page.click("#start-review")
            await expect(page.locator("#application-status")).to_contain_text("under review")
            await shot("06-application-under-review")
            await page.fill("input[name=mdr_debit_ppm]", "4500")
            await page.click("#approve")
            await expect(page.locator("#application-status")).to_contain_text("approved")
            await shot("07-application-approved")
            await page.click("#merchant-link")
            await expect(page.locator("#merchant-status")).to_contain_text("testing")
            mid = "898440158120001"
            await expect(page.locator("h1")).to_contain_text(mid)
            # provisions one more terminal
            await page.click("#provision")
            await expect(page.locator(".terminal-link")).to_have_count(2)
            await shot("08-merchant-testing")
            await page.click(".terminal-link >> nth=0")
            await page.click("#tr31-export")
            await expect(page.locator("#key-block")).to_contain_text("B0096K0TD00N0000")
            await shot("09-terminal-tr31")
            async with page.expect_download() as download_info:
                await page.click("#profile-download")
            download = await download_info.value
            profile = tmp_path / "terminal-10000002.json"
            await download.save_as(str(profile))

            # the terminal simulator signs in with the delivered TMK and makes the test swipe
            state = TerminalState.load(profile)
            assert (state.tid, state.mid) == ("10000002", mid)
            host, port = running.pos_address
            async with TerminalClient(host, port, state, timeout_s=5.0) as terminal:
                signed = await terminal.sign_in()
                assert signed.response_code == "00", signed
                card = demo_card("debit-ok")
                sale = await terminal.sale(card, card.default_pin, 1)
                assert sale.response_code == "00", sale
                reversal = await terminal.reverse_last("96")
                assert reversal.response_code == "00", reversal

            # the host itself made the terminal and its merchant live on the approved reversal of the
            # test sale: nothing here completes the test swipe on its behalf
            statuses = await running.handle.store.run(
                lambda s: (
                    s.scalar(select(Merchant.status).where(Merchant.mid == mid)),
                    s.scalar(select(Terminal.status).where(Terminal.tid == "10000002")),
                )
            )
            assert statuses == ("live", "live"), statuses

            await page.goto(f"{base}/merchants/{mid}")
            await expect(page.locator("#merchant-status")).to_contain_text("live")
            await shot("10-merchant-live")
            await page.goto(f"{base}/merchants/{mid}?lang=zh")
            await expect(page.locator("#merchant-status")).to_contain_text("已上线")
            await shot("11-merchant-live-zh")
            await page.goto(f"{base}/merchants/{mid}?lang=en")
            await logout()

            # risk sees the test swipe in the transaction search, PAN masked
            await login("risk")
            await page.goto(f"{base}/transactions?tid=10000002")
            await expect(
                page.locator("#transactions .pan", has_text="622999******0012").first
            ).to_be_visible()
            assert "6229990000000012" not in await page.content()
            await shot("12-transactions")
            await page.goto(f"{base}/docs")
            await expect(page.locator(".swagger-ui")).to_be_visible()
            await shot("13-api-docs")
            await browser.close()
    finally:
        server.should_exit = True
        await task
        await running.stop()
