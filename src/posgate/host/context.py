"""Per-message state of one pipeline run: a typed context, the result (declines as data) and the trace."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from posgate.iso8583.framing import PosFrame
from posgate.iso8583.reasons import Reason, pos_code
from posgate.security.signin import KeyGenerations, WorkingKeys
from posgate.txnset import Kind

if TYPE_CHECKING:
    from posgate.host.ports import ReleaseRefund
    from posgate.risk.decision import Decision
    from posgate.risk.facts import Assessment
    from posgate.store.acquirer import TerminalRecord
    from posgate.store.batches import UploadRecord
    from posgate.store.originals import OriginalRecord

Message = dict[str, str]
__all__ = ["CardView", "Kind", "Message", "Result", "Route", "TraceEntry", "TxnContext"]


@dataclass
class Result:
    """The outcome so far. Steps call `decline(reason)`; the first decline wins."""

    reason: Reason | None = None
    processing_requirement: int = 0

    def decline(self, reason: Reason) -> None:
        if self.reason is None or self.reason is Reason.APPROVED:
            self.reason = reason

    def approve(self) -> None:
        if self.reason is None:
            self.reason = Reason.APPROVED

    @property
    def declined(self) -> bool:
        return self.reason is not None and self.reason is not Reason.APPROVED

    @property
    def approved(self) -> bool:
        return self.reason is Reason.APPROVED

    @property
    def code(self) -> str:
        return pos_code(self.reason or Reason.SYSTEM_ERROR)


@dataclass(frozen=True, repr=False)
class CardView:
    """The card as read from the request (clear PAN lives only in memory, only for this message)."""

    pan: str
    masked: str
    expiry: str | None
    service_code: str | None
    track2: str | None

    def __repr__(self) -> str:
        return f"CardView({self.masked})"


@dataclass(frozen=True)
class Route:
    issuer_name: str
    mac_enabled: bool
    card_kind: str = "debit"
    stand_in_max_fen: int | None = None
    stand_in_card_daily_fen: int | None = None


@dataclass
class TraceEntry:
    step: str
    outcome: str
    micros: int


@dataclass
class TxnContext:
    """Everything one pipeline run reads and writes. Created by the server, filled by the steps."""

    frame: PosFrame
    request: Message
    received_at: dt.datetime  # UTC
    local_now: dt.datetime  # the acquirer's local time, for fields 12/13/15
    kind: Kind = Kind.UNSUPPORTED
    terminal: TerminalRecord | None = None
    key_generations: KeyGenerations | None = None  # what the host accepts from this terminal
    keys: WorkingKeys | None = None  # the generation the request's MAC verified under
    card: CardView | None = None
    route: Route | None = None
    original: OriginalRecord | None = None
    pin_block_zpk: bytes | None = None
    txn_id: int | None = None
    rrn: str | None = None
    network_stan: str | None = None
    transmission_dt: str | None = None
    issuer_reply: Message | None = None
    auth_code: str | None = None
    stand_in: bool = False
    balance_field: str | None = None
    replay: Message | None = None  # a duplicate: the first answer to send again
    risk_assessment: Assessment | None = None  # what AssessRisk judged (CountForRisk counts its outcome)
    risk: Decision | None = None  # AssessRisk's decision
    response_extra: dict[str, str] = field(default_factory=dict)
    response: Message | None = None  # the answer's fields (ComposeResponse)
    detail: str | None = None  # why, in words, for the log line (a format error, a settlement's outcome)
    terminal_cached: bool = False  # ctx.terminal came from this node's cache (VerifyMac may look again)
    refund_reserved: bool = False  # ReserveRefund took this refund's amount from its original
    issuer_unanswered: bool = False  # sent, no answer: the issuer may have acted on it (RecordOutcome)
    issuer_reply_unverified: bool = False  # answered, but the reply's MAC failed: it may have approved
    compensations: list[ReleaseRefund] = field(default_factory=list)  # applied unless it ends approved
    promote_keys: bool = False  # the MAC verified under the pending keys: VerifyMac promotes them
    mac_refused: str | None = None  # why the MAC was refused (VerifyMac audits it, then declines A0)
    completes_test_swipe: bool = False  # CompleteTestSwipe takes the terminal live
    network_request: Message | None = None  # what AskIssuer sends
    upload_records: list[UploadRecord] = field(default_factory=list)  # a 0320's records (UploadBatch)
    reversed_original_id: int | None = None  # the original a 0400 found (ReverseOriginal)
    reversed_kind: str | None = None  # … and its kind, when this 0400 reversed it
    result: Result = field(default_factory=Result)
    trace: list[TraceEntry] = field(default_factory=list)

    @property
    def tid(self) -> str:
        return self.request.get("41", "")

    @property
    def stan(self) -> str:
        return self.request.get("11", "")

    @property
    def mti(self) -> str:
        return self.request.get("t", "")

    @property
    def batch_no(self) -> str:
        return self.request.get("60", "00000000")[2:8]

    @property
    def business_date(self) -> dt.date:
        return self.local_now.date()

    def trace_text(self) -> str:
        return " ".join(f"{t.step}:{t.outcome}:{t.micros}us" for t in self.trace)
