"""A whole business day at several terminals at once — 520 mixed transactions (stripe, chip and tap sales,
declines, voids, refunds, pre-authorizations and completions, their voids, reversals) — with Demo Bank A
taken down in the middle of it and brought back. Every terminal settles; the host's totals equal each
terminal's; every card's available amount at the issuer moved exactly by what was approved and not
reversed, voided or refunded — to the fen; every time-out was reversed at the issuer exactly once."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import select

from posgate.bootstrap.stack import Running
from posgate.security.keys import generate_key, kcv
from posgate.store.acquirer import pending_saf_count, provision_terminal
from posgate.store.models import BatchSettlement, Transaction
from posgate.terminal import CardProfile, TerminalClient, TerminalState, demo_card, play_day
from posgate.terminal.client import default_entry

from .helpers import eventually

MID = "898440153110001"
TERMINALS = 4
PER_TERMINAL = 130
CARDS = [
    demo_card(p)
    for p in ("debit-ok", "debit-low", "debit-pin888", "credit-ok", "credit-chip", "credit-chip-2")
]


async def _provision(stack: Running) -> list[TerminalState]:
    tmks = {f"2000000{n}": generate_key() for n in range(1, TERMINALS + 1)}

    def work(session):  # type: ignore[no-untyped-def]
        for tid, tmk in tmks.items():
            provision_terminal(session, stack.handle.vault, tid, MID, tmk, kcv(tmk))

    await stack.handle.store.run(work)
    return [
        TerminalState(tid=tid, mid=MID, tmk_hex=tmk.hex().upper(), mac_algorithm="x919")
        for tid, tmk in tmks.items()
    ]


async def _available(terminal: TerminalClient, card: CardProfile) -> int:
    result = await terminal.balance(card, card.default_pin, default_entry(card))
    assert result.approved and result.balance_fen is not None, result.summary()
    return result.balance_fen


async def _outage(stack: Running, after_s: float, for_s: float) -> None:
    assert stack.issuers is not None
    await asyncio.sleep(after_s)
    await stack.issuers.set_online("Demo Bank A", False)  # connections drop, requests in flight included
    await asyncio.sleep(for_s)
    await stack.issuers.set_online("Demo Bank A", True)


async def test_a_business_day_with_an_issuer_outage_settles_and_balances_to_the_fen(stack: Running) -> None:
    host, port = stack.pos_address
    states = await _provision(stack)
    clients = [TerminalClient(host, port, state, timeout_s=10) for state in states]
    for client in clients:
        await client.connect()
        assert (await client.sign_in()).approved
    try:
        before = {card: await _available(clients[0], card) for card in CARDS}
        outage = asyncio.create_task(_outage(stack, after_s=1.5, for_s=1.5))
        reports = await asyncio.gather(
            # five terminals on the same six cards within seconds, on the list rules (tests/conftest.py)
            *(
                play_day(c, CARDS, PER_TERMINAL, random.Random(7 + i), mind_risk_rules=False)
                for i, c in enumerate(clients)
            )
        )
        await outage
        assert sum(r.transactions for r in reports) >= 500
        assert all(r.settled for r in reports), [[s.balanced for s in r.settlements] for r in reports]
        assert all(r.unresolved == 0 for r in reports)
        codes = {code for r in reports for (_, code) in r.counts}
        assert "91" in codes or "98" in codes  # the outage was felt

        # every queued reversal and advice reached the issuer
        assert await eventually(lambda: _saf_drained(stack), timeout_s=20)
        after = {card: await _available(clients[0], card) for card in CARDS}
        for card in CARDS:
            effect = sum(r.effect_fen[card] + r.held_fen[card] for r in reports)
            assert before[card] - after[card] == effect, card

        settlements = await stack.handle.store.run(lambda s: list(s.scalars(select(BatchSettlement))))
        assert len(settlements) >= TERMINALS
        assert all(s.result in ("balanced", "reconciled") for s in settlements)
        assert [s for s in settlements if s.result == "reconciled" and s.differences] == []
        timed_out = await stack.handle.store.run(
            lambda s: s.scalars(select(Transaction.id).where(Transaction.state == "timed_out")).all()
        )
        assert timed_out == []  # every 98 ended reversed
    finally:
        for client in clients:
            await client.close()


async def _saf_drained(stack: Running) -> bool:
    return await stack.handle.store.run(pending_saf_count) == 0
