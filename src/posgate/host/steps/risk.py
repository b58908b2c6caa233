"""AssessRisk (the inline risk decision, before the issuer is asked), CountForRisk (the finished request added
to the risk aggregates) and RaiseRiskAlerts (the alerts the decision asks for). All do nothing when the host
runs without risk rules (`risk_rules = off`)."""

from __future__ import annotations

from posgate.host.context import TxnContext
from posgate.host.ports import Cards, Risk
from posgate.host.steps.base import Step
from posgate.iso8583.reasons import Reason
from posgate.risk.facts import Assessment

# a rule's decline code → the reason recorded (the POS dialect maps it back to the same field 39)
DECLINE_REASONS = {
    "58": Reason.NOT_PERMITTED_TO_TERMINAL,
    "59": Reason.RISK_SUSPECTED_FRAUD,
    "61": Reason.OVER_AMOUNT_LIMIT,
    "65": Reason.OVER_FREQUENCY_LIMIT,
}


class AssessRisk(Step):
    """Needs: ctx.card, ctx.route, ctx.terminal, ctx.txn_id (after RecordRequest: the decision is stored with
    the transaction, declined or not). Provides: ctx.risk (the decision), ctx.risk_assessment.
    Declines: 58 terminal not permitted, 59 suspected fraud, 61 over an amount limit, 65 over a frequency
    limit — as the first declining rule says; the issuer is then never asked. Compensates nothing (it
    writes only the score, which stays true of the request). `prepare` builds the facts; `commit` asks the
    engine, which stores its decision with the transaction."""

    def __init__(self, risk: Risk | None, cards: Cards) -> None:
        self.risk, self.cards = risk, cards

    async def prepare(self, ctx: TxnContext) -> None:
        if self.risk is None or ctx.card is None:
            return
        request = ctx.request
        ctx.risk_assessment = Assessment(
            kind=ctx.kind.value,
            amount_fen=int(request.get("4", "0")),
            tid=ctx.tid,
            mid=request.get("42") or (ctx.terminal.mid if ctx.terminal else ""),
            pan_hash=self.cards.pan_hash(ctx.card.pan),
            bin=ctx.card.pan[:6],
            card_kind=ctx.route.card_kind if ctx.route else None,
            entry_mode=request.get("22"),
            fallback=request.get("22", "")[:2] == "80",
            has_pin="52" in request,
            location=request.get("59"),
        )

    async def commit(self, ctx: TxnContext) -> None:
        if self.risk is None or ctx.risk_assessment is None:
            return
        ctx.risk = await self.risk.assess(ctx.risk_assessment, txn_id=ctx.txn_id)
        if ctx.risk.declined and ctx.risk.code is not None:
            ctx.result.decline(DECLINE_REASONS[ctx.risk.code])


class CountForRisk(Step):
    """A finishing step, after RecordOutcome: adds an assessed request's outcome (approved or not, its
    response code) to the risk aggregates the next requests are judged by. Needs: ctx.risk_assessment."""

    def __init__(self, risk: Risk | None) -> None:
        self.risk = risk

    async def commit(self, ctx: TxnContext) -> None:
        if (
            self.risk is None
            or not self.risk.counting
            or ctx.risk_assessment is None
            or ctx.replay is not None
        ):
            return
        await self.risk.record(self.risk.outcome(ctx.risk_assessment, ctx.result.approved, ctx.result.code))


class RaiseRiskAlerts(Step):
    """A finishing step, after RecordOutcome: opens the alerts an assessed request's decision asks for (a
    review, `alert` hits, holds and suspensions) for the risk officers, and does what the rules do by
    themselves — a `hold_settlement` hit holds the merchant's settlement, an automatic suspension suspends
    (`risk.disposal`). Needs: ctx.risk."""

    def __init__(self, risk: Risk | None) -> None:
        self.risk = risk

    async def commit(self, ctx: TxnContext) -> None:
        if self.risk is None or ctx.risk is None or ctx.risk_assessment is None or ctx.replay is not None:
            return
        masked = ctx.card.masked if ctx.card is not None else None
        await self.risk.raise_alerts(ctx.risk, ctx.risk_assessment, ctx.txn_id, masked, ctx.result.code)
