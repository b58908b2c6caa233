"""Every key use is in the audit trail (issue 9, build item 6): keys stored (fixture, configuration,
sign-in) and every opening of sealed keys, with KCVs and never key material; the per-message uses (MAC,
PIN translation) are named by each transaction's trace instead of an event each."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from posgate.bootstrap.stack import Running, start_all
from posgate.logs import configure_logging
from posgate.security.keys import kcv
from posgate.store.acquirer import rotate_key_period
from posgate.store.models import Transaction
from posgate.store.models_onboarding import AuditEvent
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state

from .conftest import stack_settings

CARD = demo_card("6229990000000012")


async def _events(stack: Running) -> list[tuple[str, str, str, dict[str, object]]]:
    rows = await stack.handle.store.run(
        lambda s: list(
            s.scalars(select(AuditEvent).where(AuditEvent.subject_kind == "key").order_by(AuditEvent.id))
        )
    )
    return [(e.actor, e.action, e.subject_ref, json.loads(e.detail)) for e in rows]


async def test_key_uses_are_audited_with_kcvs_and_without_key_material(
    stack: Running, terminal: TerminalClient
) -> None:
    sale = await terminal.sale(CARD, "123456", 100)
    assert sale.approved
    events = await _events(stack)
    actions = {(actor, action, ref) for actor, action, ref, _ in events}
    assert ("fixture", "key_stored", "terminal/10000001/TMK") in actions
    assert ("fixture", "key_stored", "sim_bank/Demo Bank A/PVK") in actions
    assert ("host", "keys_opened", "issuer/Demo Bank A") in actions  # the links, at start
    assert ("issuer", "keys_opened", "sim_bank/Demo Bank A") in actions  # the simulator, at start
    opened = [
        (d["use"], d["purposes"])
        for a, act, ref, d in events
        if ref == "terminal/10000001" and act == "keys_opened"
    ]
    assert ("sign-in", ["TMK"]) in opened
    assert (
        "verify MACs, translate PINs",
        ["MAK.next", "PIK.next", "TMK"],
    ) in opened  # keys issued, not yet used
    issued = [d for _, act, ref, d in events if act == "working_keys_issued" and ref == "terminal/10000001"]
    in_use = [d for _, act, ref, d in events if act == "working_keys_in_use" and ref == "terminal/10000001"]
    expected = {"PIK": kcv(terminal.state.pik), "MAK": kcv(terminal.state.mak)}
    assert issued[-1]["kcvs"] == expected and in_use[-1]["kcvs"] == expected  # the first sale used them
    # the working keys in use stay open in memory: more sales open nothing again, their traces name the uses
    assert (await terminal.sale(CARD, "123456", 150)).approved  # opens the keys now in use, once
    before = len(await _events(stack))
    assert (await terminal.sale(CARD, "123456", 200)).approved
    assert len(await _events(stack)) == before
    trace = await stack.handle.store.run(
        lambda s: s.scalar(select(Transaction.trace).where(Transaction.amount_fen == 200))
    )
    assert "VerifyMac:ok" in trace and "TranslatePin:ok" in trace
    details = json.dumps([d for *_, d in events]).upper()
    for key in (terminal.state.pik, terminal.state.mak, bytes.fromhex(terminal.state.tmk_hex)):
        assert key.hex().upper() not in details


async def test_a_mac_that_does_not_verify_is_a_key_use_in_the_trail(
    stack: Running, terminal: TerminalClient
) -> None:
    """A refused MAC (A0) stores no transaction: without this event the trail would not show that the
    terminal's MAK was tried with a forged MAC (issue 9, finding 1)."""
    genuine_mak = terminal.state.mak
    assert genuine_mak is not None
    terminal.state.mak_hex = "11" * 16  # the attacker's guess: MACs under another key
    forged = await terminal.sale(CARD, "123456", 5100)
    assert forged.response_code == "A0"
    events = [e for e in await _events(stack) if e[1] == "mac_verify_failed"]
    assert len(events) == 1
    actor, _action, ref, detail = events[0]
    assert (actor, ref) == ("host", "terminal/10000001")
    assert detail["mti"] == "0200" and detail["stan"] == forged.stan
    assert detail["algorithm"] == "cup_ecb" and detail["mak_kcvs"] == [kcv(genuine_mak)]
    assert detail["why"] == "does not verify"
    text = json.dumps(detail).upper()
    assert genuine_mak.hex().upper() not in text and "11" * 16 not in text


async def test_a_wrong_mac_from_a_cached_terminal_whose_keys_a_rotation_ended_is_a0_and_audited(
    tmp_path: Path, database_url: str
) -> None:
    """The node caches the terminal with the keys of its first sign-in, pending (none in use yet); then
    `posgate keys rotate` starts a new period. A request whose MAC fails makes the node read the terminal
    again: it now holds no keys of any period, and the refusal is still an audited `A0`, with no KCV."""
    settings = stack_settings(tmp_path, database_url, terminal_cache_s=30.0)
    configure_logging(settings.data_dir, "INFO", console=False)
    stack = await start_all(settings)
    try:
        async with TerminalClient(*stack.pos_address, demo_terminal_state()) as terminal:
            assert (await terminal.sign_in()).approved  # keys pending until a MAC under them
            terminal.state.mak_hex = "11" * 16  # MACs under a key the host never issued
            assert (await terminal.sale(CARD, "123456", 100)).response_code == "A0"  # caches the terminal
            await stack.handle.store.run(rotate_key_period)
            assert (await terminal.sale(CARD, "123456", 100)).response_code == "A0"
        refusals = [d for _, action, _, d in await _events(stack) if action == "mac_verify_failed"]
        assert len(refusals) == 2
        assert refusals[-1]["mak_kcvs"] == [] and refusals[-1]["why"] == "does not verify"
    finally:
        await stack.stop()
