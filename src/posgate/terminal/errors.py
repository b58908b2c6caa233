"""What can keep the terminal simulator from completing an exchange with the host (pure).

`TerminalError` is the root; the connection (`TerminalConnectionError`, `TerminalTimeout`) and the terminal's
own state (`NotSignedIn`, `NothingToReverse`, `PendingReversal`, `UnknownOriginal`) each have their class,
so the CLI maps them to exit codes and the POS policy (`policy`) knows a time-out from a refusal.
"""

from __future__ import annotations

from posgate.errors import PosgateError

__all__ = [
    "NotSignedIn",
    "NothingToReverse",
    "PendingReversal",
    "TerminalConnectionError",
    "TerminalError",
    "TerminalTimeout",
    "UnknownOriginal",
]


class TerminalError(PosgateError):
    """Something kept the terminal from completing an exchange with the host."""


class TerminalConnectionError(TerminalError):
    """The host cannot be reached, or the connection was lost."""


class TerminalTimeout(TerminalError):
    """No response within the time-out. For a sale, the caller must reverse it (reason `98`)."""


class NotSignedIn(TerminalError):
    """The terminal has no working keys yet: sign in first."""


class NothingToReverse(TerminalError):
    """`reverse_last` was called but the state holds no reversible transaction."""


class PendingReversal(TerminalError):
    """The last reversible transaction never got an answer and is not reversed yet: reverse it before
    settling (its batch would close without it)."""


class UnknownOriginal(TerminalError):
    """A void, refund or completion names an RRN the journal does not hold (or no longer can act on)."""
