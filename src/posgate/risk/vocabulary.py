"""The names a rule's expression may use, their meaning and a neutral value for each: the one place that
says what `txn.*`, `card.*`, `card_merchant.*`, `terminal.*`, `merchant.*`, `bin.*` and `lists.*` are.

Aggregates are `<key>.<measure>_<window>`, e.g. `card_merchant.approved_10m` (approved purchases of this card
at this merchant in the last 10 minutes, before this one). Keys: the card (by PAN hash — never the PAN), the
card at this merchant, the terminal, the merchant and the BIN. Windows: `WINDOWS`.
"""

from __future__ import annotations

import re
from typing import Any

WINDOWS: dict[str, int] = {
    "1m": 60,
    "5m": 300,
    "10m": 600,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "6h": 21600,
    "12h": 43200,
    "24h": 86400,
    "7d": 7 * 86400,
    "30d": 30 * 86400,
}
AGGREGATE_KEYS = ("card", "card_merchant", "terminal", "merchant", "bin")
PURCHASE_KINDS = frozenset({"sale", "preauth", "completion"})
ASSESSED_KINDS = ("sale", "preauth", "completion", "refund")
# issuer answers that say the card itself is bad: pick up, lost, stolen, expired, not permitted, restricted
STOLEN_CODES = frozenset({"04", "41", "43", "54", "57", "62"})
# wrong PIN, and the wrong PIN that used up the card's tries (the issuer then blocks the PIN)
WRONG_PIN_CODES = frozenset({"55", "75"})

# summed measures: counted per key in time buckets (risk.counters_store), meaning
COUNTERS: dict[str, str] = {
    "count": "purchase requests (sale, pre-authorization, completion) whatever their outcome",
    "approved": "approved purchases",
    "amount": "sum of approved purchases, fen",
    "declined": "declined purchases (by an issuer or by risk)",
    "refunds": "approved refunds",
    "refund_amount": "sum of approved refunds, fen",
    "wrong_pin": "answers 55 (wrong PIN) or 75 (PIN tries exceeded), any kind of request",
    "stolen": "issuer answers 04, 41, 43, 54, 57 or 62 (pick up, lost, stolen, expired, not permitted)",
}
# distinct measures per key: measure → the member kind counted (table `risk_seen`, risk.counters_store)
DISTINCT: dict[str, dict[str, str]] = {
    "card": {"distinct_merchants": "merchant", "distinct_terminals": "terminal"},
    "terminal": {"distinct_cards": "card"},
    "merchant": {"distinct_cards": "card"},
    "bin": {"distinct_cards": "card"},
}

# plain facts: object → name → (neutral value, meaning); the type of the neutral value is the fact's type
PLAIN: dict[str, dict[str, tuple[Any, str]]] = {
    "txn": {
        "kind": ("sale", "sale | preauth | completion | refund"),
        "amount_fen": (0, "amount of this request, fen"),
        "hour": (12, "local hour of day, 0–23"),
        "weekday": (0, "local day of week, 0 = Monday"),
        "card_kind": ("debit", "debit | credit (from the BIN table)"),
        "entry_mode": ("051", "field 22: 02x magstripe, 05x chip, 07x contactless, 80x fallback"),
        "fallback": (False, "a chip card read by its magstripe"),
        "has_pin": (False, "a PIN block was sent"),
        "has_location": (False, "field 59 was sent and well formed"),
    },
    "card": {"bin": ("000000", "the first six digits")},
    "card_merchant": {},
    "terminal": {
        "tid": ("", "terminal id"),
        "distance_km": (-1.0, "km between field 59 and the registered location; -1.0 when either is unknown"),
        "age_days": (0, "days since the terminal was created"),
    },
    "merchant": {
        "mid": ("", "merchant id"),
        "mcc": ("", "merchant category code"),
        "group": ("default", "the merchant group (rule set `groups`, by MCC)"),
        "age_days": (0, "days since the merchant went live (or was created)"),
        "active_days_30d": (0, "baseline: days with at least one approved purchase in the last 30 days"),
        "avg_ticket_fen_30d": (0, "baseline: average approved purchase over 30 days, fen; 0 when none"),
        "daily_amount_fen_30d": (0, "baseline: approved amount per active day over 30 days, fen"),
        "hour_share_30d": (0.0, "baseline: share (0–1) of 30 days' approved purchases in this local hour"),
    },
    "bin": {},
    "lists": {
        "card_blocked": (False, "the card is on the block list"),
        "card_allowed": (False, "the card is on the allow list"),
        "terminal_blocked": (False, "the terminal is on the block list"),
        "terminal_watched": (False, "the terminal is on the watch list"),
        "merchant_blocked": (False, "the merchant is on the block list"),
        "merchant_watched": (False, "the merchant is on the watch list"),
        "bin_blocked": (False, "the BIN is blocked"),
        "mcc_restricted": (False, "the merchant's MCC is restricted for this card kind"),
    },
}
OBJECTS = tuple(PLAIN)

_AGGREGATE = re.compile(r"^(?P<measure>[a-z_]+?)_(?P<window>\d+[mhd])$")
_REFERENCE = re.compile(r"(?<![\w.])(" + "|".join(OBJECTS) + r")\s*\.\s*([A-Za-z_]\w*)")
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def aggregate_name(obj: str, name: str) -> tuple[str, str] | None:
    """(measure, window) when `obj.name` is a known aggregate, else None.

    >>> aggregate_name("card_merchant", "approved_10m")
    ('approved', '10m')
    >>> aggregate_name("terminal", "distinct_cards_1h")
    ('distinct_cards', '1h')
    >>> aggregate_name("card", "distinct_cards_1h") is None, aggregate_name("card", "approved_3m") is None
    (True, True)
    """
    if obj not in AGGREGATE_KEYS:
        return None
    match = _AGGREGATE.match(name)
    if match is None or match["window"] not in WINDOWS:
        return None
    measure = match["measure"]
    if measure in COUNTERS or measure in DISTINCT.get(obj, {}):
        return measure, match["window"]
    return None


def is_known(obj: str, name: str) -> bool:
    """`obj.name` is a fact or an aggregate."""
    return name in PLAIN.get(obj, {}) or aggregate_name(obj, name) is not None


def references(expression: str) -> list[tuple[str, str]]:
    """Every `object.name` the expression reads (text inside string literals ignored), in order.

    >>> references("card_merchant.approved_10m >= 5 && txn.kind == 'txn.x' && lists.card_blocked")
    [('card_merchant', 'approved_10m'), ('txn', 'kind'), ('lists', 'card_blocked')]
    """
    return [(m.group(1), m.group(2)) for m in _REFERENCE.finditer(_STRING.sub("''", expression))]


def flatten(expression: str, separator: str) -> str:
    """`object.name` → `object<separator>name` outside string literals (`expressions` evaluates flat names).

    >>> flatten("txn.kind == 'txn.kind' && lists . card_blocked", "__")
    "txn__kind == 'txn.kind' && lists__card_blocked"
    """
    out: list[str] = []
    position = 0
    for literal in _STRING.finditer(expression):
        out.append(_REFERENCE.sub(rf"\1{separator}\2", expression[position : literal.start()]))
        out.append(literal.group(0))
        position = literal.end()
    out.append(_REFERENCE.sub(rf"\1{separator}\2", expression[position:]))
    return "".join(out)


def neutral_facts() -> dict[str, dict[str, Any]]:
    """Every plain fact at its neutral value, and every aggregate at 0: what rules are checked against at
    load time."""
    facts: dict[str, dict[str, Any]] = {
        obj: {k: v for k, (v, _) in names.items()} for obj, names in PLAIN.items()
    }
    for key in AGGREGATE_KEYS:
        for window in WINDOWS:
            for measure in (*COUNTERS, *DISTINCT.get(key, {})):
                facts[key][f"{measure}_{window}"] = 0
    return facts
