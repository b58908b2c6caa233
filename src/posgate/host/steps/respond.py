"""ComposeResponse: the answer's fields (no card data — this is also what a duplicate gets again)."""

from __future__ import annotations

from posgate.host.context import Kind, TxnContext
from posgate.host.steps.base import Step
from posgate.iso8583.codec import response_mti
from posgate.txnset import row_of


class ComposeResponse(Step):
    """Provides: ctx.response — MTI, echoed fields, 12/13/15 (acquirer local time),
    32, 37, 38, 39, 54 (balance), 55 (issuer's ICC data), 62 (sign-in keys), 63 (`CUP`)."""

    def __init__(self, acquirer_id: str) -> None:
        self.acquirer_id = acquirer_id

    async def prepare(self, ctx: TxnContext) -> None:
        request = ctx.request
        fields: dict[str, str] = {"t": response_mti(request["t"])}
        row = row_of(ctx.kind)
        for field in row.echoed:
            if field in request:
                fields[field] = request[field]
        fields["12"] = ctx.local_now.strftime("%H%M%S")
        fields["13"] = ctx.local_now.strftime("%m%d")
        if row.recorded:
            fields["15"] = ctx.local_now.strftime("%m%d")
            if row.field32:
                fields["32"] = self.acquirer_id
        if ctx.rrn:
            fields["37"] = ctx.rrn
        if ctx.result.approved and ctx.auth_code:
            fields["38"] = ctx.auth_code
        fields["39"] = ctx.result.code
        if ctx.result.approved and ctx.balance_field:
            fields["54"] = ctx.balance_field
        if ctx.issuer_reply is not None and "55" in ctx.issuer_reply:
            fields["55"] = ctx.issuer_reply["55"]
        if ctx.result.approved and row.slip:
            fields["63"] = "CUP"
        fields |= ctx.response_extra
        ctx.response = fields


def stored_answer(kind: Kind, fields: dict[str, str]) -> dict[str, str]:
    """The answer as kept in `transactions.response_fields`: without the echoed fields that carry card data.

    >>> stored_answer(Kind.BATCH_UPLOAD, {"t": "0330", "39": "00", "48": "01006229990000000012"})
    {'t': '0330', '39': '00'}
    """
    hidden = row_of(kind).not_stored
    return {name: value for name, value in fields.items() if name not in hidden}


def replayed_answer(kind: Kind, stored: dict[str, str], request: dict[str, str]) -> dict[str, str]:
    """What a duplicate gets: the stored answer, with the echoed fields it lacks (those never stored, or all
    of them for a transaction a host resolved after a crash) taken from the duplicate's own request.

    >>> replayed_answer(Kind.BATCH_UPLOAD, {"t": "0330", "11": "000009"}, {"11": "000009", "48": "01"})
    {'t': '0330', '11': '000009', '48': '01'}
    """
    echoed = {name: request[name] for name in row_of(kind).echoed if name in request and name not in stored}
    return {**stored, **echoed}
