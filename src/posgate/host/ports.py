"""The narrow ports host steps depend on, as protocols: the transactions repository, the terminal
directory (records, keys, sign-in), the batches, the issuers (routing, zone PIN keys, the network request),
the store-and-forward queue, the network STAN counters, the card vault and the inline risk engine.
SQLAlchemy and asyncio implementations live in `posgate.host.sql_ports` and `posgate.host.services`
(built by `bootstrap`); tests use in-memory fakes (`tests/unit/host/fakes.py`). Nothing here does I/O:
the host core imports no database or network library.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from posgate.host.context import Message, Route

if TYPE_CHECKING:
    from posgate.risk.aggregates import Outcome as RiskOutcome
    from posgate.risk.decision import Decision
    from posgate.risk.facts import Assessment
    from posgate.security.at_rest import ProtectedPan
    from posgate.security.signin import KeyGenerations, WorkingKeys
    from posgate.store.acquirer import Existing, Finished, Recorded, TerminalRecord
    from posgate.store.batches import SettlementOutcome, UploadRecord
    from posgate.store.originals import OriginalRecord, TerminalReversal
    from posgate.store.terminal_keys import StoredKeys


@dataclass(frozen=True)
class ReleaseRefund:
    """ReserveRefund's compensation: give `amount_fen` back to the original's refundable amount. Applied by
    `Transactions.finish` in the same unit of work as an outcome that is not an approval (declined, or an
    approval overruled by a reversal), unless a host node that resolved the transaction in doubt did it."""

    original_id: int
    amount_fen: int


@dataclass(frozen=True)
class Outcome:
    """What RecordOutcome writes: the state, code and answer, the effect on the original (from → to) when
    approved, and the compensations the steps registered for an outcome that is not an approval."""

    state: str
    response_code: str
    auth_code: str | None
    response: Message
    trace: str
    stand_in: bool = False
    original_id: int | None = None
    original_effect: tuple[str, str] | None = None
    compensations: tuple[ReleaseRefund, ...] = ()
    reverse_at_issuer: str | None = None  # a 0420 to queue with the outcome, with this reason code (39)
    now: dt.datetime | None = None  # the host's time of the outcome (naive UTC)


class Transactions(Protocol):
    """The transactions repository: rows, originals, the issuer-side consequences queued with them."""

    async def record(self, values: dict[str, object]) -> Recorded | None:
        """Insert a pending row; None when its unique key (a duplicate) already exists."""

    async def duplicate_of(
        self, tid: str, batch_no: str, stan: str, mti: str, processing_code: str, day: dt.date
    ) -> Existing | None: ...

    async def original_by_rrn(self, rrn: str) -> OriginalRecord | None: ...

    async def reserve_refund(self, original_id: int, amount_fen: int, refund_id: int | None) -> bool: ...

    async def finish(self, txn_id: int, outcome: Outcome) -> Finished: ...

    async def store_answer(self, txn_id: int, answer: Message) -> None: ...

    async def time_out(self, txn_id: int, now: dt.datetime) -> None: ...

    async def reverse(self, txn_id: int, reason_code: str, now: dt.datetime) -> None: ...

    async def queue_advice(self, txn_id: int, issuer: str, now: dt.datetime, auth_code: str) -> bool: ...

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
        """Approve in stand-in (and queue its advice) unless the card's stand-in total today would pass
        `card_daily_fen`."""

    async def reverse_for_terminal(
        self, tid: str, stan: str, day: dt.date, processing_code: str, reason_code: str, now: dt.datetime
    ) -> TerminalReversal: ...

    async def reversed_before_recorded(
        self, txn_id: int, tid: str, stan: str, day: dt.date, processing_code: str, now: dt.datetime
    ) -> bool:
        """Whether the terminal's 0400 of this request was handled before it was recorded (then it is marked
        reversed and its 0420 queued)."""


class Terminals(Protocol):
    """The terminal directory: records (with this node's cache), keys, sign-in bookkeeping."""

    def cached(self, tid: str) -> TerminalRecord | None: ...

    async def load(self, tid: str) -> TerminalRecord | None:
        """A fresh record (and it replaces the cached one)."""

    async def key_generations(self, record: TerminalRecord) -> tuple[TerminalRecord, KeyGenerations]:
        """The opened key generations, from this node's cache or read with a fresh record in one moment
        (a promotion cannot fall between the record and its keys); that record is returned."""

    async def promote(self, tid: str, keys: WorkingKeys, seen: dt.datetime, batch_no: str) -> bool: ...

    async def count_sign_in(self, tid: str, now: dt.datetime, window_s: float, limit: int) -> bool: ...

    async def for_sign_in(self, tid: str) -> tuple[TerminalRecord | None, StoredKeys]: ...

    async def offer(
        self, tid: str, keys: WorkingKeys, period: int, now: dt.datetime, seen: dt.datetime | None
    ) -> bool: ...

    async def complete_test_swipe(self, tid: str) -> None: ...

    async def record_mac_failure(
        self, tid: str, mti: str, stan: str, algorithm: str, mak_kcvs: list[str], why: str
    ) -> None:
        """Audit a refused MAC (`mac_verify_failed`, with the KCVs of the MAKs tried — never a key)."""


class Batches(Protocol):
    """End of day: the 0500 totals and the 0320 upload."""

    async def settle(
        self, tid: str, mid: str, batch_no: str, day: dt.date, field48: str, now: dt.datetime
    ) -> SettlementOutcome:
        """Raises `EncodeError` when the host's totals do not fit field 48 (nothing written)."""

    def parse_upload(self, field48: str) -> list[UploadRecord]:
        """Raises `DecodeError` for a malformed field 48."""

    async def upload(
        self, tid: str, batch_no: str, code: str, records: list[UploadRecord], now: dt.datetime
    ) -> int | None:
        """None: no unbalanced settlement awaits an upload; else the differences found (batch end) or 0."""


class Issuers(Protocol):
    """Routing by BIN, each issuer's zone PIN key, and the network request over its link."""

    def route(self, pan: str) -> Route | None: ...

    def zpk(self, issuer: str) -> bytes: ...

    async def request(self, issuer: str, msg: Message, timeout_s: float) -> Message:
        """Raises `IssuerUnavailable` (nothing sent), `IssuerTimeout`, `IssuerReplyUnverified`."""


class Forwarder(Protocol):
    """The store-and-forward queue of reversals and advices."""

    def kick(self) -> None: ...

    async def deliver_for(self, transaction_id: int, timeout_s: float) -> bool:
        """Try now to deliver the queued reversal of that transaction; True when the issuer answered
        within `timeout_s` (else it stays queued)."""


class Risk(Protocol):
    """The inline risk engine: a decision before the issuer is asked, and each finished request counted."""

    counting: bool  # finished requests are added to the aggregates

    async def assess(self, assessment: Assessment, *, txn_id: int | None = None) -> Decision: ...

    def outcome(self, assessment: Assessment, approved: bool, response_code: str) -> RiskOutcome: ...

    async def record(self, outcome: RiskOutcome) -> None: ...

    async def raise_alerts(
        self,
        decision: Decision,
        assessment: Assessment,
        txn_id: int | None,
        pan_masked: str | None,
        response_code: str | None,
    ) -> list[int]: ...


class Stans(Protocol):
    async def next(self, issuer: str) -> str: ...


class Cards(Protocol):
    """The card vault: a keyed hash to compare PANs, and a PAN sealed for storage."""

    def pan_hash(self, pan: str) -> str: ...

    def protect_pan(self, pan: str) -> ProtectedPan: ...


@dataclass(frozen=True)
class Policy:
    """The settings steps read."""

    acquirer_id: str
    max_amount_fen: int
    issuer_timeout_s: float
    sign_in_window_s: float
    sign_in_limit: int


@dataclass
class HostPorts:
    """What the pipelines are built with: each step takes the few ports it needs."""

    policy: Policy
    transactions: Transactions
    terminals: Terminals
    batches: Batches
    issuers: Issuers
    forwarder: Forwarder
    stans: Stans
    cards: Cards
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    risk: Risk | None = None  # None: no inline risk rules (settings.risk_rules = "off")
