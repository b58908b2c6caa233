"""In-doubt recovery: every host node looks, at start-up and then every `recovery_interval_s`, for
transactions a host left `pending` longer than `in_doubt_after_s` (it died while handling them — another
node, or this one before a restart) and resolves them through `store.in_doubt`: a conditional UPDATE
claims each one, so exactly one node acts; the 0420 reversals it queues go out through store-and-forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable

from posgate.host.saf import SafForwarder
from posgate.store.in_doubt import InDoubt, Resolved, find_in_doubt, resolve_in_doubt
from posgate.store.runtime import Store

log = logging.getLogger("posgate.host.recovery")

BATCH = 100


class InDoubtRecovery:
    """The timer and the log lines; the decisions are `store.in_doubt`'s."""

    def __init__(
        self,
        store: Store,
        saf: SafForwarder,
        in_doubt_after_s: float,
        interval_s: float,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store, self.saf, self.clock = store, saf, clock
        self.in_doubt_after = dt.timedelta(seconds=in_doubt_after_s)
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="in-doubt-recovery")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def recover_once(self, in_doubt_after_s: float | None = None) -> list[Resolved]:
        """One pass: resolve every transaction pending for longer than `in_doubt_after_s` (default: the
        setting); return what this node resolved."""
        now = self.clock().astimezone(dt.UTC).replace(tzinfo=None)
        age = self.in_doubt_after if in_doubt_after_s is None else dt.timedelta(seconds=in_doubt_after_s)
        cutoff = now - age
        resolved: list[Resolved] = []
        while True:
            batch = await self.store.run(lambda s: find_in_doubt(s, cutoff, BATCH))
            for candidate in batch:
                outcome = await self._resolve(candidate, cutoff, now)
                if outcome is not None:
                    resolved.append(outcome)
            if len(batch) < BATCH:
                break
        if any(r.reversal_queued for r in resolved):
            self.saf.kick()
        return resolved

    async def _resolve(self, candidate: InDoubt, cutoff: dt.datetime, now: dt.datetime) -> Resolved | None:
        outcome = await self.store.run(lambda s: resolve_in_doubt(s, candidate, cutoff, now))
        if outcome is not None:
            log.warning(
                "%s RRN %s was left in doubt by a host that stopped: now %s (%s)%s",
                outcome.kind,
                outcome.rrn,
                outcome.state,
                outcome.response_code,
                ", reversal queued" if outcome.reversal_queued else "",
            )
        return outcome

    async def _run(self) -> None:
        while True:
            try:
                await self.recover_once()
            except Exception:  # the next pass tries again
                log.exception("in-doubt recovery pass failed")
            await asyncio.sleep(self.interval_s)
