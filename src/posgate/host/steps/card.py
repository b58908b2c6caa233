"""ReadCard: the PAN, expiry and service code from field 2 / 35 / 14."""

from __future__ import annotations

from posgate.cards.pan import mask_pan, validate_pan
from posgate.cards.track2 import parse_track2
from posgate.errors import DecodeError
from posgate.host.context import CardView, TxnContext
from posgate.host.steps.base import Step
from posgate.iso8583.reasons import Reason


class ReadCard(Step):
    """Needs: field 35 (track 2) or field 2 (+14). Provides: ctx.card (clear PAN in memory only).
    Declines: 14 invalid card number (Luhn, length), 30 malformed track 2, 12 PAN and track disagree."""

    async def prepare(self, ctx: TxnContext) -> None:
        request = ctx.request
        try:
            track = parse_track2(request["35"]) if "35" in request else None
            pan = request.get("2") or (track.pan if track else "")
            if track is not None and track.pan != pan:
                ctx.result.decline(Reason.INVALID_TRANSACTION)
                return
            validate_pan(pan)
        except DecodeError as error:
            ctx.detail = str(error)
            ctx.result.decline(Reason.INVALID_CARD if error.field == 2 else Reason.FORMAT_ERROR)
            return
        ctx.card = CardView(
            pan=pan,
            masked=mask_pan(pan),
            expiry=track.expiry if track else request.get("14"),
            service_code=track.service_code if track else None,
            track2=track.encode() if track else None,
        )
