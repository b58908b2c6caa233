"""The POS terminal's policy: what a terminal does around each transaction, written once for
`posgate terminal` (`cli/terminal.py`), `posgate terminal day` (`day`) and `posgate bench auth`
(`tools/bench_auth.py`).

The rules (shared/spec/pos-8583.md and the cashier's routine):

- **Sign in first** when the terminal holds no working keys (`ensure_signed_in`).
- **Sign in again on `97`**: an answer that says the terminal is not signed in (`97`, or the header's
  processing requirement 3 on a decline) makes the terminal forget its keys, sign in and send the same
  transaction once more; if the sign-in is refused, that answer stands.
- **Reverse on a time-out** (`98`): no answer in time to a reversible transaction (sale, pre-authorization,
  completion and the voids) — the host may have approved it — so it is reversed at once.
- **Reverse an approval that does not verify**: a reversible transaction approved with a MAC that fails
  (`A0`) or a chip ARPC that fails (`96`) is reversed, and counts as declined. A balance inquiry or a refund
  (an advice) is never reversed.
- **Before settling**, a transaction still waiting for its reversal is reversed (`98`); a `97` to the
  settlement signs in again and settles once more.

`PosPolicy` applies the rules on a `TerminalClient` (any `Terminal`) and returns what happened as data
(`Outcome`, `SettleOutcome`): the callers print it (the CLI), count it (the day) or measure it (the bench).
A reversal that fails (no answer, connection lost) is reported in the outcome, never raised; everything
else the client raises goes through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from posgate.terminal.errors import PendingReversal, TerminalError, TerminalTimeout
from posgate.terminal.messages import TXN_TYPES
from posgate.terminal.result import TxnResult
from posgate.terminal.settlement import SettlementResult
from posgate.terminal.state import TerminalState

__all__ = ["Outcome", "PosPolicy", "SettleOutcome", "Terminal", "asks_for_sign_in", "reversible"]

#: Field 39 of a reversal sent because no answer came in time.
NO_ANSWER = "98"
#: Field 39 the host answers a terminal it does not hold as signed in with.
SIGN_IN_AGAIN_CODE = "97"


def reversible(kind: str) -> bool:
    """Whether a transaction of `kind` is reversed when its answer is lost or does not verify.

    >>> reversible("sale"), reversible("completion_void"), reversible("balance"), reversible("refund")
    (True, True, False, False)
    >>> reversible("reversal"), reversible("settlement")
    (False, False)
    """
    txn = TXN_TYPES.get(kind)
    return txn is not None and txn.reversible


def asks_for_sign_in(result: TxnResult) -> bool:
    """The answer says the terminal must sign in again: `97`, or a decline whose header asks for it."""
    return result.response_code == SIGN_IN_AGAIN_CODE or (result.sign_in_required and not result.approved)


@dataclass
class Outcome:
    """What one transaction came to. `result`: the answer that stands (None: none came in time, see
    `timeout`); `refused` and `sign_in`: the answer that asked for a sign-in and the sign-in that followed
    (then `result` is the second attempt's, unless the sign-in was refused); `reversal_reason`: why the
    policy reversed it (`98`, `A0`, `96`), with the reversal's answer or the error that kept it from one."""

    kind: str
    result: TxnResult | None = None
    refused: TxnResult | None = None
    sign_in: TxnResult | None = None
    timeout: TerminalTimeout | None = None
    reversal_reason: str | None = None
    reversal: TxnResult | None = None
    reversal_error: TerminalError | None = None

    @property
    def approved(self) -> bool:
        return self.result is not None and self.result.approved

    @property
    def unresolved(self) -> bool:
        """The policy had to reverse the transaction and the reversal did not go through."""
        return self.reversal_reason is not None and (self.reversal is None or not self.reversal.approved)


@dataclass
class SettleOutcome:
    """What settling came to: `result` (the last attempt's; None when a transaction still waits for its
    reversal: `pending`), and on the way the reversal of a transaction left waiting for one, the `97` that
    asked for a sign-in and that sign-in."""

    result: SettlementResult | None = None
    pending: PendingReversal | None = None
    reversal: TxnResult | None = None
    reversal_error: TerminalError | None = None
    refused: SettlementResult | None = None
    sign_in: TxnResult | None = None


class Terminal(Protocol):
    """What the policy needs of a terminal (`TerminalClient`; fakes in tests)."""

    state: TerminalState

    async def sign_in(self) -> TxnResult: ...

    async def reverse_last(self, reason: str = ...) -> TxnResult: ...

    async def settle(self) -> SettlementResult: ...


class PosPolicy:
    """The policy applied on one connected `client` (its state changes; the caller saves it)."""

    def __init__(self, client: Terminal) -> None:
        self.client = client

    async def ensure_signed_in(self) -> TxnResult | None:
        """Sign in when the terminal holds no working keys: the sign-in's answer, or None when it had keys."""
        if self.client.state.signed_in:
            return None
        return await self.client.sign_in()

    async def transact(self, kind: str, send: Callable[[], Awaitable[TxnResult]]) -> Outcome:
        """Send one transaction of `kind` (`send` builds and sends it on the client, e.g. `client.sale(…)`)
        and apply the rules: sign in again on `97`, reverse on a time-out or an approval that does not
        verify. Raises what the client raises (connection lost, unknown original, …) except time-outs."""
        outcome = Outcome(kind)
        try:
            result = await send()
            if asks_for_sign_in(result):
                outcome.refused = result
                self.client.state.clear_keys()
                outcome.sign_in = await self.client.sign_in()
                if outcome.sign_in.approved:
                    result = await send()
        except TerminalTimeout as exc:
            outcome.timeout = exc
            if reversible(kind):
                await self._reverse(outcome, NO_ANSWER)
            return outcome
        outcome.result = result
        if result.needs_reversal and reversible(kind):
            await self._reverse(outcome, result.reversal_reason)
        return outcome

    async def _reverse(self, outcome: Outcome, reason: str) -> None:
        outcome.reversal_reason = reason
        outcome.reversal, outcome.reversal_error = await self.reverse(reason)

    async def reverse(self, reason: str) -> tuple[TxnResult | None, TerminalError | None]:
        """Reverse the last reversible transaction with field 39 = `reason`: its answer, or the error that
        kept it from one (then it stays to be reversed: `state.last`)."""
        try:
            return await self.client.reverse_last(reason), None
        except TerminalError as exc:
            return None, exc

    async def settle(self) -> SettleOutcome:
        """Settle the open batch: first reverse a transaction still waiting for its reversal (when that
        does not go through the batch is not settled: `pending`); on `97` sign in again and settle once
        more."""
        outcome = SettleOutcome()
        last = self.client.state.last
        if last is not None and last.response_code is None:
            outcome.reversal, outcome.reversal_error = await self.reverse(NO_ANSWER)
        try:
            result = outcome.result = await self.client.settle()
        except PendingReversal as exc:
            outcome.pending = exc
            return outcome
        if result.response_code == SIGN_IN_AGAIN_CODE:
            outcome.refused = result
            self.client.state.clear_keys()
            outcome.sign_in = await self.client.sign_in()
            if outcome.sign_in.approved:
                outcome.result = await self.client.settle()
        return outcome
