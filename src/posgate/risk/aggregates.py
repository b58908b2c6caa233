"""Sliding-window aggregates, pure: what one finished request adds to the counters, which counter rows a rule
set needs to read, and how those rows become the facts `card_merchant.approved_10m`, `merchant.
avg_ticket_fen_30d` and the rest. The store shell is `risk.counters_store`; `now` is always a parameter.

Counters are kept in time buckets at three resolutions, each used for the windows it is fine enough for:

| resolution | bucket | windows | a window of W counts the last … |
|---|---|---|---|
| minute | 60 s | up to 1 h | W plus at most 59 s |
| hour | 3600 s | 2 h to 24 h | W plus at most 59 min 59 s |
| day | 86400 s (UTC days) | 7 d, 30 d | W plus at most 23 h 59 min 59 s |

A window therefore never misses an event inside it and may count one bucket's worth more — the safe side for
risk. Distinct counts (`terminal.distinct_cards_10m`) are exact: each (key, member) keeps when it was last
seen. The merchant's baseline comes from its day buckets and from an hour-of-day counter (local hours).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from posgate.risk.vocabulary import (
    COUNTERS,
    DISTINCT,
    PURCHASE_KINDS,
    STOLEN_CODES,
    WINDOWS,
    WRONG_PIN_CODES,
)

MINUTE, HOUR, DAY = "m", "h", "d"
RESOLUTION_S = {MINUTE: 60, HOUR: 3600, DAY: 86400}
MEASURES = tuple(COUNTERS)  # the order of a counter row's values
BASELINE_DAYS = 30
# key kind of the merchant's approved purchases per local hour of day (day buckets)
HOUR_OF_DAY = "merchant_hour"
# how long each resolution's buckets are needed: the longest window it serves plus one bucket
RETENTION_S = {MINUTE: 3600 + 60, HOUR: 86400 + 3600, DAY: (BASELINE_DAYS + 1) * 86400}


def resolution_for(window: str) -> str:
    """The bucket resolution that serves a window.

    >>> [resolution_for(window) for window in ("10m", "1h", "2h", "24h", "7d")]
    ['m', 'm', 'h', 'h', 'd']
    """
    seconds = WINDOWS[window]
    return MINUTE if seconds <= 3600 else HOUR if seconds <= 86400 else DAY


def bucket_start(at: dt.datetime, resolution: str) -> dt.datetime:
    """The start of the bucket `at` falls in (naive UTC).

    >>> bucket_start(dt.datetime(2026, 12, 3, 14, 10, 31), "m")
    datetime.datetime(2026, 12, 3, 14, 10)
    >>> bucket_start(dt.datetime(2026, 12, 3, 14, 10, 31), "d")
    datetime.datetime(2026, 12, 3, 0, 0)
    """
    if resolution == MINUTE:
        return at.replace(second=0, microsecond=0)
    if resolution == HOUR:
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def window_since(now: dt.datetime, window: str) -> dt.datetime:
    """The first bucket a window sums: the bucket holding `now - window`.

    >>> window_since(dt.datetime(2026, 12, 3, 14, 10, 31), "10m")
    datetime.datetime(2026, 12, 3, 14, 0)
    """
    return bucket_start(now - dt.timedelta(seconds=WINDOWS[window]), resolution_for(window))


@dataclass(frozen=True)
class Outcome:
    """A finished request as risk counts it. `pan_hash` is the store's keyed hash, never the PAN."""

    at: dt.datetime  # naive UTC
    kind: str
    approved: bool
    response_code: str | None
    amount_fen: int
    pan_hash: str | None
    bin: str | None
    tid: str
    mid: str
    local_hour: int

    def deltas(self) -> tuple[int, ...]:
        """What it adds to each measure of `MEASURES`.

        >>> Outcome(dt.datetime(2026, 12, 3), "sale", True, "00", 500, "h", "622202", "T", "M", 9).deltas()
        (1, 1, 500, 0, 0, 0, 0, 0)
        >>> Outcome(dt.datetime(2026, 12, 3), "sale", False, "55", 500, "h", "622202", "T", "M", 9).deltas()
        (1, 0, 0, 1, 0, 0, 1, 0)
        """
        purchase = self.kind in PURCHASE_KINDS
        refund = self.kind == "refund" and self.approved
        values = {
            "count": int(purchase),
            "approved": int(purchase and self.approved),
            "amount": self.amount_fen if purchase and self.approved else 0,
            "declined": int(purchase and not self.approved),
            "refunds": int(refund),
            "refund_amount": self.amount_fen if refund else 0,
            "wrong_pin": int(self.response_code in WRONG_PIN_CODES),
            "stolen": int(self.response_code in STOLEN_CODES),
        }
        return tuple(values[measure] for measure in MEASURES)

    def keys(self) -> dict[str, str]:
        """Aggregate key → key value for this request (a key without a value — no card — is left out)."""
        keys = {"terminal": self.tid, "merchant": self.mid}
        if self.pan_hash:
            keys["card"] = self.pan_hash
            keys["card_merchant"] = f"{self.pan_hash}:{self.mid}"
        if self.bin:
            keys["bin"] = self.bin
        return keys


@dataclass(frozen=True)
class CounterRow:
    key_kind: str
    key_value: str
    resolution: str
    bucket_at: dt.datetime
    values: tuple[int, ...]  # per `MEASURES`


def counter_rows(outcome: Outcome) -> list[CounterRow]:
    """The counter increments a finished request makes, sorted by primary key (writers on several nodes
    take row locks in one order, so they never deadlock). Nothing when it adds nothing."""
    deltas = outcome.deltas()
    rows: list[CounterRow] = []
    if any(deltas):
        for kind, value in outcome.keys().items():
            for resolution in (MINUTE, HOUR, DAY):
                rows.append(CounterRow(kind, value, resolution, bucket_start(outcome.at, resolution), deltas))
    if outcome.kind in PURCHASE_KINDS and outcome.approved:
        hour_values = tuple(deltas[i] if m in ("approved", "amount") else 0 for i, m in enumerate(MEASURES))
        hour_key = f"{outcome.mid}:{outcome.local_hour:02d}"
        rows.append(CounterRow(HOUR_OF_DAY, hour_key, DAY, bucket_start(outcome.at, DAY), hour_values))
    return sorted(rows, key=lambda r: (r.key_kind, r.key_value, r.resolution, r.bucket_at))


@dataclass(frozen=True)
class SeenRow:
    """(key, member) seen at `at`: `key_kind` is e.g. `terminal.card`."""

    key_kind: str
    key_value: str
    member: str
    at: dt.datetime


def seen_rows(outcome: Outcome) -> list[SeenRow]:
    """The distinct-count members a request refreshes, sorted by primary key."""
    keys = outcome.keys()
    members = {"card": outcome.pan_hash, "merchant": outcome.mid, "terminal": outcome.tid}
    rows = []
    for key, measures in DISTINCT.items():
        if key not in keys:
            continue
        for member_kind in measures.values():
            member = members[member_kind]
            if member:
                rows.append(SeenRow(f"{key}.{member_kind}", keys[key], member, outcome.at))
    return sorted(rows, key=lambda r: (r.key_kind, r.key_value, r.member))


@dataclass(frozen=True)
class Request:
    """What is assessed: the keys its aggregates are read for."""

    pan_hash: str | None
    bin: str | None
    tid: str
    mid: str
    local_hour: int

    def keys(self) -> dict[str, str]:
        keys = {"terminal": self.tid, "merchant": self.mid}
        if self.pan_hash:
            keys["card"] = self.pan_hash
            keys["card_merchant"] = f"{self.pan_hash}:{self.mid}"
        if self.bin:
            keys["bin"] = self.bin
        return keys


@dataclass(frozen=True)
class CounterRead:
    """Read the counters of one key at one resolution from `since` on."""

    key_kind: str
    key_value: str
    resolution: str
    since: dt.datetime


@dataclass(frozen=True)
class SeenRead:
    """Count the members of one key seen since each of `since` (by window)."""

    key_kind: str  # e.g. terminal.card
    key_value: str
    since: Mapping[str, dt.datetime]  # window → first moment counted


@dataclass(frozen=True)
class Plan:
    """The reads one request needs for a set of aggregates (and the merchant baseline, if asked)."""

    counters: tuple[CounterRead, ...]
    seen: tuple[SeenRead, ...]


def plan(
    request: Request, aggregates: Iterable[tuple[str, str, str]], now: dt.datetime, baseline: bool = True
) -> Plan:
    """The reads for `aggregates` ((key, measure, window) — `RuleSet.aggregates`); `baseline` adds the
    merchant's 30 days of day buckets and its hour-of-day counter."""
    keys = request.keys()
    oldest: dict[tuple[str, str], dt.datetime] = {}
    seen: dict[str, dict[str, dt.datetime]] = defaultdict(dict)
    for key, measure, window in aggregates:
        if key not in keys:
            continue
        if measure in COUNTERS:
            slot = (key, resolution_for(window))
            since = window_since(now, window)
            oldest[slot] = min(since, oldest.get(slot, since))
        else:
            seen[f"{key}.{DISTINCT[key][measure]}"][window] = now - dt.timedelta(seconds=WINDOWS[window])
    if baseline:
        since = window_since(now, "30d")
        oldest[("merchant", DAY)] = min(since, oldest.get(("merchant", DAY), since))
    counters = [CounterRead(key, keys[key], resolution, since) for (key, resolution), since in oldest.items()]
    if baseline:
        hour_key = f"{request.mid}:{request.local_hour:02d}"
        counters.append(CounterRead(HOUR_OF_DAY, hour_key, DAY, window_since(now, "30d")))
    seen_reads = [SeenRead(kind, keys[kind.split(".")[0]], dict(windows)) for kind, windows in seen.items()]
    return Plan(tuple(sorted(counters, key=lambda r: (r.key_kind, r.resolution))), tuple(seen_reads))


def summarize(
    request: Request,
    aggregates: Iterable[tuple[str, str, str]],
    now: dt.datetime,
    counter_rows_read: Iterable[CounterRow],
    seen_counts: Mapping[tuple[str, str], int],
    baseline: bool = True,
) -> dict[str, dict[str, Any]]:
    """The aggregate facts (object → name → value) from the rows the plan read. `seen_counts` maps
    (`terminal.card`, window) → distinct members seen in that window."""
    keys = request.keys()
    by_slot: dict[tuple[str, str], list[CounterRow]] = defaultdict(list)
    for row in counter_rows_read:
        by_slot[(row.key_kind, row.resolution)].append(row)
    facts: dict[str, dict[str, Any]] = defaultdict(dict)
    for key, measure, window in aggregates:
        name = f"{measure}_{window}"
        if key not in keys:
            facts[key][name] = 0
        elif measure in COUNTERS:
            since = window_since(now, window)
            index = MEASURES.index(measure)
            rows = by_slot[(key, resolution_for(window))]
            facts[key][name] = sum(row.values[index] for row in rows if row.bucket_at >= since)
        else:
            facts[key][name] = seen_counts.get((f"{key}.{DISTINCT[key][measure]}", window), 0)
    if baseline:
        facts["merchant"].update(
            merchant_baseline(by_slot[("merchant", DAY)], by_slot[(HOUR_OF_DAY, DAY)], now)
        )
    return dict(facts)


def merchant_baseline(
    day_rows: Iterable[CounterRow], hour_rows: Iterable[CounterRow], now: dt.datetime
) -> dict[str, Any]:
    """The merchant's own 30-day baseline, today excluded (today is what is being compared with it).

    >>> day = dt.datetime(2026, 12, 2)
    >>> rows = [CounterRow("merchant", "M", "d", day, (4, 4, 40_000, 0, 0, 0, 0, 0))]
    >>> merchant_baseline(rows, [CounterRow("merchant_hour", "M:09", "d", day, (0, 1, 9_000, 0, 0, 0, 0, 0))],
    ...                   dt.datetime(2026, 12, 3, 9, 30))
    {'active_days_30d': 1, 'avg_ticket_fen_30d': 10000, 'daily_amount_fen_30d': 40000, 'hour_share_30d': 0.25}
    """
    today = bucket_start(now, DAY)
    since = today - dt.timedelta(days=BASELINE_DAYS)
    approved_i, amount_i = MEASURES.index("approved"), MEASURES.index("amount")
    days = [row for row in day_rows if since <= row.bucket_at < today and row.values[approved_i] > 0]
    approved = sum(row.values[approved_i] for row in days)
    amount = sum(row.values[amount_i] for row in days)
    in_hour = sum(row.values[approved_i] for row in hour_rows if since <= row.bucket_at < today)
    return {
        "active_days_30d": len(days),
        "avg_ticket_fen_30d": amount // approved if approved else 0,
        "daily_amount_fen_30d": amount // len(days) if days else 0,
        "hour_share_30d": in_hour / approved if approved else 0.0,
    }
