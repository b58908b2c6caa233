"""TranslatePin: PIN block from the terminal's PIK to the issuer's ZPK (the clear block never leaves
`security.pin.translate_pin_block`)."""

from __future__ import annotations

from posgate.errors import SecurityError
from posgate.host.context import TxnContext
from posgate.host.ports import Issuers
from posgate.host.steps.base import Step
from posgate.iso8583.reasons import MALFORMED_PIN_BLOCK
from posgate.security.pin import translate_pin_block


class TranslatePin(Step):
    """Needs: field 52 (optional), ctx.keys, ctx.card, ctx.route. Provides: ctx.pin_block_zpk.
    Declines: 96 (`MALFORMED_PIN_BLOCK`, the rule the issuer follows too) when the PIN block does not decrypt
    to a well-formed format-0 block for this PAN: nothing is sent to the issuer, no PIN try is counted."""

    def __init__(self, issuers: Issuers) -> None:
        self.issuers = issuers

    async def prepare(self, ctx: TxnContext) -> None:
        if "52" not in ctx.request:
            return
        assert ctx.keys is not None and ctx.card is not None and ctx.route is not None
        zpk = self.issuers.zpk(ctx.route.issuer_name)
        try:
            ctx.pin_block_zpk = translate_pin_block(
                bytes.fromhex(ctx.request["52"]), ctx.card.pan, ctx.keys.pik, zpk
            )
        except SecurityError:
            ctx.detail = "the PIN block does not open as format 0 for this PAN"
            ctx.result.decline(MALFORMED_PIN_BLOCK)
