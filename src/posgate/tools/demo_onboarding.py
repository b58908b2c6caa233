"""The onboarding part of `posgate demo`, played through the REST API before the day of traffic.

An operator files an application (photos made on the fly), a reviewer approves it, the TMK is delivered
as a TR-31 key block, a key-loading step opens it with the KTK (as a key ceremony would hand it over), the new
terminal signs in with it and makes the test swipe (0.01 CNY sale, then its reversal), and the merchant is
live. The API is called in-process over ASGI (no port needed); the terminal talks to the real host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from psec import tr31

from posgate.api.app import create_app
from posgate.config import Settings
from posgate.merchants.keyblock import unwrap_tmk
from posgate.merchants.provisioning import key_transfer_key
from posgate.security.keys import kcv
from posgate.store.base import utcnow
from posgate.store.runtime import StoreHandle
from posgate.terminal import TerminalClient, TerminalState, demo_card
from posgate.tools.onboarding_data import form_values, photo_files

DEMO_PASSWORD = "posgate-demo"


@dataclass(frozen=True)
class StoryLine:
    title: str
    expected: str
    got: str

    @property
    def ok(self) -> bool:
        return self.expected == self.got


@dataclass
class OnboardingOutcome:
    lines: list[StoryLine]
    mid: str | None = None
    terminal: TerminalState | None = None

    @property
    def ok(self) -> bool:
        return all(line.ok for line in self.lines)


def open_delivered_tmk(tid: str, ktk: bytes, export: dict[str, str]) -> tuple[bytes | None, StoryLine]:
    """What the key-loading step does with a TR-31 export: unwrap the TMK with the KTK and check that the
    key it got has the KCV the export announced. The line fails when the block does not open or the KCVs
    differ; the clear TMK is returned only when the block opened.

    >>> from posgate.merchants.keyblock import wrap_tmk
    >>> ktk, tmk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"), bytes.fromhex("11" * 16)
    >>> _, line = open_delivered_tmk("1", ktk, {"key_block": wrap_tmk(ktk, tmk), "tmk_kcv": kcv(tmk)})
    >>> line.ok
    True
    """
    title = f"TMK of {tid} delivered as TR-31, KCV checked"
    try:
        tmk = unwrap_tmk(ktk, export["key_block"])
    except (tr31.KeyBlockError, tr31.HeaderError) as exc:
        return None, StoryLine(title, export["tmk_kcv"], f"key block refused: {exc}")
    return tmk, StoryLine(title, export["tmk_kcv"], kcv(tmk))


async def _login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await client.post("/api/auth/login", json={"username": username, "password": DEMO_PASSWORD})
    response.raise_for_status()
    return {"X-CSRF-Token": response.json()["csrf_token"]}


async def run_onboarding_story(
    handle: StoreHandle, settings: Settings, pos_address: tuple[str, int], shop_name: str = "Demo Noodle Bar"
) -> OnboardingOutcome:
    """Play the story; each line records what was expected and what came back."""
    outcome = OnboardingOutcome(lines=[])
    add = outcome.lines.append
    app = create_app(handle, settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://posgate.local") as client:
        headers = await _login(client, "operator")
        files = {kind: (name, data, mime) for kind, (name, data, mime) in photo_files().items()}
        filed = await client.post(
            "/api/applications", data=form_values(shop_name=shop_name), files=files, headers=headers
        )
        add(StoryLine("operator files the application with 5 photos", "201", str(filed.status_code)))
        if filed.status_code != 201:
            return outcome
        app_id = filed.json()["id"]
        headers = await _login(client, "reviewer")
        started = await client.post(f"/api/applications/{app_id}/start-review", headers=headers)
        add(StoryLine("reviewer starts the review", "under_review", started.json().get("status", "?")))
        approved = await client.post(
            f"/api/applications/{app_id}/approve", json={"terminals": 1}, headers=headers
        )
        body: dict[str, Any] = approved.json()
        add(StoryLine("reviewer approves (MID, fee plan, 1 terminal)", "approved", body.get("status", "?")))
        if approved.status_code != 200:
            return outcome
        outcome.mid = mid = body["mid"]
        merchant = (await client.get(f"/api/merchants/{mid}")).json()
        tid = merchant["terminals"][0]["tid"]
        add(StoryLine(f"merchant {mid} waits for the test swipe", "testing", merchant["status"]))
        subs = merchant.get("wallet_sub_merchants") or {}
        add(
            StoryLine(
                "wallet sub-merchant ids allocated (WeChat Pay, Alipay, UnionPay QR)",
                "alipay, unionpay, wechat",
                ", ".join(sorted(subs)) or "none",
            )
        )
        export = (await client.post(f"/api/terminals/{tid}/tmk/tr31", headers=headers)).json()
        ktk, _ktk_kcv = handle.store.transact(lambda s: key_transfer_key(s, handle.vault, "demo", utcnow()))
        tmk, delivered = open_delivered_tmk(tid, ktk, export)
        add(delivered)
        if tmk is None or not delivered.ok:
            return outcome
        mac_algorithm = merchant["terminals"][0]["mac_algorithm"]  # set at provisioning, like the TMK
        state = TerminalState(tid=tid, mid=mid, tmk_hex=tmk.hex().upper(), mac_algorithm=mac_algorithm)
        outcome.terminal = state
        async with TerminalClient(*pos_address, state, timeout_s=5.0) as terminal:
            add(
                StoryLine(
                    f"terminal {tid} signs in with the delivered TMK",
                    "00",
                    (await terminal.sign_in()).response_code,
                )
            )
            card = demo_card("debit-ok")
            sale = await terminal.sale(card, card.default_pin, 1)
            add(StoryLine("test swipe: sale 0.01", "00", sale.response_code))
            reversal = await terminal.reverse_last("96")
            add(StoryLine("test swipe: its reversal", "00", reversal.response_code))
        merchant = (await client.get(f"/api/merchants/{mid}")).json()
        add(StoryLine(f"merchant {mid} is live", "live", merchant["status"]))
    return outcome
