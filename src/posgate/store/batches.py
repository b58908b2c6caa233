"""Terminal batches: the host's totals for a batch, POS settlement (0500), batch upload (0320) and the
reconciliation of a terminal's records against the host's. Field 48 layouts are in pos-8583.md."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from posgate.errors import DecodeError, EncodeError
from posgate.store.models import BatchSettlement, BatchUploadRecord, ReconciliationItem, Terminal, Transaction
from posgate.txnset import Side, TxnState, kinds_where

DEBIT_KINDS = kinds_where(lambda row: row.totals is Side.DEBIT)
CREDIT_KINDS = kinds_where(lambda row: row.totals is Side.CREDIT)
# a sale later voided is still in the debit totals (its void is in the credit totals)
COUNTED_STATES = {kind: (TxnState.APPROVED, TxnState.VOIDED) for kind in DEBIT_KINDS}
TOTALS_DIGITS = 31  # debit n12 + count n3 + credit n12 + count n3 + code n1
RECORD_DIGITS = 40  # card organization n2 + STAN n6 + PAN n20 + amount n12
MAX_RECORDS = 8
_AMOUNT_MAX_FEN, _COUNT_MAX = 10**12 - 1, 999


def _first_non_digit(text: str) -> int | None:
    return next((i for i, c in enumerate(text) if not ("0" <= c <= "9")), None)


@dataclass(frozen=True)
class Totals:
    debit_fen: int = 0
    debit_count: int = 0
    credit_fen: int = 0
    credit_count: int = 0

    def field48_part(self, code: str = "0") -> str:
        """n12 + n3 + n12 + n3 + n1 (31 digits); `EncodeError` when a total does not fit its digits.

        >>> Totals(debit_count=1000).field48_part()
        Traceback (most recent call last):
        ...
        posgate.errors.EncodeError: field 48: debit count 1000 does not fit n3 (0 to 999)
        """
        for name, value, digits, limit in (
            ("debit amount", self.debit_fen, 12, _AMOUNT_MAX_FEN),
            ("debit count", self.debit_count, 3, _COUNT_MAX),
            ("credit amount", self.credit_fen, 12, _AMOUNT_MAX_FEN),
            ("credit count", self.credit_count, 3, _COUNT_MAX),
        ):
            if not 0 <= value <= limit:
                raise EncodeError(f"field 48: {name} {value} does not fit n{digits} (0 to {limit})", field=48)
        if not (len(code) == 1 and "0" <= code <= "9"):
            raise EncodeError(f"field 48: settlement code must be one digit, got {code!r}", field=48)
        return (
            f"{self.debit_fen:012d}{self.debit_count:03d}{self.credit_fen:012d}{self.credit_count:03d}{code}"
        )


def parse_totals(part: str) -> Totals:
    """One 31-digit half of a settlement field 48; `DecodeError` (field 48, position in `part`) otherwise.

    >>> parse_totals("000000012345002000000000100001" + "0")
    Totals(debit_fen=12345, debit_count=2, credit_fen=100, credit_count=1)
    >>> parse_totals("00000001234500200000000010000")
    Traceback (most recent call last):
    ...
    posgate.errors.DecodeError: field 48: expected 31 digits of settlement totals, got 29 at byte 29
    """
    bad_at = _first_non_digit(part)
    if bad_at is not None:
        raise DecodeError(f"field 48: settlement totals must be digits at byte {bad_at}", 48, bad_at)
    if len(part) != TOTALS_DIGITS:
        pos = min(len(part), TOTALS_DIGITS)
        bad = f"expected {TOTALS_DIGITS} digits of settlement totals, got {len(part)}"
        raise DecodeError(f"field 48: {bad} at byte {pos}", 48, pos)
    return Totals(int(part[0:12]), int(part[12:15]), int(part[15:27]), int(part[27:30]))


def next_batch(batch_no: str) -> str:
    """000001 → 000002 … 999999 → 000001.

    >>> next_batch("000009"), next_batch("999999")
    ('000010', '000001')
    """
    return f"{int(batch_no) % 999_999 + 1:06d}"


def _counted(session: Session, tid: str, batch_no: str) -> list[Transaction]:
    rows = session.scalars(
        select(Transaction).where(
            Transaction.tid == tid,
            Transaction.batch_no == batch_no,
            Transaction.settlement_id.is_(None),
            Transaction.kind.in_(DEBIT_KINDS + CREDIT_KINDS),
        )
    )
    return [t for t in rows if t.state in COUNTED_STATES.get(t.kind, (TxnState.APPROVED,))]


def host_totals(session: Session, tid: str, batch_no: str) -> Totals:
    debit_fen = debit_count = credit_fen = credit_count = 0
    for txn in _counted(session, tid, batch_no):
        if txn.kind in DEBIT_KINDS:
            debit_fen, debit_count = debit_fen + txn.amount_fen, debit_count + 1
        else:
            credit_fen, credit_count = credit_fen + txn.amount_fen, credit_count + 1
    return Totals(debit_fen, debit_count, credit_fen, credit_count)


@dataclass(frozen=True)
class SettlementOutcome:
    balanced: bool
    host_field48: str
    settlement_id: int


def settle_batch(
    session: Session,
    tid: str,
    mid: str,
    batch_no: str,
    business_date: dt.date,
    terminal_field48: str,
    now: dt.datetime,
) -> SettlementOutcome:
    """Compare the terminal's totals with the host's. Balanced: the batch closes and the terminal's batch
    number advances. Unbalanced: it stays open for the batch upload."""
    mine = host_totals(session, tid, batch_no)
    theirs = parse_totals(terminal_field48[:31])
    foreign = parse_totals(terminal_field48[31:62]) if len(terminal_field48) >= 62 else Totals()
    balanced = mine == theirs and foreign == Totals()
    code = "1" if balanced else "2"
    host48 = mine.field48_part(code) + Totals().field48_part(code)
    row = session.scalar(
        select(BatchSettlement).where(
            BatchSettlement.tid == tid,
            BatchSettlement.batch_no == batch_no,
            BatchSettlement.business_date == business_date,
        )
    )
    if row is None:
        row = BatchSettlement(tid=tid, mid=mid, batch_no=batch_no, business_date=business_date)
        session.add(row)
    row.terminal_totals, row.host_totals = terminal_field48[:62], host48
    row.result = "balanced" if balanced else "unbalanced"
    session.flush()
    if balanced:
        _close(session, row, now)
    return SettlementOutcome(balanced, host48, row.id)


def _close(session: Session, settlement: BatchSettlement, now: dt.datetime) -> None:
    session.execute(
        update(Transaction)
        .where(
            Transaction.tid == settlement.tid,
            Transaction.batch_no == settlement.batch_no,
            Transaction.settlement_id.is_(None),
        )
        .values(settlement_id=settlement.id)
        .execution_options(synchronize_session=False)
    )
    settlement.completed_at = now
    session.execute(
        update(Terminal)
        .where(Terminal.tid == settlement.tid)
        .values(batch_no=next_batch(settlement.batch_no))
        .execution_options(synchronize_session=False)
    )


def open_settlement(session: Session, tid: str, batch_no: str) -> BatchSettlement | None:
    """The unbalanced settlement of this batch awaiting its batch upload."""
    return session.scalar(
        select(BatchSettlement)
        .where(
            BatchSettlement.tid == tid,
            BatchSettlement.batch_no == batch_no,
            BatchSettlement.result == "unbalanced",
        )
        .order_by(BatchSettlement.id.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class UploadRecord:
    card_org: str
    stan: str
    pan: str
    amount_fen: int


def parse_upload_records(field48: str) -> list[UploadRecord]:
    """n2 count + count × (card organization n2, STAN n6, PAN n20 right-aligned, amount n12), 1 to 8
    records; `DecodeError` (field 48, byte position) otherwise.

    >>> parse_upload_records("01" + "00" + "000123" + "00006229990000000012" + "000000001000")[0].amount_fen
    1000
    >>> parse_upload_records("02" + "0" * 40)
    Traceback (most recent call last):
    ...
    posgate.errors.DecodeError: field 48: 2 records need 82 digits, got 42 at byte 42
    """
    bad_at = _first_non_digit(field48)
    if bad_at is not None:
        raise DecodeError(f"field 48: batch upload records must be digits at byte {bad_at}", 48, bad_at)
    if len(field48) < 2:
        raise DecodeError(f"field 48: expected the n2 record count, got {len(field48)} digits", 48, 0)
    count = int(field48[:2])
    if not 1 <= count <= MAX_RECORDS:
        raise DecodeError(f"field 48: record count must be 1 to {MAX_RECORDS}, got {count} at byte 0", 48, 0)
    if len(field48) != 2 + RECORD_DIGITS * count:
        need = 2 + RECORD_DIGITS * count
        pos = min(len(field48), need)
        bad = f"{count} records need {need} digits, got {len(field48)}"
        raise DecodeError(f"field 48: {bad} at byte {pos}", 48, pos)
    records = []
    for i in range(count):
        chunk = field48[2 + RECORD_DIGITS * i : 2 + RECORD_DIGITS * (i + 1)]
        records.append(UploadRecord(chunk[0:2], chunk[2:8], chunk[8:28].lstrip("0"), int(chunk[28:40])))
    return records


def store_upload(
    session: Session,
    settlement_id: int,
    records: list[UploadRecord],
    record_type: str,
    protect: Callable[[str], tuple[str, str]],
) -> None:
    """Keep the uploaded records; `protect(pan)` gives (keyed hash, masked PAN) — no clear PAN stored."""
    for record in records:
        pan_hash, masked = protect(record.pan) if record.pan else (None, None)
        session.add(
            BatchUploadRecord(
                settlement_id=settlement_id,
                card_org=record.card_org,
                stan=record.stan,
                pan_hash=pan_hash,
                pan_masked=masked,
                amount_fen=record.amount_fen,
                record_type=record_type,
            )
        )


def reconcile_batch(session: Session, settlement_id: int, now: dt.datetime) -> int:
    """Batch end: compare the uploaded records with the host's, store each difference, close the batch.
    Returns the number of differences."""
    settlement = session.get(BatchSettlement, settlement_id)
    assert settlement is not None
    uploaded = {
        r.stan: r
        for r in session.scalars(
            select(BatchUploadRecord).where(BatchUploadRecord.settlement_id == settlement_id)
        )
    }
    ours = {t.stan: t for t in _counted(session, settlement.tid, settlement.batch_no)}
    items = []
    for stan, record in uploaded.items():
        txn = ours.get(stan)
        if txn is None:
            items.append(
                ReconciliationItem(kind="missing_on_host", stan=stan, terminal_amount_fen=record.amount_fen)
            )
        elif txn.amount_fen != record.amount_fen:
            items.append(
                ReconciliationItem(
                    kind="amount_differs",
                    stan=stan,
                    rrn=txn.rrn,
                    host_amount_fen=txn.amount_fen,
                    terminal_amount_fen=record.amount_fen,
                )
            )
    for stan, txn in ours.items():
        if stan not in uploaded:
            items.append(
                ReconciliationItem(
                    kind="missing_on_terminal", stan=stan, rrn=txn.rrn, host_amount_fen=txn.amount_fen
                )
            )
    for item in items:
        item.settlement_id = settlement_id
        session.add(item)
    settlement.result, settlement.differences = "reconciled", len(items)
    _close(session, settlement, now)
    return len(items)
