"""AskIssuer: the network request, the wait, and what the issuer's answer means for the terminal."""

from __future__ import annotations

import logging
import secrets

from posgate.errors import IssuerReplyUnverified, IssuerTimeout, IssuerUnavailable
from posgate.host.context import Kind, TxnContext
from posgate.host.network_messages import authorization_request
from posgate.host.steps.base import Step
from posgate.iso8583.reasons import Reason, reason_from_network_code
from posgate.store.acquirer import queue_advice, reverse_transaction, time_out_transaction
from posgate.store.originals import stand_in_total_today


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

    async def prepare(self, ctx: TxnContext) -> None:
        assert ctx.route is not None and ctx.txn_id is not None
        link = self.services.links.get(ctx.route.issuer_name)
        request = authorization_request(ctx, self.services.settings.acquirer_id)
        try:
            reply = await link.request(request, self.services.settings.issuer_timeout_s)
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
            txn_id, now = ctx.txn_id, self.services.clock()
            await self.services.store.run(lambda s: time_out_transaction(s, txn_id, now.replace(tzinfo=None)))
            self.services.saf.kick()
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
        txn_id, issuer, now = ctx.txn_id, ctx.route.issuer_name, self.services.clock().replace(tzinfo=None)
        code = new_auth_code()
        if not await self.services.store.run(lambda s: queue_advice(s, txn_id, issuer, now, code)):
            ctx.result.decline(Reason.ISSUER_TIMEOUT)  # resolved meanwhile as in doubt: it is reversed
            return
        ctx.auth_code = code
        self.services.saf.kick()

    async def _stand_in(self, ctx: TxnContext) -> bool:
        """The link is down: approve a sale within the issuer's stand-in limits (per transaction, per card
        per day), mark it stand-in and advise the issuer (0220) when the link is back."""
        route = ctx.route
        assert route is not None and ctx.card is not None and ctx.txn_id is not None
        amount = int(ctx.request.get("4", "0"))
        if ctx.kind is not Kind.SALE or route.stand_in_max_fen is None or amount > route.stand_in_max_fen:
            return False
        pan_hash, day = self.services.vault.pan_hash(ctx.card.pan), ctx.business_date
        txn_id, issuer, now = ctx.txn_id, route.issuer_name, self.services.clock().replace(tzinfo=None)
        daily_limit = route.stand_in_card_daily_fen

        def approve(session) -> bool:  # type: ignore[no-untyped-def]
            if (
                daily_limit is not None
                and stand_in_total_today(session, pan_hash, day) + amount > daily_limit
            ):
                return False
            return queue_advice(session, txn_id, issuer, now, code)

        code = new_auth_code()
        if not await self.services.store.run(approve):
            return False
        ctx.stand_in, ctx.auth_code = True, code
        log.info("stand-in approval for %s RRN %s (issuer %s down)", ctx.card.masked, ctx.rrn, issuer)
        self.services.saf.kick()
        return True

    async def abort(self, ctx: TxnContext) -> None:
        if ctx.issuer_reply is not None and ctx.issuer_reply.get("39") == "00":
            await self._reverse(ctx, "96")

    async def _reverse(self, ctx: TxnContext, reason_code: str) -> None:
        assert ctx.txn_id is not None
        txn_id, now = ctx.txn_id, self.services.clock().replace(tzinfo=None)
        await self.services.store.run(lambda s: reverse_transaction(s, txn_id, reason_code, now))
        self.services.saf.kick()
