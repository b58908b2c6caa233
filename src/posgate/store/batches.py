"""Terminal batches: the host's totals for a batch, POS settlement (0500), batch upload (0320) and the
reconciliation of a terminal's records against the host's. Field 48 layouts are in pos-8583.md."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from posgate.store.models import (
    BatchSettlement,
    BatchUploadRecord,
    ReconciliationItem,
    Terminal,
    Transaction,
)

DEBIT_KINDS = ("sale", "completion")
CREDIT_KINDS = ("void", "completion_void", "refund")
# a sale later voided is still in the debit totals (its void is in the credit totals)
COUNTED_STATES = {"sale": ("approved", "voided"), "completion": ("approved", "voided")}


@dataclass(frozen=True)
class Totals:
    debit_fen: int = 0
    debit_count: int = 0
    credit_fen: int = 0
    credit_count: int = 0

    def field48_part(self, code: str = "0") -> str:
        """n12 + n3 + n12 + n3 + n1 (31 digits)."""
        return (
            f"{self.debit_fen:012d}{self.debit_count:03d}{self.credit_fen:012d}{self.credit_count:03d}{code}"
        )


def parse_totals(part: str) -> Totals:
    """One 31-digit half of a settlement field 48.

    >>> parse_totals("000000012345002000000000100001" + "0")
    Totals(debit_fen=12345, debit_count=2, credit_fen=100, credit_count=1)
    """
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
    return [t for t in rows if t.state in COUNTED_STATES.get(t.kind, ("approved",))]


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
    """n2 count + count × (card organization n2, STAN n6, PAN n20 right-aligned, amount n12).

    >>> parse_upload_records("01" + "00" + "000123" + "00006229990000000012" + "000000001000")[0].amount_fen
    1000
    """
    count = int(field48[:2])
    if not 1 <= count <= 8 or len(field48) != 2 + 40 * count:
        raise ValueError(f"field 48: {count} records need {2 + 40 * count} digits, got {len(field48)}")
    records = []
    for i in range(count):
        chunk = field48[2 + 40 * i : 2 + 40 * (i + 1)]
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
