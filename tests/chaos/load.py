"""The terminals' side of a chaos run: provisioning (terminals 7000000N, cards at both demo banks) and the
load — terminal simulators over real TCP selling on many distinct cards, reconnecting and signing in again
whatever happens, and remembering what each one saw (the ground truth the invariants are checked against).

Half the terminals behave as the spec asks after a sale without an answer: they reverse it (0400) before
anything else, retrying until the host answers. The other half never do (a terminal that lost power): those
in-doubt sales are the host's to resolve.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select

from posgate.cards.pan import luhn_check_digit
from posgate.config import Settings
from posgate.fixtures.document import FixtureCard, read_demo_fixture
from posgate.security.keys import generate_key, kcv
from posgate.terminal import CardProfile, TerminalClient, TerminalState
from posgate.terminal.cards import card_profile
from posgate.terminal.client import TerminalError

MID = "898440153110001"  # the demo merchant
PIN = "123456"
BANKS = {"Demo Bank A": "622999", "Demo Bank B": "622888"}


def chaos_pans(bin_prefix: str, count: int) -> list[str]:
    """Luhn-valid PANs in a demo bank's BIN, outside the fixture's and the bench's ranges.

    >>> chaos_pans("622888", 2)
    ['6228886000000005', '6228886000000013']
    """
    return [(partial := f"{bin_prefix}600000{n:03d}") + luhn_check_digit(partial) for n in range(count)]


def provision(
    settings: Settings, terminals: int, cards: int
) -> tuple[list[TerminalState], list[CardProfile]]:
    """Create the run's terminals and cards (half at each demo bank, amounts that never run out) in the
    store `settings` points at, loading the demo fixture first."""
    from posgate.bootstrap.seed import add_cards
    from posgate.bootstrap.store import open_store
    from posgate.store.acquirer import provision_terminal
    from posgate.store.models import Terminal

    handle = open_store(settings)
    fixture = read_demo_fixture()
    docs = [
        FixtureCard(
            pan=pan,
            bank=bank,
            profile=f"chaos-{pan[-4:]}",
            pin=PIN,
            expiry="3012",
            service_code="101",
            balance_fen=10**11,
            limit_fen=10**11,
        )
        for bank, prefix in BANKS.items()
        for pan in chaos_pans(prefix, (cards + 1) // 2)
    ]
    tmks = {f"7{n:07d}": generate_key() for n in range(1, terminals + 1)}

    def work(session):  # type: ignore[no-untyped-def]
        add_cards(session, handle.vault, fixture, docs)
        for tid, tmk in tmks.items():
            assert session.scalar(select(Terminal.id).where(Terminal.tid == tid)) is None
            provision_terminal(session, handle.vault, tid, MID, tmk, kcv(tmk))

    handle.store.transact(work)
    # the MAC algorithm each terminal was provisioned with, where the store keeps one (issue 9 item 1)
    algorithms = handle.store.transact(
        lambda s: {t.tid: getattr(t, "mac_algorithm", None) for t in s.scalars(select(Terminal))}
    )
    handle.store.close()
    states = []
    for tid, tmk in tmks.items():
        algorithm = {"mac_algorithm": algorithms[tid]} if algorithms[tid] else {}
        states.append(TerminalState(tid=tid, mid=MID, tmk_hex=tmk.hex().upper(), **algorithm))
    return states, [card_profile(doc, fixture.bank(doc.bank)) for doc in docs]


@dataclass
class Sale:
    """One sale as its terminal saw it. `outcome`: approved | declined | unknown (no answer)."""

    tid: str
    batch: str
    stan: str
    amount_fen: int
    pan: str = field(repr=False)
    outcome: str = "unknown"
    code: str | None = None
    rrn: str | None = None
    auth_code: str | None = None
    reversed_by_terminal: bool = False  # a 0400 for it was answered 00
    abandoned: bool = False  # no answer, and this terminal never reverses


@dataclass
class LoadReport:
    sales: list[Sale] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    reversals_sent: int = 0
    reversals_approved: int = 0
    reconnects: int = 0
    reconnects_by_tid: Counter[str] = field(default_factory=Counter)  # connection attempts
    sign_ins: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def approved(self) -> int:
        return sum(1 for s in self.sales if s.outcome == "approved")

    @property
    def unknown(self) -> int:
        return sum(1 for s in self.sales if s.outcome == "unknown")


class ChaosTerminal:
    """One terminal simulator that keeps selling through every fault."""

    def __init__(
        self,
        host: str,
        ports: list[int],
        state: TerminalState,
        cards: list[CardProfile],
        reverses: bool,
        rng: random.Random,
        report: LoadReport,
        timeout_s: float,
    ) -> None:
        self.ports = ports
        self.client = TerminalClient(host, ports[0], state, timeout_s=timeout_s)
        self.cards, self.reverses, self.rng, self.report = cards, reverses, rng, report
        self.signed_in = False
        self.to_reverse: Sale | None = None

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                if not await self._ready():
                    await asyncio.sleep(0.2)
                    continue
                if self.to_reverse is not None:
                    await self._reverse()
                    continue
                await self._sell()
        finally:
            await self.client.close()

    async def finish(self, deadline: float) -> None:
        """After the load: a reversing terminal reverses its last unanswered sale (retrying until the host
        answers or `deadline`)."""
        try:
            while self.to_reverse is not None and time.monotonic() < deadline:
                if await self._ready():
                    await self._reverse()
                else:
                    await asyncio.sleep(0.2)
        finally:
            await self.client.close()

    async def _ready(self) -> bool:
        """Connected and signed in (reconnecting and signing in again as needed)."""
        try:
            if not self.client.connected:
                await self.client.close()
                if self.report.reconnects_by_tid[self.client.state.tid]:  # a load balancer's next node
                    self.client.port = self.ports[(self.ports.index(self.client.port) + 1) % len(self.ports)]
                self.report.reconnects_by_tid[self.client.state.tid] += 1
                await self.client.connect()
                self.report.reconnects += 1
            if not self.signed_in:
                result = await self.client.sign_in()
                self.report.sign_ins += 1
                self.signed_in = result.approved
                if not self.signed_in:
                    self.report.errors[f"sign-in {result.response_code}"] += 1
                    await asyncio.sleep(0.2)
            return self.signed_in
        except TerminalError as exc:
            self.report.errors[type(exc).__name__] += 1
            return False

    async def _sell(self) -> None:
        card = self.rng.choice(self.cards)
        amount = self.rng.randint(1, 9_999)
        state = self.client.state
        sale = Sale(state.tid, state.batch, f"{(state.stan % 999_999) + 1:06d}", amount, card.pan)
        try:
            result = await self.client.sale(card, PIN, amount)
        except TerminalError as exc:  # no answer (time-out, connection lost): in doubt
            self.report.errors[type(exc).__name__] += 1
            self._in_doubt(sale)
            await asyncio.sleep(0.1)
            return
        self.report.sales.append(sale)
        assert result.stan == sale.stan, (result.stan, sale.stan)
        self.report.codes[result.response_code] += 1
        sale.code, sale.rrn, sale.auth_code = result.response_code, result.rrn, result.auth_code
        if result.needs_reversal:  # approved, but the MAC did not verify: the terminal must undo it
            self.report.errors["response MAC failed"] += 1
            self._in_doubt(sale)
            return
        sale.outcome = "approved" if result.approved else "declined"
        if result.response_code == "97" or result.sign_in_required:
            self.signed_in = False
        # a till, not a flood: a moment between sales, longer while the host cannot reach the issuer
        await asyncio.sleep(self.rng.uniform(0.01, 0.04) if result.approved else 0.2)

    def _in_doubt(self, sale: Sale) -> None:
        if sale not in self.report.sales:
            self.report.sales.append(sale)
        sale.outcome = "unknown"
        if self.reverses:
            self.to_reverse = sale
        else:
            sale.abandoned = True
            self.client.state.last = None

    async def _reverse(self) -> None:
        sale = self.to_reverse
        assert sale is not None
        self.report.reversals_sent += 1
        try:
            result = await self.client.reverse_last("98")
        except TerminalError as exc:
            self.report.errors[f"reversal {type(exc).__name__}"] += 1
            await asyncio.sleep(0.1)
            return
        if result.approved:
            self.report.reversals_approved += 1
            sale.reversed_by_terminal = True
            self.to_reverse = None
            self.client.state.last = None
        else:
            self.report.errors[f"reversal {result.response_code}"] += 1
            if result.response_code == "97" or result.sign_in_required:
                self.signed_in = False
            await asyncio.sleep(0.1)
