"""Who sent it: IdentifyTerminal, RequireSignIn, VerifyMac."""

from __future__ import annotations

from posgate.host.context import Kind, TxnContext
from posgate.host.steps.base import HostServices, Step
from posgate.iso8583.codec import mac_payload
from posgate.iso8583.reasons import Reason
from posgate.security.pos_mac import verify_cup_ecb_mac
from posgate.security.signin import WorkingKeys
from posgate.store.acquirer import TerminalRecord, complete_test_swipe, load_terminal, terminal_keys

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
    """Needs: field 41 (and 42 when present). Provides: ctx.terminal, ctx.keys (when signed in).
    Declines: 97 unknown terminal, 03 merchant id does not match or merchant/terminal not live."""

    async def prepare(self, ctx: TxnContext) -> None:
        record = self.services.terminals.get(ctx.tid)
        ctx.notes["terminal_cached"] = record is not None
        if record is None:
            record = await self.services.store.run(lambda s: load_terminal(s, ctx.tid))
            if record is None:
                ctx.result.decline(Reason.TERMINAL_NOT_SIGNED_IN)
                return
            self.services.terminals.put(record)
        await self.use(ctx, record)

    async def use(self, ctx: TxnContext, record: TerminalRecord) -> None:
        ctx.terminal = record
        if record.signed_in:
            ctx.keys = await self._working_keys(record.tid, record.signed_in_at)
        wrong_merchant = "42" in ctx.request and ctx.request["42"] != record.mid
        if wrong_merchant or not allowed_in_status(ctx, record.status, record.merchant_status):
            ctx.result.decline(Reason.INVALID_MERCHANT)

    async def _working_keys(self, tid: str, signed_in_at: object) -> WorkingKeys | None:
        cache = self.services.key_cache
        cache_key = (tid, signed_in_at)
        keys = cache.get(cache_key)  # type: ignore[arg-type]
        if keys is None:
            opened = await self.services.store.run(lambda s: terminal_keys(s, self.services.vault, tid))
            if "PIK" not in opened or "MAK" not in opened:
                return None
            keys = WorkingKeys(pik=opened["PIK"], mak=opened["MAK"], tdk=opened.get("TDK"))
            for stale in [k for k in cache if k[0] == tid]:
                del cache[stale]
            cache[cache_key] = keys  # type: ignore[index]
        return keys


class RequireSignIn(Step):
    """Needs: ctx.terminal. Declines: 97 when the terminal has not signed in during the current key period;
    sets the header's processing requirement to 3 (sign in again)."""

    async def prepare(self, ctx: TxnContext) -> None:
        if ctx.terminal is None or not ctx.terminal.signed_in or ctx.keys is None:
            ctx.result.processing_requirement = 3
            ctx.result.decline(Reason.TERMINAL_NOT_SIGNED_IN)


class VerifyMac(Step):
    """Needs: ctx.keys, field 64. Declines: A0 when field 64 is missing (where `required`) or does not
    verify with the MAK."""

    def __init__(self, services: HostServices, required: bool = True) -> None:
        super().__init__(services)
        self.required = required

    async def prepare(self, ctx: TxnContext) -> None:
        mac_hex = ctx.request.get("64")
        if mac_hex is None and not self.required:
            return
        if ctx.keys is None or mac_hex is None:
            ctx.result.decline(Reason.MAC_ERROR)
            return
        payload = ctx.frame.payload
        # field 64 is the last field of a primary-bitmap message: the MAC covers all before its 8 bytes
        covered = payload[:-8] if not payload[2] & 0x80 else mac_payload(payload)
        mac = bytes.fromhex(mac_hex)
        if verify_cup_ecb_mac(ctx.keys.mak, covered, mac):
            return
        if ctx.notes.get("terminal_cached"):  # keys may have changed on another node: look again
            record = await self.services.store.run(lambda s: load_terminal(s, ctx.tid))
            if record is not None:
                self.services.terminals.put(record)
                await IdentifyTerminal(self.services).use(ctx, record)
                if ctx.keys is not None and verify_cup_ecb_mac(ctx.keys.mak, covered, mac):
                    return
        ctx.result.decline(Reason.MAC_ERROR)


class CompleteTestSwipe(Step):
    """Needs: an approved void or reversal from a terminal in `testing`. Its test sale is undone, so the
    test swipe is complete: the terminal and its merchant go live."""

    async def prepare(self, ctx: TxnContext) -> None:
        terminal = ctx.terminal
        if terminal is None or TESTING not in (terminal.status, terminal.merchant_status):
            return
        if ctx.kind is Kind.REVERSAL and ctx.notes.get("reversed_kind") != "sale":
            return
        tid = terminal.tid
        await self.services.store.run(lambda s: complete_test_swipe(s, tid))
        self.services.terminals.forget(tid)
