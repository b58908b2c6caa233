"""ReverseOriginal: a terminal's 0400 undoes its original at the issuer, exactly once."""

from __future__ import annotations

import logging

from posgate.host.context import TxnContext
from posgate.host.steps.base import Step
from posgate.store.acquirer import find_original, reverse_transaction, rrn_of
from posgate.store.originals import move_original

log = logging.getLogger("posgate.host")

REVERSIBLE_MTIS = ("0200", "0100")
REVERSIBLE_KINDS = ("sale", "void", "preauth", "preauth_void", "completion", "completion_void")
# reversing one of these gives its original back its approved state
RESTORES_ORIGINAL = {
    "void": "voided",
    "completion_void": "voided",
    "completion": "completed",
    "preauth_void": "cancelled",
}


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

        def reverse(session) -> int | None:  # type: ignore[no-untyped-def]
            original = find_original(
                session, ctx.tid, ctx.stan, ctx.business_date, request["3"], REVERSIBLE_MTIS
            )
            if original is None or original.kind not in REVERSIBLE_KINDS:
                return None
            ctx.notes["original_id"] = original.id
            if original.refunded_fen:  # refunds were made against it since: reversing would pay twice
                log.warning("not reversing RRN %s: it has been partly refunded", rrn_of(original.id))
                return None
            if not reverse_transaction(session, original.id, reason_code, now):
                return None
            ctx.notes["reversed_kind"] = original.kind
            if original.kind in RESTORES_ORIGINAL and original.original_id is not None:
                move_original(session, original.original_id, RESTORES_ORIGINAL[original.kind], "approved")
            return original.id

        original_id = await self.services.store.run(reverse)
        if original_id is not None:
            await self.services.saf.deliver_for(original_id, self.services.settings.issuer_timeout_s)
        ctx.result.approve()
