"""Who sent it: IdentifyTerminal, RequireSignIn, VerifyMac (with the terminal's MAC algorithm, under the keys
in use or those issued at its last sign-in), CompleteTestSwipe."""

from __future__ import annotations

import datetime as dt

from posgate.host.context import Kind, TxnContext
from posgate.host.steps.base import HostServices, Step
from posgate.iso8583.codec import split_pos_mac
from posgate.iso8583.reasons import Reason
from posgate.security.keys import kcv
from posgate.security.pos_mac import MacAlgorithm, verify_pos_mac
from posgate.security.signin import KeyGenerations, WorkingKeys
from posgate.store.acquirer import TerminalRecord, complete_test_swipe, load_terminal
from posgate.store.terminal_keys import load_terminal_with_keys, promote_pending_keys, record_mac_failure

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
    Declines: 97 unknown terminal, 03 merchant id does not match or merchant/terminal not live."""

    async def prepare(self, ctx: TxnContext) -> None:
        record = self.services.terminals.get(ctx.tid)
        ctx.terminal_cached = record is not None
        if record is None:
            record = await self.services.store.run(lambda s: load_terminal(s, ctx.tid))
            if record is None:
                ctx.result.decline(Reason.UNKNOWN_TERMINAL)
                return
            self.services.terminals.put(record)
        await self.use(ctx, record)

    async def use(self, ctx: TxnContext, record: TerminalRecord) -> None:
        ctx.key_generations = None
        if record.signed_in:
            record, ctx.key_generations = await self._key_generations(record)
        ctx.terminal = record
        wrong_merchant = "42" in ctx.request and ctx.request["42"] != record.mid
        if wrong_merchant or not allowed_in_status(ctx, record.status, record.merchant_status):
            ctx.result.decline(Reason.INVALID_MERCHANT)

    async def _key_generations(self, record: TerminalRecord) -> tuple[TerminalRecord, KeyGenerations]:
        """The opened key generations of the terminal, from this node's cache or else read from the store
        together with a fresh record (`load_terminal_with_keys`: one moment, so a promotion by a pipelined
        request or another node cannot fall between the record and its keys); that record is returned."""
        cache = self.services.key_cache
        generations = cache.get(_cache_key(record))
        if generations is not None:
            return record, generations
        services = self.services
        fresh, stored = await services.store.run(
            lambda s: load_terminal_with_keys(s, services.vault, record.tid, "verify MACs, translate PINs")
        )
        if fresh is None:  # deleted meanwhile
            return record, KeyGenerations(current=None, pending=None)
        generations = KeyGenerations(
            current=_working(stored.current) if fresh.current_keys_valid else None,
            pending=_working(stored.pending) if fresh.pending_keys_valid else None,
        )
        forget_keys(services, fresh.tid)
        cache[_cache_key(fresh)] = generations
        if fresh != record:
            services.terminals.put(fresh)
        return fresh, generations


def _cache_key(record: TerminalRecord) -> tuple[str, dt.datetime | None, dt.datetime | None, int]:
    return (record.tid, record.signed_in_at, record.pending_at, record.key_period)


def _working(keys: dict[str, bytes]) -> WorkingKeys | None:
    if "PIK" not in keys or "MAK" not in keys:
        return None
    return WorkingKeys(pik=keys["PIK"], mak=keys["MAK"], tdk=keys.get("TDK"))


def forget_keys(services: HostServices, tid: str) -> None:
    """Drop this node's cached keys of `tid` (after a change to its key generations)."""
    for stale in [k for k in services.key_cache if k[0] == tid]:
        del services.key_cache[stale]


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
    generation the MAC verified under. A MAC under the keys issued at the last sign-in promotes them: from
    then on only they are accepted (docs/security.md, "Sign-in").
    Declines: A0 when field 64 is missing or verifies under neither generation (audited as
    `mac_verify_failed`: the request stores no transaction); but 97 (processing
    requirement 3) when it does not verify and the terminal has no keys in use of this key period though it
    had keys in an earlier one: `posgate keys rotate` ended them and someone's sign-in since left new keys
    pending, so the terminal must sign in again to receive them."""

    async def prepare(self, ctx: TxnContext) -> None:
        parts = split_pos_mac(ctx.request, ctx.frame.payload)
        if not _has_keys(ctx) or parts is None:
            await self._refuse(ctx, "no working keys" if parts is not None else "absent")
            return
        covered, mac = parts
        if await self._verify(ctx, covered, mac):
            return
        if ctx.terminal_cached:  # keys may have changed on another node: look again
            record = await self.services.store.run(lambda s: load_terminal(s, ctx.tid))
            if record is not None:
                self.services.terminals.put(record)
                await IdentifyTerminal(self.services).use(ctx, record)
                if _has_keys(ctx) and await self._verify(ctx, covered, mac):
                    return
        if ctx.terminal is not None and ctx.terminal.had_keys_of_an_earlier_period:
            ctx.result.processing_requirement = 3
            ctx.result.decline(Reason.TERMINAL_NOT_SIGNED_IN)
        else:
            await self._refuse(ctx, "does not verify")

    async def _refuse(self, ctx: TxnContext, why: str) -> None:
        """Decline A0, and audit the failed use of the terminal's MAK (`record_mac_failure`)."""
        ctx.result.decline(Reason.MAC_ERROR)
        if ctx.terminal is None:
            return
        generations = ctx.key_generations
        keys = (generations.current, generations.pending) if generations is not None else ()
        kcvs = [kcv(k.mak) for k in keys if k is not None]
        tid, mti, stan, algorithm = ctx.tid, ctx.mti, ctx.stan, ctx.terminal.mac_algorithm
        await self.services.store.run(lambda s: record_mac_failure(s, tid, mti, stan, algorithm, kcvs, why))

    async def _verify(self, ctx: TxnContext, covered: bytes, mac: bytes) -> bool:
        assert ctx.terminal is not None and ctx.key_generations is not None
        algorithm = MacAlgorithm.parse(ctx.terminal.mac_algorithm)
        current, pending = ctx.key_generations.current, ctx.key_generations.pending
        if current is not None and verify_pos_mac(algorithm, current.mak, covered, mac):
            ctx.keys = current
            return True
        if pending is not None and verify_pos_mac(algorithm, pending.mak, covered, mac):
            ctx.keys = pending
            await self._promote(ctx, pending)
            return True
        return False

    async def _promote(self, ctx: TxnContext, keys: WorkingKeys) -> None:
        assert ctx.terminal is not None and ctx.terminal.pending_at is not None
        services, tid, seen, batch = self.services, ctx.tid, ctx.terminal.pending_at, ctx.batch_no
        clear = {"PIK": keys.pik, "MAK": keys.mak} | ({"TDK": keys.tdk} if keys.tdk is not None else {})
        stored = {purpose: (key, kcv(key)) for purpose, key in clear.items()}
        await services.store.run(lambda s: promote_pending_keys(s, services.vault, tid, stored, seen, batch))
        services.terminals.forget(tid)
        forget_keys(services, tid)


class CompleteTestSwipe(Step):
    """Needs: an approved void or reversal from a terminal in `testing`. Its test sale is undone, so the
    test swipe is complete: the terminal and its merchant go live."""

    async def prepare(self, ctx: TxnContext) -> None:
        terminal = ctx.terminal
        if terminal is None or TESTING not in (terminal.status, terminal.merchant_status):
            return
        if ctx.kind is Kind.REVERSAL and ctx.reversed_kind != Kind.SALE:
            return
        tid = terminal.tid
        await self.services.store.run(lambda s: complete_test_swipe(s, tid))
        self.services.terminals.forget(tid)
