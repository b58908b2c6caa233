"""SQLAlchemy implementations of the host's ports (`posgate.host.ports`): the transactions repository, the
terminal directory (with this node's terminal and key caches) and the batches. Each method is one unit of
work through `Store.run`."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from posgate.cards.pan import mask_pan
from posgate.host.ports import Outcome
from posgate.security.keys import kcv
from posgate.security.signin import KeyGenerations, WorkingKeys
from posgate.store.acquirer import (
    Existing,
    Finished,
    Recorded,
    TerminalRecord,
    complete_test_swipe,
    find_duplicate,
    finish_transaction,
    insert_transaction,
    load_terminal,
    queue_advice,
    queue_reversal_of,
    reverse_transaction,
    store_answer,
    time_out_transaction,
)
from posgate.store.batches import (
    SettlementOutcome,
    UploadRecord,
    open_settlement,
    parse_upload_records,
    reconcile_batch,
    settle_batch,
    store_upload,
)
from posgate.store.originals import (
    OriginalRecord,
    TerminalReversal,
    find_by_rrn,
    move_original,
    release_refund,
    reserve_refund,
    reverse_for_terminal,
    reversed_before_recorded,
    stand_in_total_today,
)
from posgate.store.runtime import Store
from posgate.store.terminal_keys import (
    StoredKeys,
    count_sign_in,
    load_terminal_keys,
    load_terminal_with_keys,
    offer_pending_keys,
    promote_pending_keys,
    record_mac_failure,
)
from posgate.txnset import TxnState

if TYPE_CHECKING:
    from posgate.host.services import TerminalCache
    from posgate.security.at_rest import CardVault

Message = dict[str, str]
BATCH_END = "207"  # 60.3 of the 0320 that ends a batch upload


class SqlTransactions:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(self, values: dict[str, object]) -> Recorded | None:
        try:
            return await self.store.run(lambda s: insert_transaction(s, **values))
        except IntegrityError:
            return None

    async def duplicate_of(
        self, tid: str, batch_no: str, stan: str, mti: str, processing_code: str, day: dt.date
    ) -> Existing | None:
        return await self.store.run(
            lambda s: find_duplicate(s, tid, batch_no, stan, mti, processing_code, day)
        )

    async def original_by_rrn(self, rrn: str) -> OriginalRecord | None:
        return await self.store.run(lambda s: find_by_rrn(s, rrn))

    async def reserve_refund(self, original_id: int, amount_fen: int, refund_id: int | None) -> bool:
        return await self.store.run(lambda s: reserve_refund(s, original_id, amount_fen, refund_id))

    async def finish(self, txn_id: int, outcome: Outcome) -> Finished:
        """The outcome, the effect on the original (only with an outcome that was written) and the
        compensations (only when the transaction does not end approved, and no recovery did them)."""

        def finish(session: Session) -> Finished:
            finished = finish_transaction(
                session,
                txn_id,
                state=outcome.state,
                response_code=outcome.response_code,
                auth_code=outcome.auth_code,
                response=outcome.response,
                trace=outcome.trace,
                stand_in=outcome.stand_in,
                original_id=outcome.original_id,
            )
            if outcome.original_effect is not None and finished.applied and outcome.original_id is not None:
                move_original(session, outcome.original_id, *outcome.original_effect)
            if outcome.reverse_at_issuer is not None and finished.applied:
                assert outcome.now is not None
                queue_reversal_of(session, txn_id, outcome.reverse_at_issuer, outcome.now)
            ends_approved = outcome.state == TxnState.APPROVED and finished.state == TxnState.APPROVED
            if not ends_approved and not finished.recovered:
                for undo in outcome.compensations:
                    release_refund(session, undo.original_id, undo.amount_fen)
            return finished

        return await self.store.run(finish)

    async def store_answer(self, txn_id: int, answer: Message) -> None:
        await self.store.run(lambda s: store_answer(s, txn_id, answer))

    async def time_out(self, txn_id: int, now: dt.datetime) -> None:
        await self.store.run(lambda s: time_out_transaction(s, txn_id, now))

    async def reverse(self, txn_id: int, reason_code: str, now: dt.datetime) -> None:
        await self.store.run(lambda s: reverse_transaction(s, txn_id, reason_code, now))

    async def queue_advice(self, txn_id: int, issuer: str, now: dt.datetime, auth_code: str) -> bool:
        return await self.store.run(lambda s: queue_advice(s, txn_id, issuer, now, auth_code))

    async def stand_in(
        self,
        txn_id: int,
        issuer: str,
        now: dt.datetime,
        auth_code: str,
        pan_hash: str,
        day: dt.date,
        amount_fen: int,
        card_daily_fen: int | None,
    ) -> bool:
        def approve(session: Session) -> bool:
            if card_daily_fen is not None and stand_in_total_today(session, pan_hash, day) + amount_fen > (
                card_daily_fen
            ):
                return False
            return queue_advice(session, txn_id, issuer, now, auth_code)

        return await self.store.run(approve)

    async def reversed_before_recorded(
        self, txn_id: int, tid: str, stan: str, day: dt.date, processing_code: str, now: dt.datetime
    ) -> bool:
        return await self.store.run(
            lambda s: reversed_before_recorded(s, txn_id, tid, stan, day, processing_code, now)
        )

    async def reverse_for_terminal(
        self, tid: str, stan: str, day: dt.date, processing_code: str, reason_code: str, now: dt.datetime
    ) -> TerminalReversal:
        return await self.store.run(
            lambda s: reverse_for_terminal(s, tid, stan, day, processing_code, reason_code, now)
        )


def _cache_key(record: TerminalRecord) -> tuple[str, dt.datetime | None, dt.datetime | None, int]:
    return (record.tid, record.signed_in_at, record.pending_at, record.key_period)


def _working(keys: dict[str, bytes]) -> WorkingKeys | None:
    if "PIK" not in keys or "MAK" not in keys:
        return None
    return WorkingKeys(pik=keys["PIK"], mak=keys["MAK"], tdk=keys.get("TDK"))


def _stored(keys: WorkingKeys) -> dict[str, tuple[bytes, str]]:  # purpose → (key, KCV)
    clear = {"PIK": keys.pik, "MAK": keys.mak} | ({"TDK": keys.tdk} if keys.tdk is not None else {})
    return {purpose: (key, kcv(key)) for purpose, key in clear.items()}


class SqlTerminals:
    """Terminal records and keys, with this node's caches: records for the cache's TTL, opened keys per
    (TID, signed-in-at, pending-at, key period) — any change to the row's key generations makes a new cache
    key. Changes made here invalidate both at once."""

    def __init__(
        self,
        store: Store,
        vault: CardVault,
        cache: TerminalCache,
        key_cache: dict[tuple[str, dt.datetime | None, dt.datetime | None, int], KeyGenerations],
    ) -> None:
        self.store, self.vault, self.cache, self.key_cache = store, vault, cache, key_cache

    def cached(self, tid: str) -> TerminalRecord | None:
        return self.cache.get(tid)

    async def load(self, tid: str) -> TerminalRecord | None:
        record = await self.store.run(lambda s: load_terminal(s, tid))
        if record is not None:
            self.cache.put(record)
        return record

    def _forget(self, tid: str) -> None:
        self.cache.forget(tid)
        for stale in [k for k in self.key_cache if k[0] == tid]:
            del self.key_cache[stale]

    async def key_generations(self, record: TerminalRecord) -> tuple[TerminalRecord, KeyGenerations]:
        """From this node's cache, or else read from the store together with a fresh record
        (`load_terminal_with_keys`: one moment, so a promotion by a pipelined request or another node cannot
        fall between the record and its keys); that record is returned."""
        generations = self.key_cache.get(_cache_key(record))
        if generations is not None:
            return record, generations
        fresh, stored = await self.store.run(
            lambda s: load_terminal_with_keys(s, self.vault, record.tid, "verify MACs, translate PINs")
        )
        if fresh is None:  # deleted meanwhile
            return record, KeyGenerations(current=None, pending=None)
        generations = KeyGenerations(
            current=_working(stored.current) if fresh.current_keys_valid else None,
            pending=_working(stored.pending) if fresh.pending_keys_valid else None,
        )
        for stale in [k for k in self.key_cache if k[0] == fresh.tid]:
            del self.key_cache[stale]
        self.key_cache[_cache_key(fresh)] = generations
        if fresh != record:
            self.cache.put(fresh)
        return fresh, generations

    async def promote(self, tid: str, keys: WorkingKeys, seen: dt.datetime, batch_no: str) -> bool:
        stored = _stored(keys)
        promoted = await self.store.run(
            lambda s: promote_pending_keys(s, self.vault, tid, stored, seen, batch_no)
        )
        self._forget(tid)
        return promoted

    async def count_sign_in(self, tid: str, now: dt.datetime, window_s: float, limit: int) -> bool:
        return await self.store.run(lambda s: count_sign_in(s, tid, now, window_s, limit))

    async def for_sign_in(self, tid: str) -> tuple[TerminalRecord | None, StoredKeys]:
        return await self.store.run(
            lambda s: (load_terminal(s, tid), load_terminal_keys(s, self.vault, tid, "sign-in"))
        )

    async def offer(
        self, tid: str, keys: WorkingKeys, period: int, now: dt.datetime, seen: dt.datetime | None
    ) -> bool:
        working = _stored(keys)
        offered = await self.store.run(
            lambda s: offer_pending_keys(s, self.vault, tid, working, period, now, seen)
        )
        if offered:
            self._forget(tid)
        return offered

    async def complete_test_swipe(self, tid: str) -> None:
        await self.store.run(lambda s: complete_test_swipe(s, tid))
        self.cache.forget(tid)

    async def record_mac_failure(
        self, tid: str, mti: str, stan: str, algorithm: str, mak_kcvs: list[str], why: str
    ) -> None:
        await self.store.run(lambda s: record_mac_failure(s, tid, mti, stan, algorithm, mak_kcvs, why))


class SqlBatches:
    def __init__(self, store: Store, vault: CardVault) -> None:
        self.store, self.vault = store, vault

    async def settle(
        self, tid: str, mid: str, batch_no: str, day: dt.date, field48: str, now: dt.datetime
    ) -> SettlementOutcome:
        return await self.store.run(lambda s: settle_batch(s, tid, mid, batch_no, day, field48, now))

    def parse_upload(self, field48: str) -> list[UploadRecord]:
        return parse_upload_records(field48)

    async def upload(
        self, tid: str, batch_no: str, code: str, records: list[UploadRecord], now: dt.datetime
    ) -> int | None:
        vault = self.vault

        def upload(session: Session) -> int | None:
            settlement = open_settlement(session, tid, batch_no)
            if settlement is None:
                return None
            if code == BATCH_END:
                return reconcile_batch(session, settlement.id, now)
            store_upload(
                session, settlement.id, records, code, lambda pan: (vault.pan_hash(pan), mask_pan(pan))
            )
            return 0

        return await self.store.run(upload)
