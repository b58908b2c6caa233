"""SelectIssuer: BIN routing."""

from __future__ import annotations

from posgate.host.context import TxnContext
from posgate.host.ports import Issuers
from posgate.host.steps.base import Step
from posgate.iso8583.reasons import Reason


class SelectIssuer(Step):
    """Needs: ctx.card. Provides: ctx.route. Declines: 15 no issuer for the BIN."""

    def __init__(self, issuers: Issuers) -> None:
        self.issuers = issuers

    async def prepare(self, ctx: TxnContext) -> None:
        assert ctx.card is not None
        ctx.route = self.issuers.route(ctx.card.pan)
        if ctx.route is None:
            ctx.result.decline(Reason.NO_SUCH_ISSUER)
