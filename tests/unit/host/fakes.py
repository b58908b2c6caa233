"""In-memory implementations of the host's ports (`posgate.host.ports`): no socket, no database. Each
records what it was asked to do, so a test checks the decision and the acts it led to."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from posgate.host.context import Message, Route, TxnContext
from posgate.host.ports import HostPorts, Outcome, Policy
from posgate.iso8583.framing import PosFrame
from posgate.security.at_rest import ProtectedPan
from posgate.security.signin import KeyGenerations, WorkingKeys
from posgate.store.acquirer import Existing, Finished, Recorded, TerminalRecord
from posgate.store.originals import OriginalRecord, TerminalReversal

NOW = dt.datetime(2026, 12, 3, 2, 30, tzinfo=dt.UTC)
PAN = "6229990000000012"  # Luhn-valid, BIN 622999
ZPK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
MAK = bytes.fromhex("0723C80DB5F4CD3D0723C80DB5F4CD3D")


def _key(row: dict[str, object]) -> tuple[object, ...]:
    """The unique key of a transaction row (TID, batch, STAN, MTI, processing code, business date)."""
    return tuple(row[k] for k in ("tid", "batch_no", "stan", "mti", "processing_code", "business_date"))


@dataclass
class FakeTransactions:
    rows: dict[int, dict[str, object]] = field(default_factory=dict)
    originals: dict[str, OriginalRecord] = field(default_factory=dict)
    refundable: dict[int, int] = field(default_factory=dict)
    finished: dict[int, Outcome] = field(default_factory=dict)
    # txn id → the state another request (a reversal, a recovery) gave it meanwhile
    settled_by_others: dict[int, str] = field(default_factory=dict)
    acts: list[tuple[Any, ...]] = field(default_factory=list)

    async def record(self, values: dict[str, object]) -> Recorded | None:
        if any(_key(row) == _key(values) for row in self.rows.values()):
            return None
        txn_id = len(self.rows) + 100
        self.rows[txn_id] = values
        return Recorded(txn_id, f"{txn_id:012d}", str(values.get("network_stan") or ""))

    async def duplicate_of(self, *key: object) -> Existing | None:
        for txn_id, row in self.rows.items():
            if _key(row) == key:
                outcome = self.finished.get(txn_id)
                return Existing(txn_id, str(row["state"]), outcome.response if outcome else None)
        return None

    async def original_by_rrn(self, rrn: str) -> OriginalRecord | None:
        return self.originals.get(rrn)

    async def reserve_refund(self, original_id: int, amount_fen: int, refund_id: int | None) -> bool:
        if self.refundable.get(original_id, 0) < amount_fen:
            return False
        self.refundable[original_id] -= amount_fen
        return True

    async def finish(self, txn_id: int, outcome: Outcome) -> Finished:
        self.finished[txn_id] = outcome
        state = self.settled_by_others.get(txn_id, outcome.state)
        if outcome.state != "approved" or state != "approved":
            for undo in outcome.compensations:
                self.refundable[undo.original_id] = self.refundable.get(undo.original_id, 0) + undo.amount_fen
        return Finished(applied=txn_id not in self.settled_by_others, state=state)

    async def store_answer(self, txn_id: int, answer: Message) -> None:
        self.acts.append(("store_answer", txn_id, answer))

    async def time_out(self, txn_id: int, now: dt.datetime) -> None:
        self.acts.append(("time_out", txn_id))

    async def reverse(self, txn_id: int, reason_code: str, now: dt.datetime) -> None:
        self.acts.append(("reverse", txn_id, reason_code))

    async def queue_advice(self, txn_id: int, issuer: str, now: dt.datetime, auth_code: str) -> bool:
        self.acts.append(("advice", txn_id))
        return True

    async def stand_in(self, txn_id: int, *args: object) -> bool:
        self.acts.append(("stand_in", txn_id))
        return True

    async def reversed_before_recorded(self, txn_id: int, *args: object) -> bool:
        return False

    async def reverse_for_terminal(self, *args: object) -> TerminalReversal:
        self.acts.append(("reverse_for_terminal", *args))
        return TerminalReversal()


def terminal_record(**overrides: Any) -> TerminalRecord:
    values: dict[str, Any] = {
        "id": 1, "tid": "10000001", "mid": "898440153110001", "merchant_id": 1, "merchant_name": "Demo",
        "status": "live", "merchant_status": "live", "batch_no": "000001", "signed_in_period": 1,
        "signed_in_at": NOW.replace(tzinfo=None), "mac_algorithm": "cup_ecb", "pending_period": None,
        "pending_at": None, "key_period": 1,
    }  # fmt: skip
    return TerminalRecord(**(values | overrides))


@dataclass
class FakeTerminals:
    records: dict[str, TerminalRecord] = field(default_factory=lambda: {"10000001": terminal_record()})
    keys: KeyGenerations = field(
        default_factory=lambda: KeyGenerations(current=WorkingKeys(pik=ZPK, mak=MAK), pending=None)
    )
    acts: list[tuple[Any, ...]] = field(default_factory=list)

    def cached(self, tid: str) -> TerminalRecord | None:
        return None

    async def load(self, tid: str) -> TerminalRecord | None:
        return self.records.get(tid)

    async def key_generations(self, record: TerminalRecord) -> tuple[TerminalRecord, KeyGenerations]:
        return record, self.keys

    async def promote(self, tid: str, keys: WorkingKeys, seen: dt.datetime, batch_no: str) -> bool:
        self.acts.append(("promote", tid))
        return True

    async def count_sign_in(self, *args: object) -> bool:
        return True

    async def for_sign_in(self, tid: str) -> tuple[TerminalRecord | None, Any]:
        raise NotImplementedError

    async def offer(self, *args: object) -> bool:
        return True

    async def complete_test_swipe(self, tid: str) -> None:
        self.acts.append(("complete_test_swipe", tid))

    async def record_mac_failure(self, tid: str, mti: str, stan: str, *args: object) -> None:
        self.acts.append(("mac_verify_failed", tid, stan))


@dataclass
class FakeIssuers:
    reply: Message | Exception = field(default_factory=lambda: {"39": "00", "38": "A1B2C3"})
    sent: list[Message] = field(default_factory=list)

    def route(self, pan: str) -> Route | None:
        return Route("Bank A", mac_enabled=False) if pan.startswith("622999") else None

    def zpk(self, issuer: str) -> bytes:
        return ZPK

    async def request(self, issuer: str, msg: Message, timeout_s: float) -> Message:
        self.sent.append(msg)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


@dataclass
class FakeForwarder:
    kicks: int = 0

    def kick(self) -> None:
        self.kicks += 1

    async def deliver_for(self, transaction_id: int, timeout_s: float) -> bool:
        return False


class FakeStans:
    async def next(self, issuer: str) -> str:
        return "000001"


class FakeCards:
    def pan_hash(self, pan: str) -> str:
        return hashlib.sha256(pan.encode()).hexdigest()

    def protect_pan(self, pan: str) -> ProtectedPan:
        return ProtectedPan(
            ciphertext=b"sealed", pan_hash=self.pan_hash(pan), masked=pan[:6] + "******" + pan[-4:]
        )


class FakeBatches:
    async def settle(self, *args: object) -> Any:
        raise NotImplementedError

    def parse_upload(self, field48: str) -> list[Any]:
        return []

    async def upload(self, *args: object) -> int | None:
        return None


def ports(**overrides: Any) -> HostPorts:
    values: dict[str, Any] = {
        "policy": Policy("49990000", 5_000_000, 1.0, 60.0, 10),
        "transactions": FakeTransactions(),
        "terminals": FakeTerminals(),
        "batches": FakeBatches(),
        "issuers": FakeIssuers(),
        "forwarder": FakeForwarder(),
        "stans": FakeStans(),
        "cards": FakeCards(),
        "clock": lambda: NOW,
    }
    return HostPorts(**(values | overrides))


def sale(**fields: str) -> dict[str, str]:
    """A manual-entry sale as the terminal simulator builds it; a field given as "" is left out."""
    request = {
        "t": "0200", "2": PAN, "3": "000000", "4": "000000001234", "11": "000007", "14": "3012", "22": "012",
        "25": "00", "41": "10000001", "42": "898440153110001", "49": "156", "60": "2200000100060",
    }  # fmt: skip
    return {name: value for name, value in (request | fields).items() if value}


def context(request: dict[str, str], payload: bytes = b"") -> TxnContext:
    from posgate.host.pipeline import classify

    return TxnContext(
        frame=PosFrame(b"", b"", payload),
        request=request,
        received_at=NOW,
        local_now=NOW.replace(tzinfo=None) + dt.timedelta(hours=8),
        kind=classify(request),
    )
