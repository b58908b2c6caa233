"""Labelled traffic: a generated trading day on many terminals with injected instances of every fraud pattern
of issue 11, and its ground truth — to measure a rule set (`evaluate`: which patterns it flags, how many
normal transactions it flags, the confusion matrix per rule), in tests, the docs and `posgate risk
labelled-day`.

The estate: merchants of several categories (supermarkets, restaurants, fuel, hotels, electronics, a
jeweller) in four cities, each with its registered shop location, usual trading hours, average ticket and
daily volume; one to three terminals each; a population of cards (debit and credit BINs). Cards are keyed by
a generated hash: no PAN exists anywhere here. `history_days` days of normal trading before the day give
the merchants their baselines (average ticket, hours, usual day) and the cards their history.

Injected patterns (`PATTERNS`), each instance labelled with its pattern and instance id:
`cash_out` (a merchant's own credit cards: regular round sales at night, the same cards again and again),
`relocated_terminal` (field 59 hundreds of km from the shop), `moved_terminal` (10–40 km), `mcc_misuse`
(a grocery's tickets far above its average, at hours it never trades), `card_testing` (many small
attempts and declines on one terminal), `split_sale` (one card, one merchant, several sales just under a
limit within minutes), `velocity` (one card six times at one merchant within 10 minutes),
`stolen_card` (the issuer answers 41/43, the card is tried again), `wrong_pin` (PIN guessing),
`dormant_spike` (a terminal idle for months suddenly takes large amounts), `new_merchant_spike` (a
merchant live for days takes over 100,000 CNY), `refund_abuse` (refunds above sales).

The evaluation replays the day in time order through `decision.decide` with the host's own counters kept
in memory (`backtest.MemoryCounters`) — the same facts the host builds — so a day of 24 hours is judged in
seconds. Issuer answers come from the generator; a request the rules decline is counted with the rules'
code, as the host counts it. Pure apart from the clock it is given: same seed, same day.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from posgate.risk.aggregates import Outcome, Request
from posgate.risk.backtest import MemoryCounters
from posgate.risk.decision import decide
from posgate.risk.facts import Assessment, Profile, build_facts
from posgate.risk.rules import RuleSet
from posgate.risk.vocabulary import WINDOWS

PATTERNS = (
    "cash_out",
    "relocated_terminal",
    "moved_terminal",
    "mcc_misuse",
    "card_testing",
    "split_sale",
    "velocity",
    "stolen_card",
    "wrong_pin",
    "dormant_spike",
    "new_merchant_spike",
    "refund_abuse",
)
CITIES = {  # registered shops are scattered within a few km of these
    "Shenzhen": (22.5431, 114.0579),
    "Guangzhou": (23.1291, 113.2644),
    "Shanghai": (31.2304, 121.4737),
    "Chengdu": (30.5728, 104.0668),
}
# category → (MCC, average ticket fen, purchases a day per terminal, trading hours (local, [start, end)))
CATEGORIES: dict[str, tuple[str, int, int, tuple[int, int]]] = {
    "supermarket": ("5311", 9_000, 90, (8, 22)),
    "grocery": ("5411", 4_500, 70, (7, 21)),
    "restaurant": ("5812", 12_000, 50, (10, 22)),
    "fuel": ("5541", 30_000, 60, (6, 23)),
    "hotel": ("7011", 60_000, 10, (0, 24)),
    "electronics": ("5732", 350_000, 6, (10, 21)),
    "jeweller": ("5944", 900_000, 2, (10, 20)),
}
ESTATE = (  # category, how many merchants
    ("supermarket", 11),
    ("grocery", 11),
    ("restaurant", 14),
    ("fuel", 5),
    ("hotel", 4),
    ("electronics", 4),
    ("jeweller", 2),
)
BINS = {"622999": "debit", "621700": "debit", "622848": "debit", "622888": "credit", "625800": "credit"}
TRUTH_HEADER = (
    "at_utc",
    "kind",
    "tid",
    "mid",
    "card_key",
    "bin",
    "amount_fen",
    "issuer_answer",
    "location",
    "pattern",
    "instance",
)
ISSUER_NORMAL = (("00", 0.965), ("51", 0.025), ("55", 0.004), ("05", 0.006))


@dataclass(frozen=True)
class Shop:
    mid: str
    category: str
    mcc: str
    city: str
    location: tuple[float, float]
    avg_ticket_fen: int
    hours: tuple[int, int]
    since: dt.datetime  # live since (naive UTC)
    tids: tuple[str, ...]


@dataclass
class Txn:
    """One request of the day (or of its history) with its ground truth."""

    at: dt.datetime  # naive UTC
    kind: str  # sale | refund
    tid: str
    mid: str
    card: str  # a generated card key (stands for the PAN hash)
    bin: str
    amount_fen: int
    issuer_answer: str  # what the issuer would answer if asked
    location: str | None = None  # field 59
    pattern: str | None = None
    instance: str | None = None


@dataclass
class LabelledDay:
    day: dt.date  # local business date
    timezone: str
    shops: dict[str, Shop]
    terminals: dict[str, tuple[str, dt.datetime, str]]  # tid → (mid, created_at, registered location)
    history: list[Txn]
    transactions: list[Txn]

    @property
    def instances(self) -> dict[str, str]:
        """instance id → pattern."""
        return {t.instance: t.pattern for t in self.transactions if t.instance and t.pattern}

    def write(self, folder: Path) -> Path:
        """The day and its ground truth as CSV (`labelled-<day>.csv`), one row per request, no card data."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"labelled-{self.day}.csv"
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(TRUTH_HEADER)
            for t in self.transactions:
                where, pattern, instance = t.location or "", t.pattern or "", t.instance or ""
                answer = t.issuer_answer
                writer.writerow(
                    [
                        t.at.isoformat(),
                        t.kind,
                        t.tid,
                        t.mid,
                        t.card,
                        t.bin,
                        t.amount_fen,
                        answer,
                        where,
                        pattern,
                        instance,
                    ]
                )
        return path


def _card(rng: random.Random, n: int, bin_: str | None = None) -> tuple[str, str]:
    bin_ = bin_ or rng.choice(list(BINS))
    return hashlib.sha256(f"card:{n}:{bin_}".encode()).hexdigest(), bin_


def _near(rng: random.Random, point: tuple[float, float], km: float) -> tuple[float, float]:
    """A point about `km` from `point` in a random direction."""
    angle = rng.uniform(0, 2 * math.pi)
    lat = point[0] + km / 111.0 * math.sin(angle)
    lon = point[1] + km / (111.0 * math.cos(math.radians(point[0]))) * math.cos(angle)
    return round(lat, 5), round(lon, 5)


def _text(point: tuple[float, float]) -> str:
    return f"{point[0]:.5f},{point[1]:.5f}"


def _ticket(rng: random.Random, average: int) -> int:
    """A ticket around `average` (log-normal), in fen, at least 1 CNY."""
    return max(100, int(rng.lognormvariate(math.log(average) - 0.18, 0.6)))


def _answer(rng: random.Random) -> str:
    roll, total = rng.random(), 0.0
    for code, share in ISSUER_NORMAL:
        total += share
        if roll < total:
            return code
    return "00"


class _Builder:
    def __init__(self, seed: int, day: dt.date, timezone: str) -> None:
        self.rng = random.Random(seed)
        self.day, self.zone = day, ZoneInfo(timezone)
        self.shops: dict[str, Shop] = {}
        self.terminals: dict[str, tuple[str, dt.datetime, str]] = {}
        self.cards = 0

    def utc(self, day: dt.date, hour: float) -> dt.datetime:
        local = dt.datetime.combine(day, dt.time(), self.zone) + dt.timedelta(hours=hour)
        return local.astimezone(dt.UTC).replace(tzinfo=None)

    def new_card(self, bin_: str | None = None) -> tuple[str, str]:
        self.cards += 1
        return _card(self.rng, self.cards, bin_)

    def shop(self, category: str, city: str, live_days: int, terminals: int) -> Shop:
        mcc, ticket, _, hours = CATEGORIES[category]
        n = len(self.shops) + 1
        mid = f"8984401{n:08d}"
        start = self.utc(self.day, 0) - dt.timedelta(days=live_days)
        location = _near(self.rng, CITIES[city], self.rng.uniform(0.5, 8))
        tids = tuple(f"{60_000_000 + n * 10 + k:08d}" for k in range(terminals))
        shop = Shop(mid, category, mcc, city, location, ticket, hours, start, tids)
        self.shops[mid] = shop
        for tid in tids:
            self.terminals[tid] = (mid, start, _text(location))
        return shop

    def normal_day(self, day: dt.date, shops: list[Shop], population: list[tuple[str, str]]) -> list[Txn]:
        rng, out = self.rng, []
        for shop in shops:
            _, _, per_terminal, (first, last) = CATEGORIES[shop.category]
            for tid in shop.tids:
                for _ in range(max(1, int(rng.gauss(per_terminal, per_terminal * 0.15)))):
                    hour = rng.triangular(first, last, (first + last) / 2 + 1)
                    card, bin_ = rng.choice(population)
                    reports = int(tid) % 3 != 0  # two terminals in three send field 59
                    where = _text(_near(rng, shop.location, rng.uniform(0, 0.3))) if reports else None
                    amount = _ticket(rng, shop.avg_ticket_fen)
                    out.append(
                        Txn(
                            self.utc(day, hour),
                            "sale",
                            tid,
                            shop.mid,
                            card,
                            bin_,
                            amount,
                            _answer(rng),
                            where,
                        )
                    )
                if rng.random() < 0.08:  # an occasional refund of an earlier, small purchase
                    card, bin_ = rng.choice(population)
                    amount = min(_ticket(rng, shop.avg_ticket_fen), 20_000)
                    out.append(
                        Txn(
                            self.utc(day, rng.uniform(first + 2, last)),
                            "refund",
                            tid,
                            shop.mid,
                            card,
                            bin_,
                            amount,
                            "00",
                        )
                    )
        return out


def generate_day(
    seed: int = 11,
    day: dt.date = dt.date(2026, 12, 3),
    timezone: str = "Asia/Shanghai",
    history_days: int = 8,
) -> LabelledDay:
    """A labelled trading day (over 5,000 requests) with every pattern injected, and its history."""
    b = _Builder(seed, day, timezone)
    rng = b.rng
    cities = list(CITIES)
    normal_shops = [
        b.shop(category, cities[(i + n) % len(cities)], rng.randint(60, 900), rng.choice((1, 2, 2, 3)))
        for n, (category, count) in enumerate(ESTATE)
        for i in range(count)
    ]
    population = [b.new_card() for _ in range(30_000)]
    history = [
        t
        for back in range(history_days, 0, -1)
        for t in b.normal_day(day - dt.timedelta(days=back), normal_shops, population)
    ]
    today = b.normal_day(day, normal_shops, population)
    injected: list[Txn] = []

    def add(pattern: str, k: int, txns: list[Txn], into: list[Txn] | None = None) -> None:
        for t in txns:
            t.pattern, t.instance = pattern, f"{pattern}-{k}"
        (injected if into is None else into).extend(txns)

    at = b.utc
    supermarkets = [s for s in normal_shops if s.category == "supermarket"]
    groceries = [s for s in normal_shops if s.category == "grocery"]
    restaurants = [s for s in normal_shops if s.category == "restaurant"]

    # cash-out: a colluding merchant's own credit cards, round sales late at night, again and again
    for k, shop in enumerate((supermarkets[0], restaurants[0])):
        for c in range(2):
            card, bin_ = b.new_card("625800")
            for back in range(1, 11):  # ten nights of history at this shop: the "regular customer"
                when = at(day - dt.timedelta(days=back), 23.2 + rng.random() * 0.6)
                past = Txn(
                    when, "sale", shop.tids[0], shop.mid, card, bin_, rng.choice((600_000, 800_000)), "00"
                )
                add("cash_out", k * 2 + c, [past], into=history)
            when = at(day, 23.3 + c * 0.2)
            add("cash_out", k * 2 + c, [Txn(when, "sale", shop.tids[0], shop.mid, card, bin_, 900_000, "00")])

    # relocated (hundreds of km) and moved (tens of km) terminals
    for k, shop in enumerate(supermarkets[1:3] + groceries[0:1]):
        far = _text(_near(rng, shop.location, rng.uniform(300, 1200)))
        txns = [
            Txn(
                at(day, 11 + n),
                "sale",
                shop.tids[0],
                shop.mid,
                *b.new_card(),
                _ticket(rng, shop.avg_ticket_fen),
                "00",
                far,
            )
            for n in range(3)
        ]
        add("relocated_terminal", k, txns)
    for k, shop in enumerate(restaurants[1:3]):
        moved = _text(_near(rng, shop.location, rng.uniform(12, 40)))
        txns = [
            Txn(
                at(day, 12 + n),
                "sale",
                shop.tids[0],
                shop.mid,
                *b.new_card(),
                _ticket(rng, shop.avg_ticket_fen),
                "00",
                moved,
            )
            for n in range(3)
        ]
        add("moved_terminal", k, txns)

    # MCC misuse: a grocery selling jewellery-sized tickets, at night when it never trades
    for k, shop in enumerate(groceries[1:4]):
        txns = [
            Txn(
                at(day, 2.5 + n * 0.4),
                "sale",
                shop.tids[0],
                shop.mid,
                *b.new_card("622888"),
                rng.randint(3_000, 9_000) * 100,
                "00",
            )
            for n in range(3)
        ]
        add("mcc_misuse", k, txns)

    # card testing: many cards, small amounts, mostly declined, within minutes on one terminal
    for k, shop in enumerate(restaurants[3:5]):
        start = 14 + k * 3
        txns = []
        for n in range(12):
            card, bin_ = b.new_card("622888")
            answer = rng.choice(("14", "54", "05", "51", "00"))
            txns.append(
                Txn(
                    at(day, start + n * 0.01),
                    "sale",
                    shop.tids[0],
                    shop.mid,
                    card,
                    bin_,
                    rng.randint(100, 500),
                    answer,
                )
            )
        add("card_testing", k, txns)

    # split sales: one card, one merchant, sales just under 5,000 CNY within minutes
    for k, shop in enumerate(supermarkets[3:6]):
        card, bin_ = b.new_card("625800")
        txns = [
            Txn(at(day, 15 + n * 0.08), "sale", shop.tids[0], shop.mid, card, bin_, 499_000 - n * 3_700, "00")
            for n in range(3)
        ]
        add("split_sale", k, txns)

    # velocity: one card six times at one merchant within 10 minutes
    for k, shop in enumerate(groceries[4:6]):
        card, bin_ = b.new_card()
        txns = [
            Txn(
                at(day, 16 + n * 0.025),
                "sale",
                shop.tids[0],
                shop.mid,
                card,
                bin_,
                _ticket(rng, shop.avg_ticket_fen),
                "00",
            )
            for n in range(6)
        ]
        add("velocity", k, txns)

    # stolen cards: the issuer answers lost / stolen, the card is tried again elsewhere
    for k in range(3):
        card, bin_ = b.new_card()
        first, second = rng.sample(supermarkets + restaurants, 2)
        txns = [
            Txn(
                at(day, 13 + k),
                "sale",
                first.tids[0],
                first.mid,
                card,
                bin_,
                80_000,
                rng.choice(("41", "43")),
            ),
            Txn(at(day, 13.3 + k), "sale", second.tids[0], second.mid, card, bin_, 60_000, "00"),
        ]
        add("stolen_card", k, txns)

    # PIN guessing: three wrong PINs, then a fourth try
    for k in range(3):
        card, bin_ = b.new_card("622999")
        shop = rng.choice(supermarkets)
        txns = [
            Txn(at(day, 17 + k + n * 0.05), "sale", shop.tids[0], shop.mid, card, bin_, 50_000, "55")
            for n in range(3)
        ]
        txns.append(Txn(at(day, 17.2 + k), "sale", shop.tids[0], shop.mid, card, bin_, 50_000, "00"))
        add("wrong_pin", k, txns)

    # dormant terminal: live for a year, no sales for months, then a day of large sales
    for k in range(2):
        shop = b.shop("electronics", cities[k], live_days=365, terminals=1)
        txns = [
            Txn(at(day, 10 + n), "sale", shop.tids[0], shop.mid, *b.new_card(), 800_000, "00")
            for n in range(4)
        ]
        add("dormant_spike", k, txns)

    # new merchant: live for a week, suddenly takes over 100,000 CNY
    for k in range(2):
        shop = b.shop("electronics", cities[k + 2], live_days=7, terminals=1)
        txns = [
            Txn(at(day, 10 + n * 0.7), "sale", shop.tids[0], shop.mid, *b.new_card("625800"), 2_600_000, "00")
            for n in range(5)
        ]
        add("new_merchant_spike", k, txns)

    # refund abuse: refunds above the day's sales at a restaurant
    for k, shop in enumerate(restaurants[5:7]):
        txns = [
            Txn(at(day, 9.0 + n * 0.1), "refund", shop.tids[0], shop.mid, *b.new_card(), 400_000, "00")
            for n in range(5)
        ]
        add("refund_abuse", k, txns)

    transactions = sorted(today + injected, key=lambda t: t.at)
    return LabelledDay(day, timezone, b.shops, b.terminals, sorted(history, key=lambda t: t.at), transactions)


@dataclass
class Evaluation:
    rules_version: str
    normal: int = 0
    normal_flagged: int = 0
    injected: int = 0
    injected_flagged: int = 0
    instances: dict[str, str] = field(default_factory=dict)  # instance → pattern
    caught: set[str] = field(default_factory=set)  # instances with a flagged transaction
    # rule → [hits on injected transactions, hits on normal ones]; rule → pattern → hits
    per_rule: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    per_rule_pattern: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    declines: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # response code → count

    @property
    def normal_flag_rate(self) -> float:
        return self.normal_flagged / self.normal if self.normal else 0.0

    def patterns(self) -> dict[str, tuple[int, int]]:
        """pattern → (instances caught, instances)."""
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for instance, pattern in self.instances.items():
            out[pattern][1] += 1
            out[pattern][0] += instance in self.caught
        return {p: (c, n) for p, (c, n) in sorted(out.items())}

    def as_dict(self) -> dict[str, Any]:
        return {
            "rules_version": self.rules_version,
            "transactions": self.normal + self.injected,
            "normal": self.normal,
            "normal_flagged": self.normal_flagged,
            "normal_flag_rate": round(self.normal_flag_rate, 5),
            "injected": self.injected,
            "injected_flagged": self.injected_flagged,
            "patterns": {p: {"caught": c, "instances": n} for p, (c, n) in self.patterns().items()},
            "rules": {
                rule: {
                    "injected_hits": tp,
                    "normal_hits": fp,
                    "by_pattern": dict(self.per_rule_pattern[rule]),
                }
                for rule, (tp, fp) in sorted(self.per_rule.items())
            },
            "declines": dict(sorted(self.declines.items())),
        }


def evaluate(labelled: LabelledDay, rules: RuleSet) -> Evaluation:
    """Replay the history (counters only) and the day (every request decided) through `rules`."""
    counters = MemoryCounters()
    zone = ZoneInfo(labelled.timezone)
    report = Evaluation(rules.version, instances=labelled.instances)
    needed = sorted(rules.aggregates)
    profiles = {
        tid: Profile(location, created, labelled.shops[mid].mcc, labelled.shops[mid].since)
        for tid, (mid, created, location) in labelled.terminals.items()
    }

    def record(t: Txn, code: str, hour: int) -> None:
        approved = code == "00"
        counters.record(
            Outcome(t.at, t.kind, approved, code, t.amount_fen, t.card, t.bin, t.tid, t.mid, hour)
        )

    distinct = [WINDOWS[w] for _, measure, w in needed if measure.startswith("distinct_")]
    seen_s = max(distinct, default=0) + 60
    pruned: dt.datetime | None = None
    for t in labelled.history:
        record(t, t.issuer_answer, t.at.replace(tzinfo=dt.UTC).astimezone(zone).hour)
    for t in labelled.transactions:
        if pruned is None or t.at - pruned > dt.timedelta(hours=3):
            counters.prune(t.at, seen_s)
            pruned = t.at
        local = t.at.replace(tzinfo=dt.UTC).astimezone(zone)
        profile = profiles[t.tid]
        assessment = Assessment(
            kind=t.kind,
            amount_fen=t.amount_fen,
            tid=t.tid,
            mid=t.mid,
            pan_hash=t.card,
            bin=t.bin,
            card_kind=BINS[t.bin],
            entry_mode="051",
            has_pin=True,
            location=t.location,
        )
        values = counters.read(Request(t.card, t.bin, t.tid, t.mid, local.hour), needed, t.at)
        facts = build_facts(
            assessment, profile, rules.group_of(profile.mcc), values, {}, t.at, local.replace(tzinfo=None)
        )
        decision = decide(rules, t.kind, facts)
        flagged = decision.declined or decision.action == "review" or bool(decision.after)
        injected = t.pattern is not None
        if injected:
            report.injected += 1
            report.injected_flagged += flagged
            if flagged and t.instance:
                report.caught.add(t.instance)
        else:
            report.normal += 1
            report.normal_flagged += flagged
        for hit in decision.hits:
            report.per_rule[hit.rule][0 if injected else 1] += 1
            report.per_rule_pattern[hit.rule][t.pattern or "normal"] += 1
        code = decision.code if decision.declined and decision.code else t.issuer_answer
        if decision.declined:
            report.declines[code] += 1
        record(t, code, local.hour)
    return report
