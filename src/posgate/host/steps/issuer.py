"""AskIssuer: the network request, the wait, and what the issuer's answer means for the terminal."""

from __future__ import annotations

import logging

from posgate.errors import IssuerTimeout, IssuerUnavailable
from posgate.host.context import TxnContext
from posgate.host.network_messages import authorization_request
from posgate.host.steps.base import Step
from posgate.iso8583.reasons import Reason, reason_from_network_code
from posgate.store.acquirer import reverse_transaction, time_out_transaction

log = logging.getLogger("posgate.host")


class AskIssuer(Step):
    """Needs: ctx.route, ctx.card, ctx.txn_id/rrn/network_stan, ctx.pin_block_zpk. Provides: ctx.issuer_reply,
    ctx.auth_code, ctx.balance_field. Declines: the issuer's own code (mapped), 91 link down (nothing was
    sent), 98 no answer in time (the transaction is marked timed out and a 0420 queued — in the same unit
    of work), 96 an approval whose MAC did not verify (reversed). Compensates (abort): an approval that a
    later step failed to deliver is reversed."""

    async def prepare(self, ctx: TxnContext) -> None:
        assert ctx.route is not None and ctx.txn_id is not None
        link = self.services.links.get(ctx.route.issuer_name)
        request = authorization_request(ctx, self.services.settings.acquirer_id)
        try:
            reply = await link.request(request, self.services.settings.issuer_timeout_s)
        except IssuerUnavailable:
            ctx.result.decline(Reason.ISSUER_UNAVAILABLE)
            return
        except IssuerTimeout:
            ctx.result.decline(Reason.ISSUER_TIMEOUT)
            txn_id, now = ctx.txn_id, self.services.clock()
            await self.services.store.run(lambda s: time_out_transaction(s, txn_id, now.replace(tzinfo=None)))
            self.services.saf.kick()
            return
        ctx.issuer_reply = reply
        if reply.get("39") == "A0":
            log.warning("issuer %s: reply to RRN %s failed MAC verification", ctx.route.issuer_name, ctx.rrn)
            ctx.result.decline(Reason.SYSTEM_ERROR)
            await self._reverse(ctx, "96")
            return
        reason = reason_from_network_code(reply.get("39", ""))
        if reason is not Reason.APPROVED:
            ctx.result.decline(reason)
            return
        ctx.auth_code = reply.get("38")
        ctx.balance_field = reply.get("54")

    async def abort(self, ctx: TxnContext) -> None:
        if ctx.issuer_reply is not None and ctx.issuer_reply.get("39") == "00":
            await self._reverse(ctx, "96")

    async def _reverse(self, ctx: TxnContext, reason_code: str) -> None:
        assert ctx.txn_id is not None
        txn_id, now = ctx.txn_id, self.services.clock().replace(tzinfo=None)
        await self.services.store.run(lambda s: reverse_transaction(s, txn_id, reason_code, now))
        self.services.saf.kick()
