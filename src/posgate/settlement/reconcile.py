"""Reconciliation: an issuer's clearing file against the host's records, and the terminals' batch totals.

Issuer file (`issuer.clearing_file`) of clearing date D against the host's transactions routed to that
bank whose `created_at` falls in D's window and that the issuer approved and nobody reversed: kinds sale,
void, refund, preauth, preauth_void, completion, completion_void in state approved, voided (a sale a void
cancelled: its approval stands at the issuer, the void is its own credit line), completed or cancelled.
Matching: by RRN first (the host's RRN travels in field 37); a file line whose RRN the window does not
have is looked up by RRN on any date (a transaction on the other side of the cut-off: matched, noted),
then by network STAN + amount among the host's still unmatched records. Outcome per line: matched,
`amount_mismatch` (same transaction, different amounts), `missing_on_host` (the issuer has it, we do
not), `missing_on_issuer` (we have it, the issuer does not). The report and every non-matched line are
stored (`recon_reports`, `recon_lines`).

Memory: the file's lines are held by RRN while the host's records stream past in chunks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.settlement import bankfile
from posgate.settlement.clearing_day import clearing_date, clearing_window
from posgate.settlement.errors import FileFormatError
from posgate.store.base import utcnow
from posgate.store.models import BatchSettlement, ReconciliationItem, Transaction
from posgate.store.models_ledger import ReconLine, ReconReport
from posgate.store.runtime import Store
from posgate.txnset import TxnState

ISSUER_FILE_HEADER = (
    "bank",
    "rrn",
    "stan",
    "transmission_dt",
    "mti",
    "processing_code",
    "amount_fen",
    "auth_code",
    "state",
    "effect",
)
HOST_KINDS = ("sale", "void", "refund", "preauth", "preauth_void", "completion", "completion_void")
HOST_STATES = (TxnState.APPROVED, TxnState.VOIDED, TxnState.COMPLETED, TxnState.CANCELLED)
MATCHED = "matched"
MISSING_ON_HOST = "missing_on_host"
MISSING_ON_ISSUER = "missing_on_issuer"
AMOUNT_MISMATCH = "amount_mismatch"


@dataclass(frozen=True)
class IssuerLine:
    line_no: int
    rrn: str | None
    stan: str
    amount_fen: int
    mti: str
    processing_code: str


@dataclass(frozen=True)
class HostRecord:
    transaction_id: int
    rrn: str | None
    network_stan: str | None
    amount_fen: int
    kind: str
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class Difference:
    status: str
    rrn: str | None
    stan: str | None
    issuer_amount_fen: int | None
    host_amount_fen: int | None
    transaction_id: int | None = None
    detail: str | None = None


@dataclass
class Matcher:
    """The pure matching: feed the file's lines, then the host's records (any number of passes), then
    `finish`.

    >>> m = Matcher()
    >>> for line in (IssuerLine(2, "000000000001", "000001", 500, "0200", "000000"),
    ...              IssuerLine(3, "000000000002", "000002", 700, "0200", "000000"),
    ...              IssuerLine(4, "000000000009", "000009", 100, "0200", "000000")):
    ...     m.add_issuer(line)
    >>> m.see_host(HostRecord(1, "000000000001", "000001", 500, "sale"))
    >>> m.see_host(HostRecord(2, "000000000002", "000002", 750, "sale"))
    >>> m.see_host(HostRecord(3, "000000000003", "000003", 300, "sale"))
    >>> m.finish()
    >>> m.matched, sorted(d.status for d in m.differences)
    (1, ['amount_mismatch', 'missing_on_host', 'missing_on_issuer'])
    """

    matched: int = 0
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _by_rrn: dict[str, IssuerLine] = field(default_factory=dict)
    _no_rrn: list[IssuerLine] = field(default_factory=list)
    _host_left: dict[int, HostRecord] = field(default_factory=dict)

    def add_issuer(self, line: IssuerLine) -> None:
        if line.rrn and line.rrn not in self._by_rrn:
            self._by_rrn[line.rrn] = line
        else:
            self._no_rrn.append(line)

    def _pair(self, line: IssuerLine, record: HostRecord, how: str | None = None) -> None:
        if line.amount_fen == record.amount_fen:
            self.matched += 1
            if how:
                self.notes.append(f"RRN {line.rrn or '-'} (line {line.line_no}): {how}")
        else:
            self.differences.append(
                Difference(
                    AMOUNT_MISMATCH,
                    line.rrn or record.rrn,
                    line.stan,
                    line.amount_fen,
                    record.amount_fen,
                    record.transaction_id,
                    f"file line {line.line_no}: issuer {line.amount_fen} fen, host {record.amount_fen} fen"
                    + (f"; {how}" if how else ""),
                )
            )

    def see_host(self, record: HostRecord) -> None:
        """A host record of the window."""
        line = self._by_rrn.pop(record.rrn, None) if record.rrn else None
        if line is None:
            self._host_left[record.transaction_id] = record
        else:
            self._pair(line, record)

    def unmatched_rrns(self) -> list[str]:
        return list(self._by_rrn)

    def see_host_elsewhere(self, record: HostRecord, where: str) -> None:
        """A host record outside the window found by a file line's RRN."""
        line = self._by_rrn.pop(record.rrn, None) if record.rrn else None
        if line is not None:
            self._pair(line, record, where)

    def finish(self) -> None:
        """STAN + amount for the lines still unmatched, then everything left is missing on one side."""
        by_stan_amount: dict[tuple[str | None, int], list[HostRecord]] = {}
        for record in self._host_left.values():
            by_stan_amount.setdefault((record.network_stan, record.amount_fen), []).append(record)
        for line in [*self._by_rrn.values(), *self._no_rrn]:
            candidates = by_stan_amount.get((line.stan, line.amount_fen))
            if candidates:
                record = candidates.pop(0)
                del self._host_left[record.transaction_id]
                self._pair(line, record, f"matched by STAN {line.stan} and amount (RRN {record.rrn})")
            else:
                self.differences.append(
                    Difference(
                        MISSING_ON_HOST,
                        line.rrn,
                        line.stan,
                        line.amount_fen,
                        None,
                        None,
                        f"file line {line.line_no}: {line.mti} {line.processing_code}",
                    )
                )
        self._by_rrn.clear()
        self._no_rrn.clear()
        for record in self._host_left.values():
            self.differences.append(
                Difference(
                    MISSING_ON_ISSUER,
                    record.rrn,
                    record.network_stan,
                    None,
                    record.amount_fen,
                    record.transaction_id,
                    f"host {record.kind}",
                )
            )
        self._host_left.clear()


@dataclass
class ReconResult:
    report_id: int
    bank: str
    clearing_date: dt.date
    matched: int
    differences: list[Difference]
    notes: list[str]

    def count(self, status: str) -> int:
        return sum(1 for d in self.differences if d.status == status)


def read_issuer_file(path: Path) -> tuple[str, list[IssuerLine], str]:
    """The bank and the lines of a clearing file (checksum verified), and the file's SHA-256."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: {exc}") from None
    rows = bankfile.parse(text, ISSUER_FILE_HEADER, "amount_fen")
    banks = {row["bank"] for row in rows}
    if len(banks) > 1:
        raise FileFormatError(f"{path.name}: one bank per clearing file, found {sorted(banks)}")
    lines = [
        IssuerLine(
            line_no=number,
            rrn=row["rrn"] or None,
            stan=row["stan"],
            amount_fen=int(row["amount_fen"]),
            mti=row["mti"],
            processing_code=row["processing_code"],
        )
        for number, row in enumerate(rows, start=2)
    ]
    return (banks.pop() if banks else ""), lines, hashlib.sha256(text.encode("utf-8")).hexdigest()


def _host_query(bank: str, start: dt.datetime, end: dt.datetime, after: int, limit: int):  # type: ignore[no-untyped-def]
    t = Transaction.__table__.c
    return (
        select(t.id, t.rrn, t.network_stan, t.amount_fen, t.kind, t.created_at)
        .where(
            t.issuer_name == bank,
            t.created_at >= start,
            t.created_at < end,
            t.kind.in_(HOST_KINDS),
            t.state.in_(HOST_STATES),
            t.id > after,
        )
        .order_by(t.id)
        .limit(limit)
    )


def reconcile_issuer_file(
    store: Store,
    path: Path,
    on_date: dt.date,
    timezone: str,
    cut_off: dt.time,
    bank: str | None = None,
    chunk_size: int = 5000,
) -> ReconResult:
    """Match an issuer clearing file against the host's records of clearing date `on_date`; store the
    report. `bank` defaults to the file's."""
    file_bank, lines, sha = read_issuer_file(path)
    bank = bank or file_bank
    if file_bank and bank != file_bank:
        raise FileFormatError(f"{path.name} is {file_bank}'s clearing file, not {bank}'s")
    if not bank:
        raise FileFormatError(f"{path.name}: an empty file names no bank: pass the bank")
    tz = ZoneInfo(timezone)
    start, end = clearing_window(on_date, tz, cut_off)
    matcher = Matcher()
    for line in lines:
        matcher.add_issuer(line)
    del lines
    after = 0
    while True:
        rows = store.transact(
            lambda s, after=after: s.execute(_host_query(bank, start, end, after, chunk_size)).all()
        )
        for row in rows:
            matcher.see_host(
                HostRecord(row.id, row.rrn, row.network_stan, row.amount_fen, row.kind, row.created_at)
            )
        if len(rows) < chunk_size:
            break
        after = rows[-1].id
    left = matcher.unmatched_rrns()
    t = Transaction.__table__.c
    for i in range(0, len(left), chunk_size):
        part = left[i : i + chunk_size]
        found = store.transact(
            lambda s, part=part: s.execute(
                select(t.id, t.rrn, t.network_stan, t.amount_fen, t.kind, t.created_at, t.state).where(
                    t.rrn.in_(part), t.issuer_name == bank
                )
            ).all()
        )
        for row in found:
            if row.state not in HOST_STATES or row.kind not in HOST_KINDS:
                continue
            elsewhere = clearing_date(row.created_at, tz, cut_off)
            matcher.see_host_elsewhere(
                HostRecord(row.id, row.rrn, row.network_stan, row.amount_fen, row.kind, row.created_at),
                f"the host clears it on {elsewhere}",
            )
    matcher.finish()

    def save(session: Session) -> int:
        report = ReconReport(
            kind="issuer",
            clearing_date=on_date,
            bank=bank,
            file_name=path.name,
            file_sha256=sha,
            matched=matcher.matched,
            missing_on_host=sum(1 for d in matcher.differences if d.status == MISSING_ON_HOST),
            missing_on_issuer=sum(1 for d in matcher.differences if d.status == MISSING_ON_ISSUER),
            amount_mismatch=sum(1 for d in matcher.differences if d.status == AMOUNT_MISMATCH),
            created_at=utcnow(),
        )
        session.add(report)
        session.flush()
        session.add_all(
            ReconLine(
                report_id=report.id,
                status=d.status,
                rrn=d.rrn,
                stan=d.stan,
                issuer_amount_fen=d.issuer_amount_fen,
                host_amount_fen=d.host_amount_fen,
                transaction_id=d.transaction_id,
                detail=d.detail,
            )
            for d in matcher.differences
        )
        return report.id

    report_id = store.transact(save)
    return ReconResult(report_id, bank, on_date, matcher.matched, matcher.differences, matcher.notes)


# ---------------------------------------------------------------------------------------- terminal batches


@dataclass(frozen=True)
class BatchTotals:
    """Field 48 of a 0500: sales + completions (debit), voids + refunds (credit), domestic cards."""

    debit_fen: int
    debit_count: int
    credit_fen: int
    credit_count: int

    @classmethod
    def parse(cls, field48: str) -> BatchTotals | None:
        """
        >>> BatchTotals.parse("000000012345003000000000500001" + "0" + "0" * 31)
        BatchTotals(debit_fen=12345, debit_count=3, credit_fen=500, credit_count=1)
        """
        digits = field48.strip()
        if len(digits) < 30 or not digits[:30].isdigit():
            return None
        return cls(int(digits[0:12]), int(digits[12:15]), int(digits[15:27]), int(digits[27:30]))


@dataclass(frozen=True)
class BatchDifference:
    kind: str  # missing_on_host | missing_on_terminal | amount_differs
    stan: str
    rrn: str | None
    host_amount_fen: int | None
    terminal_amount_fen: int | None


@dataclass(frozen=True)
class TerminalBatch:
    tid: str
    mid: str
    batch_no: str
    result: str
    terminal: BatchTotals | None
    host: BatchTotals | None
    differences: tuple[BatchDifference, ...]


def terminal_batches(session: Session, business_date: dt.date) -> list[TerminalBatch]:
    """The terminals' 0500 settlements of `business_date`, with their totals and every difference the
    host's batch reconciliation recorded (missing_on_host, missing_on_terminal, amount_differs)."""
    b, r = BatchSettlement.__table__.c, ReconciliationItem.__table__.c
    batches = session.execute(
        select(BatchSettlement.__table__).where(b.business_date == business_date).order_by(b.tid, b.batch_no)
    ).all()
    items: dict[int, list[BatchDifference]] = {}
    if batches:
        for item in session.execute(
            select(ReconciliationItem.__table__)
            .where(r.settlement_id.in_([x.id for x in batches]))
            .order_by(r.id)
        ):
            items.setdefault(item.settlement_id, []).append(
                BatchDifference(
                    item.kind, item.stan, item.rrn, item.host_amount_fen, item.terminal_amount_fen
                )
            )
    return [
        TerminalBatch(
            x.tid,
            x.mid,
            x.batch_no,
            x.result,
            BatchTotals.parse(x.terminal_totals),
            BatchTotals.parse(x.host_totals),
            tuple(items.get(x.id, ())),
        )
        for x in batches
    ]
