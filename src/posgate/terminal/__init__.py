"""The POS terminal simulator: demo cards, terminal state, request builders, the asyncio client and the CLI.

Pure core: `cards` (what the terminal reads from a card), `state` (keys, STAN, the reversal record),
`messages` (requests per shared/spec/pos-8583.md), `result` (a response read and MAC-checked), `receipt`.
Shells: `client.TerminalClient` (one pipelined TCP connection to the host) and `cli.app` (`posgate terminal`).
The CLI is not imported here, so the library does not pull in Typer.
"""

from posgate.terminal.cards import CardProfile, demo_card, manual_card
from posgate.terminal.client import (
    NothingToReverse,
    NotSignedIn,
    TerminalClient,
    TerminalConnectionError,
    TerminalError,
    TerminalTimeout,
)
from posgate.terminal.result import TxnResult
from posgate.terminal.state import LastTransaction, TerminalState, demo_terminal_state

__all__ = [
    "CardProfile",
    "LastTransaction",
    "NotSignedIn",
    "NothingToReverse",
    "TerminalClient",
    "TerminalConnectionError",
    "TerminalError",
    "TerminalState",
    "TerminalTimeout",
    "TxnResult",
    "demo_card",
    "demo_terminal_state",
    "manual_card",
]
