"""Key management messages: IssueWorkingKeys (sign-in), SignOut, Echo."""

from __future__ import annotations

from posgate.host.context import TxnContext
from posgate.host.steps.base import Step
from posgate.iso8583.private_fields import parse_field60
from posgate.iso8583.reasons import Reason
from posgate.security.keys import kcv
from posgate.security.signin import issue_working_keys
from posgate.store.acquirer import record_sign_in, record_sign_out, terminal_keys


class IssueWorkingKeys(Step):
    """Needs: ctx.terminal, field 60 (60.3 = 003, or 004 with a TDK). Provides: field 62 = PIK, MAK (K|K)
    [, TDK] under the TMK with their check values; the terminal is signed in for the current key period.
    Declines: 97 when the terminal has no TMK."""

    async def prepare(self, ctx: TxnContext) -> None:
        assert ctx.terminal is not None
        services = self.services
        tid = ctx.terminal.tid
        stored = await services.store.run(lambda s: terminal_keys(s, services.vault, tid))
        tmk = stored.get("TMK")
        if tmk is None:
            ctx.result.decline(Reason.TERMINAL_NOT_SIGNED_IN)
            return
        with_tdk = parse_field60(ctx.request["60"]).nmc == "004"
        keys, field62 = issue_working_keys(tmk, with_tdk)
        working = {"PIK": (keys.pik, kcv(keys.pik)), "MAK": (keys.mak, kcv(keys.mak))}
        if keys.tdk is not None:
            working["TDK"] = (keys.tdk, kcv(keys.tdk))
        now = ctx.received_at.replace(tzinfo=None)
        await services.store.run(lambda s: record_sign_in(s, services.vault, tid, working, ctx.batch_no, now))
        services.terminals.forget(tid)
        ctx.response_extra["62"] = field62.hex().upper()
        ctx.result.approve()


class SignOut(Step):
    """Needs: ctx.terminal. The terminal must sign in again before its next transaction."""

    async def prepare(self, ctx: TxnContext) -> None:
        assert ctx.terminal is not None
        tid = ctx.terminal.tid
        await self.services.store.run(lambda s: record_sign_out(s, tid))
        self.services.terminals.forget(tid)
        ctx.result.approve()


class Echo(Step):
    """Needs: a known terminal. Approves."""

    async def prepare(self, ctx: TxnContext) -> None:
        ctx.result.approve()
