"""FindOriginal: the transaction a void, refund, completion or pre-auth void refers to, and whether this
request may use it."""

from __future__ import annotations

from posgate.host.context import Kind, TxnContext
from posgate.host.steps.base import Step
from posgate.iso8583.private_fields import parse_field61
from posgate.iso8583.reasons import Reason
from posgate.store.originals import OriginalRecord, find_by_rrn

# kind → the original's kind(s), and whether it must come from the same terminal and batch
ORIGINAL_KINDS: dict[Kind, tuple[str, ...]] = {
    Kind.VOID: ("sale",),
    Kind.COMPLETION_VOID: ("completion",),
    Kind.REFUND: ("sale", "completion"),
    Kind.PREAUTH_VOID: ("preauth",),
    Kind.COMPLETION: ("preauth",),
}
SAME_BATCH = (Kind.VOID, Kind.COMPLETION_VOID)
COMPLETION_CEILING_PERCENT = 115


class FindOriginal(Step):
    """Needs: field 37 (the original's RRN) and 61 (its batch + STAN [+ date]), ctx.card, field 4.
    Provides: ctx.original. Declines: 25 no such original (or 37/61 disagree, or not this merchant's),
    12 the original cannot be used (already voided/reversed/completed, another card, its batch settled),
    64 the amount differs from what the original allows (voids: equal; pre-auth voids: equal; completions:
    ≤ 115 %; refunds: checked against what is left when the refund is recorded)."""

    async def prepare(self, ctx: TxnContext) -> None:
        request = ctx.request
        rrn = request.get("37", "")
        record = await self.services.store.run(lambda s: find_by_rrn(s, rrn))
        if (
            record is None
            or record.kind not in ORIGINAL_KINDS[ctx.kind]
            or not self._same_reference(ctx, record)
        ):
            ctx.result.decline(Reason.ORIGINAL_NOT_FOUND)
            return
        ctx.original = record
        reason = self._check(ctx, record)
        if reason is not None:
            ctx.result.decline(reason)

    @staticmethod
    def _same_reference(ctx: TxnContext, record: OriginalRecord) -> bool:
        """37 and 61 must name the same original, of this merchant (and terminal, for voids)."""
        request = ctx.request
        if record.mid != request.get("42"):
            return False
        if ctx.kind in (*SAME_BATCH, Kind.PREAUTH_VOID) and record.tid != ctx.tid:
            return False
        if "61" in request:
            ref = parse_field61(request["61"])
            if (ref.batch, ref.stan) != (record.batch_no, record.stan):
                return False
            if ref.date and ref.date != record.business_date.strftime("%m%d"):
                return False
        return True

    def _check(self, ctx: TxnContext, record: OriginalRecord) -> Reason | None:
        amount = int(ctx.request.get("4", "0"))
        assert ctx.card is not None
        if record.pan_hash != self.services.vault.pan_hash(ctx.card.pan):
            return Reason.INVALID_TRANSACTION
        if record.state != "approved":
            return Reason.INVALID_TRANSACTION
        if ctx.kind in SAME_BATCH and (record.settled or record.batch_no != ctx.batch_no):
            return Reason.INVALID_TRANSACTION
        if ctx.kind is Kind.COMPLETION:
            if ctx.request.get("38") != record.auth_code:
                return Reason.ORIGINAL_NOT_FOUND
            if amount * 100 > record.amount_fen * COMPLETION_CEILING_PERCENT:
                return Reason.AMOUNT_DIFFERS
        elif ctx.kind is Kind.REFUND:
            if amount > record.amount_fen - record.refunded_fen:
                return Reason.AMOUNT_DIFFERS
        elif amount != record.amount_fen:
            return Reason.AMOUNT_DIFFERS
        return None
