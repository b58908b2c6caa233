"""The POS terminal simulator: demo cards, terminal state, request builders, the asyncio client and the CLI.

Pure core: `cards` (what the terminal reads from a card), `chip` (the card's ARQC, field 55, the ARPC
check), `state` (keys, STAN, batch, ATCs, the reversal record), `journal` (approved transactions, settlement
totals, batch upload records; PANs sealed), `messages` (requests per shared/spec/pos-8583.md), `originals`
(what a void, refund or completion may act on, and what it does to it), `result` (a response read and
MAC-checked), `receipt`, `errors`. Transactions: `client.TerminalClient` (build, MAC, send, book) and
`settlement.settle`, over `connection.HostConnection` (the asyncio shell: one pipelined TCP or TLS connection
to the host). On top: `policy.PosPolicy` (what a terminal does around a transaction: sign in again on `97`,
reverse on a time-out or an approval that does not verify), `day.play_day` (a mixed trading day on a
client) and `cli.app` (`posgate terminal`).
The CLI is not imported here, so the library does not pull in Typer.
"""

from posgate.terminal.cards import CardProfile, demo_card, manual_card
from posgate.terminal.chip import ChipCard
from posgate.terminal.client import TerminalClient
from posgate.terminal.day import DayReport, play_day
from posgate.terminal.errors import (
    NothingToReverse,
    NotSignedIn,
    PendingReversal,
    TerminalConnectionError,
    TerminalError,
    TerminalTimeout,
    UnknownOriginal,
)
from posgate.terminal.journal import BatchTotals, JournalEntry
from posgate.terminal.policy import Outcome, PosPolicy
from posgate.terminal.result import TxnResult
from posgate.terminal.settlement import SettlementResult
from posgate.terminal.state import LastTransaction, TerminalState, demo_terminal_state

__all__ = [
    "BatchTotals",
    "CardProfile",
    "ChipCard",
    "DayReport",
    "JournalEntry",
    "LastTransaction",
    "NotSignedIn",
    "NothingToReverse",
    "Outcome",
    "PendingReversal",
    "PosPolicy",
    "SettlementResult",
    "TerminalClient",
    "TerminalConnectionError",
    "TerminalError",
    "TerminalState",
    "TerminalTimeout",
    "TxnResult",
    "UnknownOriginal",
    "demo_card",
    "demo_terminal_state",
    "manual_card",
    "play_day",
]
