"""The wallet order state machine (pure): the states of a wallet order, the provider-neutral trade states
(`adapters.base`) they follow, and which moves are allowed.

```
created ──► paying ──► paid
   │  ╲        │  ╲
   │   ╲       │   └──► closed   (expired, closed, reversed at the provider)
   │    ╲      └──────► failed   (the provider refused: balance, invalid code …)
   └─────┴────────────► unknown  (no answer in time: a query resolves it)
```

`paid` is final (refunds count in the order's `refunded_fen`); `closed` and `failed` are final for us but the
provider is the truth: a payment reported for a closed order (the customer paid as it expired) moves it to
`paid` — never lost. A provider saying `closed` of a paid order changes nothing (`conflict`).

>>> follow("created", "paid")
'paid'
>>> follow("paid", "closed")
Traceback (most recent call last):
...
posgate.wallets.orderstate.Conflict: a paid order cannot become closed
>>> follow("unknown", "waiting")
'created'
"""

from __future__ import annotations

from posgate.errors import PosgateError
from posgate.money import yuan

CREATED, PAYING, PAID, CLOSED, FAILED, UNKNOWN = "created", "paying", "paid", "closed", "failed", "unknown"
STATES = (CREATED, PAYING, PAID, CLOSED, FAILED, UNKNOWN)
FINAL = frozenset({PAID, CLOSED, FAILED})

#: provider-neutral trade state (adapters.base) → order state
FROM_PROVIDER = {"waiting": CREATED, "paying": PAYING, "paid": PAID, "closed": CLOSED, "reversed": CLOSED}

ALLOWED: dict[str, frozenset[str]] = {
    CREATED: frozenset({CREATED, PAYING, PAID, CLOSED, FAILED, UNKNOWN}),
    PAYING: frozenset({PAYING, PAID, CLOSED, FAILED, UNKNOWN}),
    UNKNOWN: frozenset({CREATED, PAYING, PAID, CLOSED, FAILED, UNKNOWN}),
    PAID: frozenset({PAID}),
    CLOSED: frozenset({CLOSED, PAID}),
    FAILED: frozenset({FAILED, PAID}),
}

REFUND_STATES = ("pending", "succeeded", "failed", "unknown")


class Conflict(PosgateError):
    """A move the state machine does not allow (the stored state stays)."""


def move(current: str, new: str) -> str:
    """`new` if a `current` order may become it, else `Conflict`."""
    if new not in ALLOWED[current]:
        raise Conflict(f"a {current} order cannot become {new}")
    return new


def follow(current: str, provider_state: str) -> str:
    """The order's state once the provider reports `provider_state` (`waiting`, `paying`, `paid`, `closed`,
    `reversed`)."""
    return move(current, FROM_PROVIDER[provider_state])


def refundable(state: str, amount_fen: int, refunded_fen: int, refund_fen: int) -> str | None:
    """Why a refund of `refund_fen` cannot be taken, or None.

    >>> refundable("paid", 1000, 600, 400) is None
    True
    >>> refundable("paid", 1000, 600, 401)
    'refund of 4.01 is above what is left (4.00)'
    """
    if state != PAID:
        return f"the order is {state}, not paid"
    if refund_fen <= 0:
        return "a refund must be a positive amount"
    left = amount_fen - refunded_fen
    if refund_fen > left:
        return f"refund of {yuan(refund_fen)} is above what is left ({yuan(left)})"
    return None
