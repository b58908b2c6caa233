"""The onboarding part of `posgate demo`, through the API against the running stack (SQLite and
PostgreSQL): application, approval, TR-31 delivery, sign-in with the delivered TMK, test swipe, live."""

from __future__ import annotations

from posgate.bootstrap.stack import Running
from posgate.config import Settings
from posgate.merchants.provisioning import key_kcv
from posgate.security.keys import kcv
from posgate.tools.demo_onboarding import run_onboarding_story


async def test_the_onboarding_story_ends_with_a_live_merchant(stack: Running) -> None:
    settings: Settings = stack.host.services.settings  # type: ignore[union-attr]
    outcome = await run_onboarding_story(stack.handle, settings, stack.pos_address)
    assert outcome.ok, [(line.title, line.expected, line.got) for line in outcome.lines]
    assert outcome.mid == "898440158120001"
    assert outcome.lines[-1].got == "live"
    # the KCV line checked the key the terminal actually signed in with against the one provisioned
    assert outcome.terminal is not None
    delivered = next(line for line in outcome.lines if "KCV checked" in line.title)
    provisioned = stack.handle.store.transact(lambda s: key_kcv(s, "terminal", outcome.terminal.tid, "TMK"))
    assert delivered.got == kcv(bytes.fromhex(outcome.terminal.tmk_hex)) == provisioned == delivered.expected
