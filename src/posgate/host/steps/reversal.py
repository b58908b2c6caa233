"""ReverseOriginal: a terminal's 0400 undoes its original at the issuer, exactly once."""

from __future__ import annotations

import logging

from posgate.host.context import TxnContext
from posgate.host.steps.base import Step
from posgate.store.acquirer import rrn_of
from posgate.store.originals import reverse_for_terminal

log = logging.getLogger("posgate.host")


class ReverseOriginal(Step):
    """Needs: fields 3, 11, 39 (reason) of the 0400, the recorded 0400 (ctx.txn_id). Finds the original by
    TID + STAN + processing code + business date; marks it reversed and queues its 0420 in one unit of work
    (a conditional update: a second, third … 0400 finds it already reversed), then tries to deliver the 0420
    at once (the store-and-forward queue retries until the issuer answers). Always approves: the answer is
    `00` whether or not the original was seen (pos-8583.md)."""

    async def prepare(self, ctx: TxnContext) -> None:
        request = ctx.request
        reason_code = request.get("39", "98")
        now = self.services.clock().replace(tzinfo=None)
        tid, stan, day, processing_code = ctx.tid, ctx.stan, ctx.business_date, request["3"]
        outcome = await self.services.store.run(
            lambda s: reverse_for_terminal(s, tid, stan, day, processing_code, reason_code, now)
        )
        if outcome.original_id is not None:
            ctx.notes["original_id"] = outcome.original_id
        if outcome.refused:
            log.warning("not reversing RRN %s: %s", rrn_of(outcome.original_id or 0), outcome.refused)
        if outcome.reversed:
            ctx.notes["reversed_kind"] = outcome.reversed_kind
            assert outcome.original_id is not None
            await self.services.saf.deliver_for(outcome.original_id, self.services.settings.issuer_timeout_s)
        ctx.result.approve()
