"""End of day at the terminal: SettleBatch (0500) and UploadBatch (0320 records and batch end)."""

from __future__ import annotations

from posgate.errors import DecodeError, EncodeError
from posgate.host.context import TxnContext
from posgate.host.ports import Batches
from posgate.host.steps.base import Step
from posgate.iso8583.private_fields import parse_field60
from posgate.iso8583.reasons import Reason

MAGSTRIPE_RECORDS, IC_RECORDS, BATCH_END = "201", "203", "207"


class SettleBatch(Step):
    """Needs: field 48 (the terminal's totals: 62 digits), 60.2 (batch). Compares them with the host's
    totals of that batch. Balanced: the batch closes (its transactions can no longer be voided) and the
    terminal's batch number advances. Unbalanced: answered `2` in both code digits of field 48; the batch
    stays open for the batch upload. Declines: 30 when field 48 is not 62 digits; 96 when the host's totals
    do not fit field 48 (more than 999 debits or credits, or 999,999,999,999 fen, in one batch)."""

    def __init__(self, batches: Batches) -> None:
        self.batches = batches

    async def prepare(self, ctx: TxnContext) -> None:
        if len(ctx.request.get("48", "")) != 62:
            ctx.detail = "field 48 must carry 62 digits of totals"
            ctx.result.decline(Reason.FORMAT_ERROR)

    async def commit(self, ctx: TxnContext) -> None:
        assert ctx.terminal is not None
        now = ctx.received_at.replace(tzinfo=None)
        try:
            outcome = await self.batches.settle(
                ctx.tid, ctx.terminal.mid, ctx.batch_no, ctx.business_date, ctx.request["48"], now
            )
        except EncodeError as exc:
            # the host's totals do not fit field 48 (a count over 999): nothing was written
            ctx.detail = str(exc)
            ctx.result.decline(Reason.SYSTEM_ERROR)
            return
        ctx.response_extra["48"] = outcome.host_field48
        ctx.detail = "balanced" if outcome.balanced else "unbalanced"
        ctx.result.approve()


class UploadBatch(Step):
    """Needs: 60.3 (201 magstripe records, 203 IC records, 207 batch end), field 48 (records: n2 count +
    40-digit records; batch end: n4 total). Records are kept (PAN as keyed hash + mask); the batch end
    reconciles the upload against the host's batch, stores every difference and closes the batch.
    Declines: 25 no unbalanced settlement of this batch awaits an upload, 30 malformed field 48."""

    def __init__(self, batches: Batches) -> None:
        self.batches = batches

    async def prepare(self, ctx: TxnContext) -> None:
        if parse_field60(ctx.request["60"]).nmc == BATCH_END:
            return
        try:
            ctx.upload_records = self.batches.parse_upload(ctx.request.get("48", ""))
        except DecodeError as exc:
            ctx.detail = str(exc)
            ctx.result.decline(Reason.FORMAT_ERROR)

    async def commit(self, ctx: TxnContext) -> None:
        code = parse_field60(ctx.request["60"]).nmc
        now = ctx.received_at.replace(tzinfo=None)
        differences = await self.batches.upload(ctx.tid, ctx.batch_no, code, ctx.upload_records, now)
        if differences is None:
            ctx.result.decline(Reason.ORIGINAL_NOT_FOUND)
            return
        if code == BATCH_END:
            ctx.detail = f"{differences} difference(s)"
        ctx.result.approve()
