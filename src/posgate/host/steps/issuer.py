"""AskIssuer: the network request, the wait, and what the issuer's answer means for the terminal."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable

from posgate.errors import IssuerReplyUnverified, IssuerTimeout, IssuerUnavailable
from posgate.host.context import Kind, TxnContext
from posgate.host.network_messages import authorization_request
from posgate.host.ports import Cards, Forwarder, Issuers, Policy, Transactions
from posgate.host.steps.base import Step
from posgate.iso8583.reasons import Reason, reason_from_network_code


def new_auth_code() -> str:
    """An authorization code the host gives itself (stand-in, advised refunds)."""
    return f"{secrets.randbelow(1_000_000):06d}"


log = logging.getLogger("posgate.host")


class AskIssuer(Step):
    """Needs: ctx.route, ctx.card, ctx.txn_id/rrn/network_stan, ctx.pin_block_zpk. Provides: ctx.issuer_reply,
    ctx.auth_code, ctx.balance_field. Declines: the issuer's own code (mapped), 91 link down (nothing was
    sent), 98 no answer in time (the transaction is marked timed out and a 0420 queued — in the same unit
    of work), 96 a reply whose MAC did not verify (`Reason.ISSUER_REPLY_UNVERIFIED`: nothing in it is
    trusted; the request is reversed). A refund is an advice: when the issuer does not answer it is approved
    and its 0220 repeated until answered. Stand-in: a sale within the issuer's limits is approved while its
    link is down and advised later. Compensates (abort): an approval that a later step failed to deliver is
    reversed."""

    def __init__(
        self,
        issuers: Issuers,
        transactions: Transactions,
        forwarder: Forwarder,
        cards: Cards,
        policy: Policy,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.issuers, self.transactions, self.forwarder = issuers, transactions, forwarder
        self.cards, self.policy, self.clock = cards, policy, clock

    async def prepare(self, ctx: TxnContext) -> None:
        ctx.network_request = authorization_request(ctx, self.policy.acquirer_id)

    async def commit(self, ctx: TxnContext) -> None:
        assert ctx.route is not None and ctx.txn_id is not None and ctx.network_request is not None
        try:
            reply = await self.issuers.request(
                ctx.route.issuer_name, ctx.network_request, self.policy.issuer_timeout_s
            )
        except IssuerUnavailable:
            if ctx.kind is Kind.REFUND:
                await self._advise_later(ctx)
            elif not await self._stand_in(ctx):
                ctx.result.decline(Reason.ISSUER_UNAVAILABLE)
            return
        except IssuerReplyUnverified as exc:
            log.warning("RRN %s: %s", ctx.rrn, exc)
            ctx.issuer_reply_unverified = True  # it may have approved: RecordOutcome must know
            ctx.result.decline(Reason.ISSUER_REPLY_UNVERIFIED)
            await self._reverse(ctx, "96")
            return
        except IssuerTimeout:
            ctx.issuer_unanswered = True  # it may have acted on it: RecordOutcome must know
            if ctx.kind is Kind.REFUND:  # an advice is never reversed: it is repeated until answered
                await self._advise_later(ctx)
                return
            ctx.result.decline(Reason.ISSUER_TIMEOUT)
            await self.transactions.time_out(ctx.txn_id, self.clock().replace(tzinfo=None))
            self.forwarder.kick()
            return
        ctx.issuer_reply = reply
        reason = reason_from_network_code(reply.get("39", ""))
        if reason is not Reason.APPROVED:
            ctx.result.decline(reason)
            return
        ctx.auth_code = reply.get("38")
        ctx.balance_field = reply.get("54")

    async def _advise_later(self, ctx: TxnContext) -> None:
        """A refund the issuer did not answer: approve it and repeat the 0220 advice until answered."""
        assert ctx.route is not None and ctx.txn_id is not None
        code, now = new_auth_code(), self.clock().replace(tzinfo=None)
        if not await self.transactions.queue_advice(ctx.txn_id, ctx.route.issuer_name, now, code):
            ctx.result.decline(Reason.ISSUER_TIMEOUT)  # resolved meanwhile as in doubt: it is reversed
            return
        ctx.auth_code = code
        self.forwarder.kick()

    async def _stand_in(self, ctx: TxnContext) -> bool:
        """The link is down: approve a sale within the issuer's stand-in limits (per transaction, per card
        per day), mark it stand-in and advise the issuer (0220) when the link is back."""
        route = ctx.route
        assert route is not None and ctx.card is not None and ctx.txn_id is not None
        amount = int(ctx.request.get("4", "0"))
        if ctx.kind is not Kind.SALE or route.stand_in_max_fen is None or amount > route.stand_in_max_fen:
            return False
        code = new_auth_code()
        approved = await self.transactions.stand_in(
            ctx.txn_id,
            route.issuer_name,
            self.clock().replace(tzinfo=None),
            code,
            self.cards.pan_hash(ctx.card.pan),
            ctx.business_date,
            amount,
            route.stand_in_card_daily_fen,
        )
        if not approved:
            return False
        ctx.stand_in, ctx.auth_code = True, code
        log.info(
            "stand-in approval for %s RRN %s (issuer %s down)", ctx.card.masked, ctx.rrn, route.issuer_name
        )
        self.forwarder.kick()
        return True

    async def abort(self, ctx: TxnContext) -> None:
        if ctx.issuer_reply is not None and ctx.issuer_reply.get("39") == "00":
            await self._reverse(ctx, "96")

    async def _reverse(self, ctx: TxnContext, reason_code: str) -> None:
        assert ctx.txn_id is not None
        await self.transactions.reverse(ctx.txn_id, reason_code, self.clock().replace(tzinfo=None))
        self.forwarder.kick()
