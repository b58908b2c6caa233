"""Key management messages: IssueWorkingKeys (sign-in), SignOut, Echo.

An 0800 / 0820 carries no MAC (pos-8583.md), so anyone can send one naming any TID. Neither may take a
terminal's keys away: a sign-in offers new keys without withdrawing the ones in use, and a sign-out changes
nothing at the host (docs/security.md, "Sign-in").
"""

from __future__ import annotations

import logging

from posgate.host.context import TxnContext
from posgate.host.ports import Policy, Terminals
from posgate.host.steps.base import Step
from posgate.iso8583.private_fields import parse_field60
from posgate.iso8583.reasons import Reason
from posgate.security.keys import generate_key
from posgate.security.pos_mac import MacAlgorithm
from posgate.security.signin import WorkingKeys, deliver_working_keys, new_working_keys

log = logging.getLogger("posgate.host")

# a compare-and-set on the terminal row loses only to another node's sign-in of the same terminal
_ATTEMPTS = 3


class IssueWorkingKeys(Step):
    """Needs: ctx.terminal, field 60 (60.3 = 003, or 004 with a TDK). Provides: field 62 = PIK, MAK [, TDK]
    under the TMK with their check values (the MAK as K|K for a CUP ECB terminal, with distinct halves for
    an X9.19 one).

    The keys are the terminal's pending generation: the keys in use stay valid until the terminal MACs a
    message under the new ones (VerifyMac promotes them). While a pending generation of the current key
    period exists, a sign-in delivers it again (adding a TDK if 004 asks for one) rather than replacing it,
    so a third party's 0800 can neither withdraw the keys in use nor those the terminal was just given.
    Declines: 65 over `sign_in_limit` sign-ins of this TID in `sign_in_window_s` (counted in the store, so
    across host nodes; nothing changes), 97 when the terminal has no TMK, 96 if other nodes kept changing
    the terminal's keys."""

    def __init__(self, terminals: Terminals, policy: Policy) -> None:
        self.terminals, self.policy = terminals, policy

    async def commit(self, ctx: TxnContext) -> None:
        assert ctx.terminal is not None
        terminals, policy = self.terminals, self.policy
        tid, now = ctx.terminal.tid, ctx.received_at.replace(tzinfo=None)
        window_s, limit = policy.sign_in_window_s, policy.sign_in_limit
        if not await terminals.count_sign_in(tid, now, window_s, limit):
            log.warning("sign-in of tid=%s refused: more than %d in %g s", tid, limit, window_s)
            ctx.result.decline(Reason.OVER_FREQUENCY_LIMIT)
            return
        with_tdk = parse_field60(ctx.request["60"]).nmc == "004"
        distinct_mak_halves = MacAlgorithm.parse(ctx.terminal.mac_algorithm) is MacAlgorithm.X919
        for _ in range(_ATTEMPTS):
            record, stored = await terminals.for_sign_in(tid)
            if record is None or stored.tmk is None:
                ctx.result.decline(Reason.TERMINAL_NOT_SIGNED_IN)
                return
            pending = stored.pending if record.pending_keys_valid else {}
            if "PIK" in pending and "MAK" in pending and (not with_tdk or "TDK" in pending):
                keys = WorkingKeys(pik=pending["PIK"], mak=pending["MAK"], tdk=pending.get("TDK"))
            else:
                if "PIK" in pending and "MAK" in pending:  # 004 after 003: the same keys and a TDK
                    keys = WorkingKeys(pik=pending["PIK"], mak=pending["MAK"], tdk=generate_key())
                else:
                    keys = new_working_keys(with_tdk, distinct_mak_halves)
                if not await terminals.offer(tid, keys, record.key_period, now, record.pending_at):
                    continue  # another node's sign-in of this terminal won: deliver what it stored
            ctx.response_extra["62"] = deliver_working_keys(stored.tmk, keys, with_tdk).hex().upper()
            ctx.result.approve()
            return
        ctx.result.decline(Reason.SYSTEM_ERROR)


class SignOut(Step):
    """Needs: ctx.terminal. Approves and changes nothing: an 0820 carries no MAC, so the host cannot tell the
    terminal's sign-out from a third party's, and a third party must not lock the terminal out. The terminal
    forgets its keys; the host keeps accepting them until the terminal signs in and uses new ones, or a
    key-period rotation (`posgate keys rotate`) ends them. A terminal taken out of service is suspended or
    closed instead (the host then answers 03)."""

    async def prepare(self, ctx: TxnContext) -> None:
        ctx.result.approve()


class Echo(Step):
    """Needs: a known terminal. Approves."""

    async def prepare(self, ctx: TxnContext) -> None:
        ctx.result.approve()
