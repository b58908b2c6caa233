"""The step contract.

`prepare` decides: it reads what it needs through its ports and may decline, but never writes. `commit`
acts (writes, sends) and may decline when the act is refused (a unique key, a conditional update, the
issuer's answer). `abort` compensates when a later step failed unexpectedly. A step that reserves
something also says how to give it back: `ReserveRefund` registers `ReleaseRefund` on the context, applied
with the outcome when the transaction does not end approved.

Steps are built once with the few ports they need (`host.ports`) and hold no per-message state.
"""

from __future__ import annotations

from posgate.host.context import TxnContext


class Step:
    """One small, stateless piece of a pipeline."""

    @property
    def name(self) -> str:
        return type(self).__name__

    async def prepare(self, ctx: TxnContext) -> None:
        return None

    async def commit(self, ctx: TxnContext) -> None:
        return None

    async def abort(self, ctx: TxnContext) -> None:
        return None
