"""One request's facts for the rules, pure: what the host knows of the request (`Assessment`), what the store
knows of its terminal and merchant (`Profile`), the aggregates and the list flags → the objects of
`risk.vocabulary` that `decision.decide` evaluates. `now` and the local time are parameters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from posgate.risk.geo import parse_location, terminal_distance_km
from posgate.risk.vocabulary import PLAIN


@dataclass(frozen=True)
class Assessment:
    """A request to assess, as the host has it after reading the card. No PAN: its keyed hash and BIN."""

    kind: str  # sale | preauth | completion | refund
    amount_fen: int
    tid: str
    mid: str
    pan_hash: str | None
    bin: str | None
    card_kind: str | None = None  # debit | credit
    entry_mode: str | None = None  # field 22
    fallback: bool = False
    has_pin: bool = False
    location: str | None = None  # field 59 as sent


@dataclass(frozen=True)
class Profile:
    """The terminal's and merchant's records as risk reads them."""

    terminal_location: str | None
    terminal_created_at: dt.datetime | None
    mcc: str
    merchant_since: dt.datetime | None  # live_at, else created_at


def build_facts(
    assessment: Assessment,
    profile: Profile,
    group: str,
    aggregates: Mapping[str, Mapping[str, Any]],
    lists: Mapping[str, bool],
    now: dt.datetime,
    local: dt.datetime,
) -> dict[str, dict[str, Any]]:
    """The facts `decide` reads. `now` is naive UTC (as the store keeps times), `local` the acquirer's
    local time of the same moment (hour and weekday rules).

    >>> a = Assessment("sale", 8_800, "10000001", "898440153110001", "h", "622202", "credit", "051",
    ...                location="31.2304,121.4737")
    >>> p = Profile("31.2304,121.4737", dt.datetime(2026, 1, 1), "5311", dt.datetime(2026, 11, 3))
    >>> f = build_facts(a, p, "default", {}, {}, dt.datetime(2026, 12, 3, 6), dt.datetime(2026, 12, 3, 14))
    >>> f["txn"]["hour"], f["terminal"]["distance_km"], f["merchant"]["age_days"], f["lists"]["card_blocked"]
    (14, 0.0, 30, False)
    """
    facts: dict[str, dict[str, Any]] = {
        obj: {k: v for k, (v, _) in names.items()} for obj, names in PLAIN.items()
    }
    facts["txn"].update(
        kind=assessment.kind,
        amount_fen=assessment.amount_fen,
        hour=local.hour,
        weekday=local.weekday(),
        card_kind=assessment.card_kind or "debit",
        entry_mode=assessment.entry_mode or "",
        fallback=assessment.fallback,
        has_pin=assessment.has_pin,
        has_location=parse_location(assessment.location) is not None,
    )
    facts["card"]["bin"] = assessment.bin or ""
    facts["terminal"].update(
        tid=assessment.tid,
        distance_km=terminal_distance_km(assessment.location, profile.terminal_location),
        age_days=_days(profile.terminal_created_at, now),
    )
    facts["merchant"].update(
        mid=assessment.mid, mcc=profile.mcc, group=group, age_days=_days(profile.merchant_since, now)
    )
    for obj, names in aggregates.items():
        facts[obj].update(names)
    for name, flag in lists.items():
        if name not in facts["lists"]:
            raise KeyError(f"unknown list flag {name}")
        facts["lists"][name] = bool(flag)
    return facts


def _days(since: dt.datetime | None, now: dt.datetime) -> int:
    return max(0, (now - since).days) if since is not None else 0
