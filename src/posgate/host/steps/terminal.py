"""Who sent it: IdentifyTerminal, RequireSignIn, VerifyMac (with the terminal's MAC algorithm, under the keys
in use or those issued at its last sign-in), CompleteTestSwipe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from posgate.host.context import Kind, TxnContext
from posgate.host.ports import Terminals
from posgate.host.steps.base import Step
from posgate.iso8583.codec import split_pos_mac
from posgate.iso8583.reasons import Reason
from posgate.security.keys import kcv
from posgate.security.pos_mac import MacAlgorithm, verify_pos_mac

if TYPE_CHECKING:
    from posgate.store.acquirer import TerminalRecord

LIVE, TESTING = "live", "testing"
# before going live a terminal makes a test swipe: a small sale, then its void or its reversal
TEST_SALE_MAX_FEN = 100
TEST_SWIPE_KINDS = (Kind.SIGN_IN, Kind.SIGN_OUT, Kind.ECHO, Kind.VOID, Kind.REVERSAL)


def allowed_in_status(ctx: TxnContext, terminal_status: str, merchant_status: str) -> bool:
    """Live: everything. Testing (provisioned, test swipe pending): key management, a sale of at most
    1.00 CNY, its void or its reversal — anything else is real traffic and gets 03. Suspended, closed: 03."""
    statuses = {terminal_status, merchant_status}
    if statuses == {LIVE}:
        return True
    if not statuses <= {LIVE, TESTING}:
        return False
    if ctx.kind is Kind.SALE:
        return int(ctx.request.get("4", "0")) <= TEST_SALE_MAX_FEN
    return ctx.kind in TEST_SWIPE_KINDS


class IdentifyTerminal(Step):
    """Needs: field 41 (and 42 when present). Provides: ctx.terminal, ctx.key_generations (when signed in:
    the keys in use and those issued at its last sign-in, each only if of the current key period).
    Declines: 97 unknown terminal (`Reason.UNKNOWN_TERMINAL`), 03 merchant id does not match or
    merchant/terminal not live."""

    def __init__(self, terminals: Terminals) -> None:
        self.terminals = terminals

    async def prepare(self, ctx: TxnContext) -> None:
        record = self.terminals.cached(ctx.tid)
        ctx.terminal_cached = record is not None
        if record is None:
            record = await self.terminals.load(ctx.tid)
            if record is None:
                ctx.result.decline(Reason.UNKNOWN_TERMINAL)
                return
        await self.use(ctx, record)

    async def use(self, ctx: TxnContext, record: TerminalRecord) -> None:
        ctx.key_generations = None
        if record.signed_in:
            record, ctx.key_generations = await self.terminals.key_generations(record)
        ctx.terminal = record
        wrong_merchant = "42" in ctx.request and ctx.request["42"] != record.mid
        if wrong_merchant or not allowed_in_status(ctx, record.status, record.merchant_status):
            ctx.result.decline(Reason.INVALID_MERCHANT)


def _has_keys(ctx: TxnContext) -> bool:
    generations = ctx.key_generations
    return generations is not None and (generations.current is not None or generations.pending is not None)


class RequireSignIn(Step):
    """Needs: ctx.terminal. Declines: 97 when the terminal holds no working keys of the current key period
    (it never signed in, or `posgate keys rotate` started a new period since); sets the header's processing
    requirement to 3 (sign in again)."""

    async def prepare(self, ctx: TxnContext) -> None:
        if ctx.terminal is None or not ctx.terminal.signed_in or not _has_keys(ctx):
            ctx.result.processing_requirement = 3
            ctx.result.decline(Reason.TERMINAL_NOT_SIGNED_IN)


class VerifyMac(Step):
    """Needs: ctx.terminal (its MAC algorithm), ctx.key_generations, field 64. Provides: ctx.keys, the
    generation the MAC verified under. A MAC under the keys issued at the last sign-in promotes them (commit):
    from then on only they are accepted (docs/security.md, "Sign-in").
    Declines: A0 when field 64 is missing or verifies under neither generation (commit audits it as
    `mac_verify_failed`: the request stores no transaction, so the trail shows the attempt); but 97
    (processing requirement 3) when it does not verify and the terminal has no keys in use of this key
    period though it had keys in an earlier one: `posgate keys rotate` ended them and someone's sign-in
    since left new keys pending, so the terminal must sign in again to receive them."""

    def __init__(self, terminals: Terminals) -> None:
        self.terminals = terminals

    async def prepare(self, ctx: TxnContext) -> None:
        parts = split_pos_mac(ctx.request, ctx.frame.payload)
        if not _has_keys(ctx) or parts is None:
            ctx.mac_refused = "no working keys" if parts is not None else "absent"
            return
        covered, mac = parts
        if self._verify(ctx, covered, mac):
            return
        if ctx.terminal_cached:  # keys may have changed on another node: look again
            record = await self.terminals.load(ctx.tid)
            if record is not None:
                await IdentifyTerminal(self.terminals).use(ctx, record)
                if _has_keys(ctx) and self._verify(ctx, covered, mac):
                    return
        if ctx.terminal is not None and ctx.terminal.had_keys_of_an_earlier_period:
            ctx.result.processing_requirement = 3
            ctx.result.decline(Reason.TERMINAL_NOT_SIGNED_IN)
        else:
            ctx.mac_refused = "does not verify"

    @staticmethod
    def _verify(ctx: TxnContext, covered: bytes, mac: bytes) -> bool:
        assert ctx.terminal is not None and ctx.key_generations is not None
        algorithm = MacAlgorithm.parse(ctx.terminal.mac_algorithm)
        current, pending = ctx.key_generations.current, ctx.key_generations.pending
        if current is not None and verify_pos_mac(algorithm, current.mak, covered, mac):
            ctx.keys = current
            return True
        if pending is not None and verify_pos_mac(algorithm, pending.mak, covered, mac):
            ctx.keys, ctx.promote_keys = pending, True
            return True
        return False

    async def commit(self, ctx: TxnContext) -> None:
        if ctx.mac_refused is not None:
            await self._refuse(ctx, ctx.mac_refused)
            return
        if not ctx.promote_keys:
            return
        assert ctx.terminal is not None and ctx.terminal.pending_at is not None and ctx.keys is not None
        await self.terminals.promote(ctx.tid, ctx.keys, ctx.terminal.pending_at, ctx.batch_no)

    async def _refuse(self, ctx: TxnContext, why: str) -> None:
        """Audit the failed use of the terminal's MAK, then decline A0."""
        if ctx.terminal is not None:
            generations = ctx.key_generations
            keys = (generations.current, generations.pending) if generations is not None else ()
            kcvs = [kcv(k.mak) for k in keys if k is not None]
            algorithm = ctx.terminal.mac_algorithm
            await self.terminals.record_mac_failure(ctx.tid, ctx.mti, ctx.stan, algorithm, kcvs, why)
        ctx.result.decline(Reason.MAC_ERROR)


class CompleteTestSwipe(Step):
    """Needs: an approved void or reversal from a terminal in `testing`. Its test sale is undone, so the
    test swipe is complete: the terminal and its merchant go live."""

    def __init__(self, terminals: Terminals) -> None:
        self.terminals = terminals

    async def prepare(self, ctx: TxnContext) -> None:
        terminal = ctx.terminal
        if terminal is None or TESTING not in (terminal.status, terminal.merchant_status):
            return
        ctx.completes_test_swipe = ctx.kind is not Kind.REVERSAL or ctx.reversed_kind == Kind.SALE

    async def commit(self, ctx: TxnContext) -> None:
        if ctx.completes_test_swipe:
            await self.terminals.complete_test_swipe(ctx.tid)
