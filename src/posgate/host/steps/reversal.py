"""ReverseOriginal: a terminal's 0400 undoes its original at the issuer, exactly once; HonourEarlyReversal: a
request whose 0400 the host handled first is not carried out."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from posgate.host.context import TxnContext
from posgate.host.ports import Forwarder, Transactions
from posgate.host.steps.base import Step
from posgate.iso8583.reasons import Reason

log = logging.getLogger("posgate.host")


class ReverseOriginal(Step):
    """Needs: fields 3, 11, 39 (reason) of the 0400, the recorded 0400 (ctx.txn_id). Finds the original by
    TID + STAN + processing code + business date; marks it reversed and queues its 0420 in one unit of work
    (a conditional update: a second, third … 0400 finds it already reversed), then tries to deliver the 0420
    at once (the store-and-forward queue retries until the issuer answers). Always approves: the answer is
    `00` whether or not the original was seen (pos-8583.md)."""

    def __init__(
        self,
        transactions: Transactions,
        forwarder: Forwarder,
        issuer_timeout_s: float,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.transactions, self.forwarder = transactions, forwarder
        self.issuer_timeout_s, self.clock = issuer_timeout_s, clock

    async def commit(self, ctx: TxnContext) -> None:
        request = ctx.request
        outcome = await self.transactions.reverse_for_terminal(
            ctx.tid,
            ctx.stan,
            ctx.business_date,
            request["3"],
            request.get("39", "98"),
            self.clock().replace(tzinfo=None),
        )
        if outcome.original_id is not None:
            ctx.reversed_original_id = outcome.original_id
        if outcome.refused:
            log.warning("not reversing RRN %012d: %s", outcome.original_id or 0, outcome.refused)
        if outcome.reversed:
            ctx.reversed_kind = outcome.reversed_kind
            assert outcome.original_id is not None
            await self.forwarder.deliver_for(outcome.original_id, self.issuer_timeout_s)
        ctx.result.approve()


class HonourEarlyReversal(Step):
    """Needs: ctx.txn_id (RecordRequest, committed), fields 3 and 11. A terminal reverses a request that got
    no answer (0400, same STAN); when the host reads both at once — it was frozen with both in its socket
    buffer, or the request was slower through the first steps — the 0400 can be handled first, find no
    original and be answered `00`. The request must then not be carried out: it is marked reversed and its
    0420 queued (the issuer keeps a tombstone, should the request ever reach it), and the terminal gets
    `05`, as the issuer answers a late original. Runs before anything is sent to the issuer; a 0400
    handled after this check finds the request recorded and reverses it itself (`reversed_before_recorded`
    says why one of the two always sees the other). Declines: 05."""

    def __init__(
        self, transactions: Transactions, forwarder: Forwarder, clock: Callable[[], dt.datetime]
    ) -> None:
        self.transactions, self.forwarder, self.clock = transactions, forwarder, clock

    async def commit(self, ctx: TxnContext) -> None:
        if ctx.txn_id is None:
            return
        stan, now = ctx.stan, self.clock().replace(tzinfo=None)
        reversed_first = await self.transactions.reversed_before_recorded(
            ctx.txn_id, ctx.tid, stan, ctx.business_date, ctx.request.get("3", "000000"), now
        )
        if reversed_first:
            log.warning(
                "%s RRN %s arrived after its terminal's reversal (STAN %s): not carried out, 0420 queued",
                ctx.kind.value,
                ctx.rrn,
                stan,
            )
            ctx.result.decline(Reason.DO_NOT_HONOUR)
            self.forwarder.kick()
