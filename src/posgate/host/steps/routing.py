"""SelectIssuer: BIN routing."""

from __future__ import annotations

from posgate.host.context import Route, TxnContext
from posgate.host.steps.base import Step
from posgate.iso8583.reasons import Reason


class SelectIssuer(Step):
    """Needs: ctx.card. Provides: ctx.route. Declines: 15 no issuer for the BIN."""

    async def prepare(self, ctx: TxnContext) -> None:
        assert ctx.card is not None
        route = self.services.bins.route(ctx.card.pan)
        if route is None:
            ctx.result.decline(Reason.NO_SUCH_ISSUER)
            return
        ctx.route = Route(
            issuer_name=route.name,
            mac_enabled=route.mac_enabled,
            card_kind=route.kind,
            stand_in_max_fen=route.stand_in_max_fen,
            stand_in_card_daily_fen=route.stand_in_card_daily_fen,
        )
