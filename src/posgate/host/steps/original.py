"""FindOriginal: the transaction a void, refund, completion or pre-auth void refers to, and whether this
request may use it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from posgate.errors import PosgateError
from posgate.host.context import TxnContext
from posgate.host.ports import Cards, Transactions
from posgate.host.steps.base import Step
from posgate.iso8583.private_fields import Field61, parse_field61
from posgate.iso8583.reasons import Reason
from posgate.txnset import OriginalRule, TxnState, row_of

if TYPE_CHECKING:
    from posgate.store.originals import OriginalRecord

COMPLETION_CEILING_PERCENT = 115


class FindOriginal(Step):
    """Needs: field 37 (the original's RRN) and 61 (its batch + STAN [+ date]), ctx.card, field 4.
    Provides: ctx.original. Declines: 25 no such original (or 37/61 disagree, or not this merchant's),
    12 the original cannot be used (already voided/reversed/completed, another card, its batch settled),
    64 the amount differs from what the original allows (voids: equal; pre-auth voids: equal; completions:
    ≤ 115 %; refunds: checked against what is left when the refund is recorded)."""

    def __init__(self, transactions: Transactions, cards: Cards) -> None:
        self.transactions, self.cards = transactions, cards

    async def prepare(self, ctx: TxnContext) -> None:
        request = ctx.request
        try:
            reference = parse_field61(request["61"]) if "61" in request else None
        except PosgateError:
            ctx.detail = "field 61: batch n6 + STAN n6 [+ date n4] expected"
            ctx.result.decline(Reason.FORMAT_ERROR)
            return
        rrn = request.get("37", "")
        record = await self.transactions.original_by_rrn(rrn)
        if (
            record is None
            or record.kind not in _rule(ctx).kinds
            or not self._same_reference(ctx, record, reference)
        ):
            ctx.result.decline(Reason.ORIGINAL_NOT_FOUND)
            return
        ctx.original = record
        reason = self._check(ctx, record)
        if reason is not None:
            ctx.result.decline(reason)

    @staticmethod
    def _same_reference(ctx: TxnContext, record: OriginalRecord, ref: Field61 | None) -> bool:
        """37 and 61 must name the same original, of this merchant (and terminal, for voids). A terminal
        that no longer holds the original (a refund of an earlier batch) sends zeros for its batch and
        STAN: then the RRN and the date identify it."""
        if record.mid != ctx.request.get("42"):
            return False
        if _rule(ctx).same_terminal and record.tid != ctx.tid:
            return False
        if ref is None:
            return True
        unknown_to_terminal = ref.batch == "000000" and ref.stan == "000000"
        if not unknown_to_terminal and (ref.batch, ref.stan) != (record.batch_no, record.stan):
            return False
        return not ref.date or ref.date == record.business_date.strftime("%m%d")

    def _check(self, ctx: TxnContext, record: OriginalRecord) -> Reason | None:
        amount = int(ctx.request.get("4", "0"))
        rule = _rule(ctx)
        assert ctx.card is not None
        if record.pan_hash != self.cards.pan_hash(ctx.card.pan):
            return Reason.INVALID_TRANSACTION
        if record.state != TxnState.APPROVED:
            return Reason.INVALID_TRANSACTION
        if rule.same_batch and (record.settled or record.batch_no != ctx.batch_no):
            return Reason.INVALID_TRANSACTION
        if rule.auth_code == "checked" and ctx.request.get("38") != record.auth_code:
            return Reason.ORIGINAL_NOT_FOUND
        if rule.not_if_refunded and record.refunded_fen:
            return Reason.INVALID_TRANSACTION  # partly refunded: refund the rest instead
        if rule.amount == "up_to_115_percent":
            if amount * 100 > record.amount_fen * COMPLETION_CEILING_PERCENT:
                return Reason.AMOUNT_DIFFERS
        elif rule.amount == "what_is_left":
            if amount > record.amount_fen - record.refunded_fen:
                return Reason.AMOUNT_DIFFERS
        elif amount != record.amount_fen:
            return Reason.AMOUNT_DIFFERS
        return None


def _rule(ctx: TxnContext) -> OriginalRule:
    rule = row_of(ctx.kind).original
    assert rule is not None, f"{ctx.kind} refers to no original"
    return rule
