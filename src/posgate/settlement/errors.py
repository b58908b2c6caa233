"""Errors of clearing and settlement (all `PosgateError`s: the CLI prints them and exits 2)."""

from __future__ import annotations

from posgate.errors import PosgateError


class SettlementError(PosgateError):
    """Root of the settlement errors."""


class UnbalancedEntry(SettlementError):
    """A journal entry whose debits and credits differ (a bug: never written)."""


class ClearingNotRun(SettlementError):
    """Payouts of a date asked for before that date was cleared."""


class FileChecksumError(SettlementError):
    """A bank, confirmation or clearing file whose CHECKSUM line does not match its content."""


class FileFormatError(SettlementError):
    """A file that is not in the expected CSV layout (names the line)."""


class D0Refused(SettlementError):
    """A same-day payout request outside the merchant's rights, the window, the limits or the balance."""
