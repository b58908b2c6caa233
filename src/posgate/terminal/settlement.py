"""Settling the terminal's open batch with the host: 0500, and on an unbalanced answer the batch upload
(0320, 8 records a message) and the batch end (0320, 207), then the next batch.

`settle` works on anything with the terminal's `state` and an `exchange` (a `TerminalClient`); it changes
the state (STAN, batch, journal) and never writes it: the caller saves it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from posgate.errors import DecodeError
from posgate.terminal.errors import PendingReversal
from posgate.terminal.journal import BatchTotals, batch_totals, is_balanced, settlement_codes, upload_groups
from posgate.terminal.messages import (
    Message,
    batch_end_request,
    batch_upload_request,
    settlement_request,
)
from posgate.terminal.result import TxnResult
from posgate.terminal.state import TerminalState

__all__ = ["Exchanger", "SettlementResult", "settle"]

log = logging.getLogger(__name__)


class Exchanger(Protocol):
    """A terminal that can send a request and read its response (`TerminalClient`)."""

    state: TerminalState

    async def exchange(self, msg: Message) -> TxnResult: ...


@dataclass
class SettlementResult:
    """What `settle` did. `settled`: the host accepted the settlement (balanced, or the batch upload and batch
    end went through) and the terminal moved to the next batch; `balanced`: the 0510 said `1`; `uploaded`:
    records sent in 0320s; `responses`: every response, 0510 first; `batch`: the batch settled."""

    balanced: bool
    uploaded: int
    responses: list[TxnResult] = field(repr=False)
    settled: bool = False
    batch: str = ""
    totals: BatchTotals = field(default_factory=BatchTotals)

    @property
    def response_code(self) -> str:
        return self.responses[0].response_code if self.responses else ""


async def settle(client: Exchanger) -> SettlementResult:
    """Settle the open batch: 0500 with the journal's totals; on `2` (unbalanced) upload every counted
    record (0320, 8 a message, magstripe-read then chip-read) and end the batch (0320, 207). When the
    host accepted it all, the batch advances and its journal is cleared (`settled`). A refused step
    (39 not `00`, or a bad MAC on the 0510) stops there and keeps the batch open.

    Raises `PendingReversal` when the last reversible transaction never got an answer and was not
    reversed: `reverse_last("98")` first.
    """
    state = client.state
    last = state.last
    if last is not None and last.response_code is None:
        raise PendingReversal(
            f"terminal {state.tid}: STAN {last.stan} got no answer and is not reversed yet: reverse it first"
        )
    batch = state.batch
    entries = [entry for entry in state.journal if entry.batch == batch]
    totals = batch_totals(entries)
    outcome = SettlementResult(balanced=False, uploaded=0, responses=[], batch=batch, totals=totals)
    result = await client.exchange(settlement_request(state, state.next_stan(), totals))
    result.kind = "settlement"
    outcome.responses.append(result)
    if not result.approved:
        return outcome
    try:
        codes = settlement_codes(result.fields.get("48"))
    except DecodeError:
        log.warning("terminal %s: 0510 without settlement codes: uploading the batch", state.tid)
        codes = ("", "")
    if is_balanced(codes):
        outcome.balanced = outcome.settled = True
        state.close_batch()
        return outcome
    for group in upload_groups(entries, state.journal_key, state.tid):
        upload = await client.exchange(batch_upload_request(state, state.next_stan(), group))
        upload.kind = "batch_upload"
        outcome.responses.append(upload)
        if upload.response_code != "00":
            return outcome
        outcome.uploaded += len(group.records)
    end = await client.exchange(batch_end_request(state, state.next_stan(), outcome.uploaded))
    end.kind = "batch_end"
    outcome.responses.append(end)
    if end.response_code == "00":
        outcome.settled = True
        state.close_batch()
    return outcome
