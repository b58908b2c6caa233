"""A realistic trading day on one terminal (`play_day`), for `posgate terminal day`, tests and benches.

The day is a sequence of `transactions` steps drawn with `rng` (so a seed replays the same day):

| step | weight | what |
|---|---|---|
| sale | 50 | magstripe cards swiped (3 % key-entered); chip cards inserted (60 %), tapped (35 %), fallback |
| wrong PIN | 3 | a sale with a wrong PIN (`55`), never twice in a row on a card (3 in a row would block it) |
| low funds | 3 | a sale far above any demo card's balance or limit (`51`, or `61` from a limit rule) |
| balance | 5 | balance inquiry |
| void | 7 | void of one of the last sales (not refunded) |
| refund | 5 | partial refund of one of the last sales (never more than what is left to refund) |
| preauth | 9 | pre-authorization |
| completion | 7 | completion of an open pre-authorization at 60 % to 115 % of its amount |
| preauth void | 3 | void of an open pre-authorization |
| completion void | 2 | void of a completion |
| no answer | 4 | a sale (or a void) whose answer "does not come": reversed at once with `98` |

A tap needs no PIN up to 1,000.00 CNY (QuickPass); a fallback is a swipe after the chip could not be read.
The terminal follows the POS policy (`policy.PosPolicy`): an approval of a reversible transaction whose
MAC or ARPC fails is reversed (`A0` / `96`), a time-out on a reversible transaction is reversed (`98`), a
`97` signs in again and retries once. The batch is settled when it reaches `batch_limit` counted
transactions and at the end of the day (a transaction still waiting for its reversal is reversed first).

The day stays under the default risk rules (docs/risk.md), as real shoppers do, however fast it is played:
a card rests once it has `PURCHASES_PER_CARD` approved purchases in the rules' 10 minutes
(`card-merchant-velocity`: the 6th gets `65`); the terminal's purchase declines stay below
`DECLINES_PER_WINDOW` in 10 minutes (`card-testing-terminal`: 5 declines over 4 cards, then `59` for every
card), so a wrong PIN or a sale beyond the funds is drawn only while there is room for it; a card gets
at most `WRONG_PINS_PER_CARD` wrong PINs an hour (`wrong-pin-burst`). Each card's available amount is asked
once (a balance inquiry) before its first purchase and followed from the day's own approvals, so an
ordinary sale never asks for more than the card holds (a smaller basket, or another card). When every card
is resting, the step is a balance inquiry. A long day therefore wants many cards: the demo fixture's six
cards carry about 24 purchases per 10 minutes. `mind_risk_rules=False` plays the day without any of this
(a host without risk rules, or a test of the day's own mechanics).

The `DayReport` counts every response by kind and code and gives, per card, the money the issuer should
have moved because of the day: `effect_fen` = approved and not reversed sales and completions − voids and
refunds (postings), `held_fen` = the change in open pre-authorization holds. Both are read from the
terminal's journal (the same records it settles), before each settlement and at the end.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from posgate.terminal.cards import CardProfile, default_entry
from posgate.terminal.client import TerminalClient
from posgate.terminal.errors import TerminalError, TerminalTimeout, UnknownOriginal
from posgate.terminal.journal import (
    COMPLETION,
    DEBIT_KINDS,
    PREAUTH,
    SALE,
    JournalEntry,
    open_pan,
)
from posgate.terminal.policy import PosPolicy
from posgate.terminal.result import TxnResult
from posgate.terminal.settlement import SettlementResult
from posgate.terminal.state import TerminalState

WEIGHTS: dict[str, int] = {
    "sale": 50,
    "wrong_pin": 3,
    "low_funds": 3,
    "balance": 5,
    "void": 7,
    "refund": 5,
    "preauth": 9,
    "completion": 7,
    "preauth_void": 3,
    "completion_void": 2,
    "no_answer": 4,
}
#: QuickPass: contactless UnionPay payments up to 1,000.00 CNY need no PIN.
CONTACTLESS_NO_PIN_LIMIT_FEN = 100_000
LOW_FUNDS_AMOUNT_FEN = 50_000_000
RECENT = 10
DEFAULT_BATCH_LIMIT = 500
WRONG_PIN = "000000"
#: The default risk rules' 10-minute window, counted in minute buckets (a window may count 59 s more).
RULE_WINDOW_S = 11 * 60
#: Approved purchases (sales, pre-authorizations, completions) a card takes in `RULE_WINDOW_S` before it
#: rests: `card-merchant-velocity` declines a sale after 5 (`65`).
PURCHASES_PER_CARD = 4
#: Purchase declines at the terminal in `RULE_WINDOW_S` the day allows: `card-testing-terminal` declines
#: everything after 5 declines over 4 cards (`59`).
DECLINES_PER_WINDOW = 4
#: Wrong PINs a card gets in an hour (plus the bucket's minute): `wrong-pin-burst` declines after 3 (`59`).
WRONG_PINS_PER_CARD = 2
WRONG_PIN_WINDOW_S = 61 * 60
#: Wrong PINs at the terminal in `RULE_WINDOW_S`: `wrong-pin-terminal` alerts on 4 over 3 cards.
WRONG_PINS_PER_WINDOW = 3
PURCHASES = ("sale", "preauth", "completion")


@dataclass
class DayReport:
    """What a day did. `counts` is keyed by (kind, response code); a time-out counts as code `timeout`,
    an approval whose MAC / ARPC failed as `00!`. `effect_fen` and `held_fen` are keyed by the cards given
    to `play_day` (a `CardProfile`'s repr shows only the masked PAN)."""

    transactions: int = 0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    effect_fen: dict[CardProfile, int] = field(default_factory=dict)
    held_fen: dict[CardProfile, int] = field(default_factory=dict)
    settlements: list[SettlementResult] = field(default_factory=list)
    unresolved: int = 0  # time-outs whose reversal did not go through either

    @property
    def balanced(self) -> bool:
        """Every settlement of the day went through and balanced at once."""
        return bool(self.settlements) and all(s.settled and s.balanced for s in self.settlements)

    @property
    def settled(self) -> bool:
        return bool(self.settlements) and all(s.settled for s in self.settlements)

    def approved(self, kind: str) -> int:
        return self.counts[(kind, "00")]

    def rows(self) -> list[tuple[str, str, int]]:
        """(kind, code, count), sorted: for the summary table."""
        return sorted((kind, code, n) for (kind, code), n in self.counts.items())


def _postings(state: TerminalState, batch: str | None = None) -> Counter[str]:
    """Debits − credits per PAN of the counted journal entries (of one batch, or all)."""
    effect: Counter[str] = Counter()
    for entry in state.journal:
        if entry.in_totals and (batch is None or entry.batch == batch):
            pan = open_pan(state.journal_key, entry.pan_sealed, state.tid)
            effect[pan] += entry.amount_fen if entry.kind in DEBIT_KINDS else -entry.amount_fen
    return effect


def _holds(state: TerminalState) -> Counter[str]:
    held: Counter[str] = Counter()
    for entry in state.journal:
        if entry.kind == PREAUTH and not (entry.reversed or entry.voided or entry.completed):
            held[open_pan(state.journal_key, entry.pan_sealed, state.tid)] += entry.amount_fen
    return held


class _Day:
    def __init__(
        self,
        client: TerminalClient,
        cards: Sequence[CardProfile],
        rng: random.Random,
        batch_limit: int,
        mind_risk_rules: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not cards:
            raise ValueError("play_day needs at least one card")
        self.client = client
        self.policy = PosPolicy(client)
        self.state = client.state
        self.cards = list(cards)
        self.by_pan = {card.pan: card for card in self.cards}
        self.rng = rng
        self.batch_limit = batch_limit
        self.report = DayReport()
        self.wrong_pin_streak: Counter[str] = Counter()
        self.effect: Counter[str] = Counter()
        self.start_postings = _postings(self.state)
        self.start_holds = _holds(self.state)
        self.mind_risk_rules, self.clock = mind_risk_rules, clock
        self.purchases: dict[str, deque[float]] = {}  # PAN -> when its approved purchases were answered
        self.declines: deque[float] = deque()  # purchase declines at the terminal
        self.wrong_pins: dict[str, deque[float]] = {}  # PAN -> when its wrong PINs were answered
        self.funds: dict[str, int] = {}  # PAN -> at least this much is available (from its balance inquiry)
        self.sending_pan = ""

    # ----------------------------------------------------------------------------------- sending

    def count_sign_in(self, result: TxnResult) -> None:
        self.report.counts[("sign_in", result.response_code)] += 1

    async def send(
        self, kind: str, send: Callable[[], Awaitable[TxnResult]], pan: str = ""
    ) -> TxnResult | None:
        """Send one transaction under the POS policy (`policy.PosPolicy`: sign in again on `97`; reverse
        when its answer is lost or fails the MAC / ARPC) and count what happened."""
        self.sending_pan = pan
        outcome = await self.policy.transact(kind, send)
        if outcome.refused is not None:
            self.report.counts[(kind, outcome.refused.response_code)] += 1
        if outcome.sign_in is not None:
            self.count_sign_in(outcome.sign_in)
            if not outcome.sign_in.approved:
                return outcome.refused
        result = outcome.result
        self._remember(kind, outcome.refused or result)
        if result is None:
            self.report.counts[(kind, "timeout")] += 1
        else:
            code = result.response_code + ("!" if result.needs_reversal else "")
            self.report.counts[(kind, code)] += 1
        if outcome.reversal_reason is not None:
            self._count_reversal(outcome.reversal, outcome.reversal_error)
        return result

    async def reverse(self, reason: str) -> None:
        self._count_reversal(*await self.policy.reverse(reason))

    def _count_reversal(self, result: TxnResult | None, error: TerminalError | None) -> None:
        """Count a reversal the day asked for; one that did not go through is unresolved. A lost
        connection is not the day's to count: it ends the day."""
        if error is not None and not isinstance(error, TerminalTimeout):
            raise error
        code = "timeout" if result is None else result.response_code
        self.report.counts[("reversal", code)] += 1
        if result is None or not result.approved:
            self.report.unresolved += 1

    # ----------------------------------------------------------------------------------- the rules' view

    def _recent(self, times: deque[float], window_s: float = RULE_WINDOW_S) -> int:
        while times and times[0] <= self.clock() - window_s:
            times.popleft()
        return len(times)

    def _remember(self, kind: str, result: TxnResult | None) -> None:
        """What the risk rules will count of this answer: approved purchases per card, purchase declines at
        the terminal, wrong PINs per card."""
        if kind not in PURCHASES or result is None:
            return
        now, pan = self.clock(), self.sending_pan
        if result.approved:
            self.purchases.setdefault(pan, deque()).append(now)
        else:
            self.declines.append(now)
            if result.response_code in ("55", "75"):
                self.wrong_pins.setdefault(pan, deque()).append(now)

    def resting(self, card: CardProfile) -> bool:
        """The card has its `PURCHASES_PER_CARD` approved purchases in the window: its next sale would be
        a velocity decline."""
        recent = self._recent(self.purchases.get(card.pan, deque()))
        return self.mind_risk_rules and recent >= PURCHASES_PER_CARD

    def room_for_declines(self) -> bool:
        return not self.mind_risk_rules or self._recent(self.declines) < DECLINES_PER_WINDOW

    def room_for_wrong_pin(self, card: CardProfile) -> bool:
        if not self.mind_risk_rules:
            return True
        at_terminal = sum(self._recent(t) for t in self.wrong_pins.values())
        on_card = self._recent(self.wrong_pins.get(card.pan, deque()), WRONG_PIN_WINDOW_S)
        return at_terminal < WRONG_PINS_PER_WINDOW and on_card < WRONG_PINS_PER_CARD

    async def known_funds(self, card: CardProfile) -> int | None:
        """At least what `card` has available (None: not followed, or its inquiry failed — asked again next
        time): asked once by a balance inquiry, then lowered by the day's own approvals (credits are not added
        back: the figure stays a floor)."""
        if not self.mind_risk_rules:
            return None
        if card.pan not in self.funds:
            result = await self.send(
                "balance", lambda: self.client.balance(card, card.default_pin, default_entry(card))
            )
            if result is None or not result.approved or result.balance_fen is None:
                return None
            self.funds[card.pan] = result.balance_fen
        return self.funds[card.pan]

    def spend(self, card: CardProfile, amount_fen: int) -> None:
        if card.pan in self.funds:
            self.funds[card.pan] = max(0, self.funds[card.pan] - amount_fen)

    async def shopper(self) -> tuple[CardProfile, int] | None:
        """A card that is not resting and an amount it can pay (a smaller basket if funds are short), or
        None when every card rests or is spent."""
        if not self.mind_risk_rules:
            card = self.rng.choice(self.cards)
            return card, self.amount()
        cards = [c for c in self.cards if not self.resting(c)]
        self.rng.shuffle(cards)
        amount = self.amount()
        for card in cards:
            funds = await self.known_funds(card)
            if funds is None or amount <= funds:
                return card, amount
            if funds >= 100:
                return card, self.rng.randint(100, funds)
        return None

    # ----------------------------------------------------------------------------------- choices

    def amount(self) -> int:
        """A supermarket basket: mostly 5 to 300 CNY, a few large ones."""
        amount = int(self.rng.lognormvariate(8.5, 1.1))
        return max(100, min(amount, 500_000))

    def entry_for(self, card: CardProfile) -> str:
        if card.chip is not None and card.track2:
            roll = self.rng.random()
            return "chip" if roll < 0.6 else "contactless" if roll < 0.95 else "fallback"
        if card.track2:
            return "manual" if self.rng.random() < 0.03 else "magstripe"
        return "manual"

    def pin_for(self, card: CardProfile, entry: str, amount_fen: int) -> str | None:
        if entry == "contactless" and amount_fen <= CONTACTLESS_NO_PIN_LIMIT_FEN:
            return None
        return card.default_pin

    def _card_of(self, entry: JournalEntry) -> CardProfile | None:
        return self.by_pan.get(open_pan(self.state.journal_key, entry.pan_sealed, self.state.tid))

    def candidates(self, kind: str) -> list[tuple[JournalEntry, CardProfile]]:
        """Recent journal entries a void / refund / completion can act on, with their card."""
        found: list[tuple[JournalEntry, CardProfile]] = []
        for entry in reversed(self.state.journal):
            if len(found) >= RECENT:
                break
            if entry.reversed or entry.voided or not entry.rrn:
                continue
            if kind in ("void", "refund") and entry.kind == SALE:
                if kind == "void" and entry.refunded_fen:
                    continue
                if kind == "refund" and entry.amount_fen - entry.refunded_fen < 2:
                    continue
            elif kind in ("completion", "preauth_void") and entry.kind == PREAUTH:
                if entry.completed:
                    continue
            elif kind == "completion_void" and entry.kind == COMPLETION:
                pass
            else:
                continue
            card = self._card_of(entry)
            if card is not None:
                found.append((entry, card))
        return found

    # ----------------------------------------------------------------------------------- steps

    async def step(self) -> None:
        available = {
            kind: weight
            for kind, weight in WEIGHTS.items()
            if kind not in ("void", "refund", "completion", "preauth_void", "completion_void")
            or self.candidates(kind)
        }
        kinds, weights = zip(*available.items(), strict=True)
        kind = self.rng.choices(kinds, weights)[0]
        await getattr(self, f"do_{kind}")()
        self.report.transactions += 1

    async def _sale(self, card: CardProfile, amount: int, pin: str | None, entry: str) -> TxnResult | None:
        result = await self.send("sale", lambda: self.client.sale(card, pin, amount, entry), card.pan)
        if result is not None and pin == card.default_pin and result.response_code in ("00", "51"):
            self.wrong_pin_streak[card.pan] = 0  # the issuer checked the right PIN: its count is reset
        if result is not None and result.approved:
            self.spend(card, amount)
        return result

    async def do_sale(self) -> None:
        chosen = await self.shopper()
        if chosen is None:
            return await self.do_balance()  # every card rests: the shopper only asks the balance
        card, amount = chosen
        entry = self.entry_for(card)
        await self._sale(card, amount, self.pin_for(card, entry, amount), entry)

    async def do_wrong_pin(self) -> None:
        allowed = [
            c
            for c in self.cards
            if not self.wrong_pin_streak[c.pan]
            and c.default_pin != WRONG_PIN
            and not self.resting(c)
            and self.room_for_wrong_pin(c)
        ]
        if not allowed or not self.room_for_declines():
            return await self.do_sale()
        card = self.rng.choice(allowed)
        self.wrong_pin_streak[card.pan] += 1
        entry = default_entry(card)
        await self.send("sale", lambda: self.client.sale(card, WRONG_PIN, self.amount(), entry), card.pan)

    async def do_low_funds(self) -> None:
        cards = [c for c in self.cards if not self.resting(c)]
        if not cards or not self.room_for_declines():
            return await self.do_sale()
        card = self.rng.choice(cards)
        entry = default_entry(card)
        await self._sale(card, LOW_FUNDS_AMOUNT_FEN, card.default_pin, entry)

    async def do_balance(self) -> None:
        card = self.rng.choice(self.cards)
        entry = default_entry(card)
        await self.send("balance", lambda: self.client.balance(card, card.default_pin, entry))

    async def do_void(self) -> None:
        entry, card = self.rng.choice(self.candidates("void"))
        assert entry.rrn is not None
        await self._acting("void", lambda: self.client.void(entry.rrn or "", card))

    async def do_refund(self) -> None:
        entry, card = self.rng.choice(self.candidates("refund"))
        left = entry.amount_fen - entry.refunded_fen
        amount = self.rng.randint(1, max(1, left // 2))
        await self._acting("refund", lambda: self.client.refund(entry.rrn or "", card, amount))

    async def do_preauth(self) -> None:
        chosen = await self.shopper()
        if chosen is None:
            return await self.do_balance()
        card, amount = chosen
        entry = self.entry_for(card)
        if entry == "contactless":
            entry = "chip"
        pin = card.default_pin
        result = await self.send("preauth", lambda: self.client.preauth(card, pin, amount, entry), card.pan)
        if result is not None and result.approved:
            self.spend(card, amount)

    async def do_completion(self) -> None:
        entry, card = self.rng.choice(self.candidates("completion"))
        ceiling = entry.amount_fen * 115 // 100
        amount = max(1, min(ceiling, int(entry.amount_fen * self.rng.uniform(0.6, 1.15))))
        funds = await self.known_funds(card)
        if funds is not None and amount - entry.amount_fen > funds:
            amount = entry.amount_fen  # the card cannot pay the tip: complete what was held
        result = await self._acting(
            "completion", lambda: self.client.complete(entry.rrn or "", card, amount), card.pan
        )
        if result is not None and result.approved:
            self.spend(card, max(0, amount - entry.amount_fen))

    async def do_preauth_void(self) -> None:
        entry, card = self.rng.choice(self.candidates("preauth_void"))
        await self._acting("preauth_void", lambda: self.client.preauth_void(entry.rrn or "", card))

    async def do_completion_void(self) -> None:
        entry, card = self.rng.choice(self.candidates("completion_void"))
        await self._acting("completion_void", lambda: self.client.complete_void(entry.rrn or "", card))

    async def do_no_answer(self) -> None:
        """The answer never comes (as far as the cashier knows): reverse at once with `98`."""
        voids = self.candidates("void")
        if voids and self.rng.random() < 0.3:
            entry, card = self.rng.choice(voids)
            result = await self._acting("void", lambda: self.client.void(entry.rrn or "", card))
        else:
            chosen = await self.shopper()
            if chosen is None:
                return await self.do_balance()
            card, amount = chosen
            entry_mode = self.entry_for(card)
            result = await self._sale(card, amount, self.pin_for(card, entry_mode, amount), entry_mode)
        if result is not None and not result.needs_reversal and self.state.last is not None:
            await self.reverse("98")

    async def _acting(
        self, kind: str, send: Callable[[], Awaitable[TxnResult]], pan: str = ""
    ) -> TxnResult | None:
        try:
            return await self.send(kind, send, pan)
        except UnknownOriginal:
            self.report.counts[(kind, "no original")] += 1
            return None

    # ----------------------------------------------------------------------------------- settlement

    def counted(self) -> int:
        return sum(1 for e in self.state.journal if e.in_totals and e.batch == self.state.batch)

    async def settle(self) -> None:
        """Settle under the POS policy (a lost answer not reversed yet is reversed first)."""
        batch = self.state.batch
        postings = _postings(self.state, batch)
        outcome = await self.policy.settle()
        if outcome.reversal is not None or outcome.reversal_error is not None:
            self._count_reversal(outcome.reversal, outcome.reversal_error)
        if outcome.pending is not None:
            self.report.counts[("settlement", "pending reversal")] += 1
            return
        if outcome.refused is not None:
            self.report.counts[("settlement", outcome.refused.response_code)] += 1
        if outcome.sign_in is not None:
            self.count_sign_in(outcome.sign_in)
        result = outcome.result
        assert result is not None
        self.report.settlements.append(result)
        self.report.counts[("settlement", "balanced" if result.balanced else result.response_code)] += 1
        if result.uploaded:
            self.report.counts[("batch_upload", str(result.uploaded))] += 1
        if result.settled:
            self.effect.update(postings)

    def finish(self) -> DayReport:
        self.effect.update(_postings(self.state))
        self.effect.subtract(self.start_postings)
        held = _holds(self.state)
        held.subtract(self.start_holds)
        for card in self.cards:
            self.report.effect_fen[card] = self.effect.get(card.pan, 0)
            self.report.held_fen[card] = held.get(card.pan, 0)
        return self.report


async def play_day(
    client: TerminalClient,
    cards: Sequence[CardProfile],
    transactions: int,
    rng: random.Random,
    *,
    settle: bool = True,
    batch_limit: int = DEFAULT_BATCH_LIMIT,
    mind_risk_rules: bool = True,
) -> DayReport:
    """Play `transactions` steps of a mixed day on `client` (connected; signed in here if needed) with
    `cards`, then settle (unless `settle=False`). Returns the `DayReport`; the caller saves the state.
    `mind_risk_rules=False`: the day without regard to the default risk rules (see the module's docstring)."""
    day = _Day(client, cards, rng, batch_limit, mind_risk_rules)
    signed = await day.policy.ensure_signed_in()
    if signed is not None:
        day.count_sign_in(signed)
        if not signed.approved:
            return day.finish()
    for _ in range(transactions):
        await day.step()
        if day.counted() >= batch_limit:
            await day.settle()
    if settle:
        await day.settle()
    return day.finish()
