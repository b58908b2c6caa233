"""Store-and-forward: deliver queued 0420 reversals and 0220 advices (refunds the issuer did not answer,
stand-in approvals) to issuers until each is answered.

The queue is the `saf_entries` table, so it survives a restart and any host node can drain it; the issuer
applies a reversal at most once, so a reversal sent twice by two nodes does no harm. The forwarder wakes on
`kick()` (a new entry, a link coming up) and every `saf_retry_s`.

An entry is done only when the issuer's answer verifies: a reply whose MAC fails (`A0`) leaves it queued
for the next attempt, like no answer at all.

A 0420 is a message of its own: at its first attempt it takes a STAN from the link (`StanSource`) and the
time as field 7, both written to its entry before it is sent, and every repeat carries the same ones. A 0220
advice carries its transaction's STAN and field 7, the ones of the refund's first 0220.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Protocol

from posgate.errors import IssuerReplyUnverified, IssuerTimeout, IssuerUnavailable
from posgate.host.links import IssuerLink, IssuerLinks
from posgate.host.network_messages import advice_request, reversal_request
from posgate.security.at_rest import CardVault
from posgate.store.acquirer import (
    SafItem,
    due_saf_entries,
    fix_saf_message_id,
    original_network_data,
    saf_delivered,
    saf_failed,
)
from posgate.store.runtime import Store

log = logging.getLogger("posgate.host.saf")

# a reply whose MAC did not verify (`IssuerLink` raises IssuerReplyUnverified), or field 39 of an issuer that
# could not verify ours: nobody knows whether the message was applied, so it is sent again (the issuer
# applies it once)
UNAUTHENTICATED = "A0"


class StanSource(Protocol):
    async def next(self, issuer_name: str) -> str: ...


class SafForwarder:
    def __init__(
        self,
        store: Store,
        vault: CardVault,
        links: IssuerLinks,
        acquirer_id: str,
        retry_s: float,
        timeout_s: float,
        stans: StanSource,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store, self.vault, self.links, self.stans = store, vault, links, stans
        self.acquirer_id, self.retry_s, self.timeout_s, self.clock = acquirer_id, retry_s, timeout_s, clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[int, asyncio.Task[bool]] = {}  # entry id → its attempt under way

    def start(self) -> None:
        for link in self.links.by_name.values():
            link.on_up.append(self.kick)
        self._task = asyncio.create_task(self._run(), name="saf-forwarder")

    async def stop(self) -> None:
        task = self._task
        if task is None:
            return
        # On Python 3.11 `asyncio.wait_for` can swallow a cancellation that lands just as its time-out
        # fires (CPython gh-86296), and the loop then runs on: cancel until the task has really ended.
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def kick(self) -> None:
        self._wake.set()

    async def deliver_for(self, transaction_id: int, timeout_s: float) -> bool:
        """Try now to deliver the queued reversal of one transaction; True when the issuer answered. When
        the forwarder is already sending it (its timer or a kick picked the new entry up first), wait for
        that attempt rather than return at once: the caller answers its terminal only after the issuer
        has, when it can. False, never an exception, when no answer came within `timeout_s` (+ 1 s): the
        entry stays queued and the forwarder carries on (an attempt it started is not cut short)."""
        now = self._now()
        items = await self.store.run(lambda s: due_saf_entries(s, now, limit=1000))
        delivered = False
        for item in items:
            if item.transaction_id == transaction_id:
                try:
                    delivered = await asyncio.wait_for(self._deliver(item, join=True), timeout_s + 1)
                except TimeoutError:
                    log.info(
                        "reversal of RRN %s still on its way after %g s: left to the queue",
                        item.rrn,
                        timeout_s,
                    )
        return delivered

    async def drain_once(self) -> int:
        """Deliver every due entry whose link is up; return how many were delivered."""
        now = self._now()
        items = await self.store.run(lambda s: due_saf_entries(s, now))
        results = await asyncio.gather(*(self._deliver(item) for item in items))
        return sum(results)

    async def _run(self) -> None:
        while True:
            try:
                await self.drain_once()
            except Exception:  # keep forwarding whatever one bad entry does
                log.exception("store-and-forward pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.retry_s)
            self._wake.clear()

    async def _deliver(self, item: SafItem, join: bool = False) -> bool:
        """One attempt at `item`; with `join`, an attempt already under way is waited for instead."""
        running = self._in_flight.get(item.id)
        if running is not None:
            return await asyncio.shield(running) if join else False
        link = self.links.by_name.get(item.issuer_name)
        if link is None or not link.is_up:
            return False
        attempt = asyncio.ensure_future(self._attempt(item, link))
        self._in_flight[item.id] = attempt
        attempt.add_done_callback(lambda _done: self._in_flight.pop(item.id, None))
        return await attempt

    async def _attempt(self, item: SafItem, link: IssuerLink) -> bool:
        pan = self.vault.reveal_pan(item.pan_ciphertext) if item.pan_ciphertext else None
        request = await self._request_for(item, pan)
        try:
            reply = await link.request(request, self.timeout_s)
        except (IssuerUnavailable, IssuerTimeout) as exc:
            await self._retry_later(item, str(exc))
            return False
        except IssuerReplyUnverified:  # its reply failed our MAC check: not the issuer's word
            return await self._unverified(item)
        if reply.get("39") == UNAUTHENTICATED:  # the issuer could not verify ours
            return await self._unverified(item)
        now = self._now()
        await self.store.run(lambda s: saf_delivered(s, item.id, now))
        log.info(
            "%s of RRN %s delivered to %s (answer %s)",
            "reversal" if item.mti == "0420" else "advice",
            item.rrn,
            item.issuer_name,
            reply.get("39"),
        )
        return True

    async def _unverified(self, item: SafItem) -> bool:
        """An answer whose MAC failed at either end: the entry stays queued (False)."""
        log.warning(
            "%s of RRN %s: %s's reply failed MAC verification (A0); it stays queued",
            "reversal" if item.mti == "0420" else "advice",
            item.rrn,
            item.issuer_name,
        )
        await self._retry_later(item, "the reply failed MAC verification (A0)")
        return False

    async def _retry_later(self, item: SafItem, error: str) -> None:
        retry_at = self._now() + dt.timedelta(seconds=self.retry_s)
        await self.store.run(lambda s: saf_failed(s, item.id, error, retry_at))

    async def _request_for(self, item: SafItem, pan: str | None) -> dict[str, str]:
        if item.mti == "0220":
            original_id = item.original_id
            original = (
                await self.store.run(lambda s: original_network_data(s, original_id))
                if original_id is not None
                else None
            )
            return advice_request(
                pan=pan,
                processing_code=item.processing_code,
                condition_code=item.condition_code,
                entry_mode=item.entry_mode,
                amount_fen=item.amount_fen,
                currency=item.currency,
                network_stan=item.network_stan or item.txn_network_stan,
                transmission_dt=item.transmission_dt or item.txn_transmission_dt,
                rrn=item.rrn,
                auth_code=item.auth_code,
                tid=item.tid,
                mid=item.mid,
                acquirer_id=self.acquirer_id,
                original=original,
            )
        if item.network_stan is not None and item.transmission_dt is not None:  # a repeat: the same ones
            stan, sent_at = item.network_stan, item.transmission_dt
        else:  # the first attempt: the 0420's own STAN and field 7
            new_stan = await self.stans.next(item.issuer_name)
            new_dt = self.clock().strftime("%m%d%H%M%S")
            stan, sent_at = await self.store.run(lambda s: fix_saf_message_id(s, item.id, new_stan, new_dt))
        return reversal_request(
            original_mti=item.original_mti,
            pan=pan,
            processing_code=item.processing_code,
            amount_fen=item.amount_fen,
            currency=item.currency,
            network_stan=stan,
            transmission_dt=sent_at,
            original_network_stan=item.txn_network_stan,
            original_transmission_dt=item.txn_transmission_dt,
            rrn=item.rrn,
            tid=item.tid,
            mid=item.mid,
            reason_code=item.reason_code,
            acquirer_id=self.acquirer_id,
        )

    def _now(self) -> dt.datetime:
        return self.clock().replace(tzinfo=None)
