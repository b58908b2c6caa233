"""BIN routing: which issuer a PAN belongs to, by the longest matching BIN prefix. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar


class HasBins(Protocol):
    @property
    def bins(self) -> tuple[str, ...]: ...


R = TypeVar("R", bound=HasBins)


class BinTable(Generic[R]):
    """Longest-prefix match of a PAN against the routes' BIN prefixes.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class R:
    ...     name: str
    ...     bins: tuple[str, ...]
    >>> table = BinTable([R("A", ("622999",)), R("A2", ("6229990",)), R("B", ("622888",))])
    >>> table.route("6229990000000012").name, table.route("6229991000000012").name
    ('A2', 'A')
    >>> table.route("4111111111111111") is None
    True
    """

    def __init__(self, routes: Iterable[R]) -> None:
        self._by_prefix: dict[str, R] = {}
        for route in routes:
            for prefix in route.bins:
                self._by_prefix[prefix] = route
        self._lengths = sorted({len(p) for p in self._by_prefix}, reverse=True)

    def route(self, pan: str) -> R | None:
        for length in self._lengths:
            found = self._by_prefix.get(pan[:length])
            if found is not None:
                return found
        return None
