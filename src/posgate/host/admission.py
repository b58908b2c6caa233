"""Who may hold a connection to the POS port, and how much a peer may make the host write to its log.
Pure: no sockets, no clock (the shell passes `now`).

`Admission` counts open connections per source and in total, and refuses one over either cap
(`pos_max_connections_per_source`, `pos_max_connections`). A source is an IPv4 address, or an IPv6 /64
(one customer's network: counting single IPv6 addresses would let one peer open unlimited connections).

`WarningBudget` lets a few warnings per source through in each window and counts the rest, so a flood of
refused or broken connections cannot fill the disk with log lines; the next line let through says how many
were held back.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

IPV6_NETWORK_BITS = 64


def source_of(address: str) -> str:
    """The key connections from `address` are counted under.

    >>> source_of("192.0.2.7"), source_of("::ffff:192.0.2.7"), source_of("2001:db8:1:2:aa::1")
    ('192.0.2.7', '192.0.2.7', '2001:db8:1:2::/64')
    >>> source_of("not an address")
    'not an address'
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_NETWORK_BITS), strict=False))
    return str(ip)


@dataclass
class Admission:
    """Open connections per source and in total, against the two caps.

    >>> gate = Admission(max_total=3, max_per_source=2)
    >>> gate.admit("10.0.0.1"), gate.admit("10.0.0.1"), gate.admit("10.0.0.1")
    (None, None, '2 connections from that address already (pos_max_connections_per_source)')
    >>> gate.admit("10.0.0.2"), gate.admit("10.0.0.3")
    (None, '3 connections in total already (pos_max_connections)')
    >>> gate.release("10.0.0.1"); gate.admit("10.0.0.1") is None, gate.total
    (True, 3)
    """

    max_total: int
    max_per_source: int
    total: int = 0
    per_source: dict[str, int] = field(default_factory=dict)

    def admit(self, address: str) -> str | None:
        """Count a new connection from `address`: None when admitted, else why it is refused (not counted)."""
        if self.total >= self.max_total:
            return f"{self.total} connections in total already (pos_max_connections)"
        key = source_of(address)
        held = self.per_source.get(key, 0)
        if held >= self.max_per_source:
            return f"{held} connections from that address already (pos_max_connections_per_source)"
        self.per_source[key] = held + 1
        self.total += 1
        return None

    def release(self, address: str) -> None:
        """An admitted connection from `address` has closed."""
        key = source_of(address)
        held = self.per_source.get(key, 0)
        if held <= 1:
            self.per_source.pop(key, None)
        else:
            self.per_source[key] = held - 1
        self.total = max(0, self.total - 1)


@dataclass
class _Spent:
    window_start: float
    used: int = 0
    held_back: int = 0


@dataclass
class WarningBudget:
    """At most `per_window` warnings per source in each `window_s`.

    `allow` returns None for a warning to drop, else how many were dropped since the last one let through.

    >>> budget = WarningBudget(per_window=2, window_s=10.0)
    >>> [budget.allow("10.0.0.1", now) for now in (0.0, 1.0, 2.0, 3.0, 11.0)]
    [0, 0, None, None, 2]
    """

    per_window: int = 5
    window_s: float = 10.0
    max_sources: int = 10_000
    _spent: dict[str, _Spent] = field(default_factory=dict)

    def allow(self, address: str, now: float) -> int | None:
        key = source_of(address)
        spent = self._spent.get(key)
        if spent is None or now - spent.window_start >= self.window_s:
            if spent is None and len(self._spent) >= self.max_sources:
                self._forget_before(now - self.window_s)
            held_back = spent.held_back if spent is not None else 0
            spent = self._spent[key] = _Spent(now)
            spent.used = 1
            return held_back
        if spent.used >= self.per_window:
            spent.held_back += 1
            return None
        spent.used += 1
        return 0

    def _forget_before(self, cutoff: float) -> None:
        stale = [key for key, spent in self._spent.items() if spent.window_start < cutoff]
        for key in stale if stale else list(self._spent)[: len(self._spent) // 2]:
            del self._spent[key]
