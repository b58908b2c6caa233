"""The ledger in the store: accounts (created on first use), posting entries idempotently (the entry's
business key is unique: an entry already there is skipped, never doubled), and balances derived from the
postings at any time. Plain functions of a `Session`; the caller's unit of work commits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, case, func, select, text
from sqlalchemy.orm import Session

from posgate.settlement.ledger import Entry, account_type
from posgate.store.base import utcnow
from posgate.store.models_ledger import LedgerAccount, LedgerBalance, LedgerEntry, LedgerPosting

_ACCOUNTS: Table = LedgerAccount.__table__  # type: ignore[assignment]
_ENTRIES: Table = LedgerEntry.__table__  # type: ignore[assignment]
_POSTINGS: Table = LedgerPosting.__table__  # type: ignore[assignment]
_BALANCES: Table = LedgerBalance.__table__  # type: ignore[assignment]


def insert_ignoring_conflicts(session: Session, table: Table, *unique_columns: str) -> Any:
    """`INSERT … ON CONFLICT (columns) DO NOTHING` for the session's dialect (SQLite or PostgreSQL); no
    columns: any unique constraint."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing(index_elements=list(unique_columns) or None)


class Accounts:
    """Account code → id, created on first use (safe under concurrent creators: conflict → re-read)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def ids(self, session: Session, codes: Iterable[str]) -> dict[str, int]:
        missing = {code for code in codes if code not in self._ids}
        if missing:
            rows = [{"code": c, "type": account_type(c), "created_at": utcnow()} for c in sorted(missing)]
            session.execute(insert_ignoring_conflicts(session, _ACCOUNTS, "code"), rows)
            found = session.execute(
                select(_ACCOUNTS.c.code, _ACCOUNTS.c.id).where(_ACCOUNTS.c.code.in_(missing))
            )
            self._ids.update({code: account_id for code, account_id in found})
        return self._ids

    def forget(self) -> None:
        """Drop the cache (after a rolled-back unit of work that may have created accounts)."""
        self._ids.clear()


def bulk_insert(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """`INSERT INTO table (columns) VALUES …` for many rows of already-bound values, straight to the
    driver's `executemany` (no per-row SQLAlchemy processing: clearing writes millions of rows)."""
    if not rows:
        return
    marker = _marker(session)
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([marker] * len(columns))})"
    session.connection().exec_driver_sql(sql, list(rows))


def bind_value(session: Session, table: Table, column: str, value: Any) -> Any:
    """`value` as the driver wants it for `table.column` (SQLite keeps dates and times as text)."""
    dialect = session.get_bind().dialect
    processor = table.c[column].type.dialect_impl(dialect).bind_processor(dialect)
    return processor(value) if processor is not None else value


def allocate_ids(session: Session, table: Table, count: int) -> Sequence[int]:
    """`count` fresh primary keys of `table`, to insert rows with their ids known (and their children with
    them) in one `executemany`: PostgreSQL draws them from the table's sequence; SQLite takes the next ones
    after max(id), safe because a SQLite unit of work holds the write lock from BEGIN IMMEDIATE (a writer
    that did not would make our insert fail on the primary key, never overwrite)."""
    if session.get_bind().dialect.name == "postgresql":
        ids = session.execute(
            text(f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) FROM generate_series(1, :n)"),
            {"n": count},
        ).scalars()
        return list(ids)
    top = session.scalar(select(func.coalesce(func.max(table.c.id), 0)))
    return range(top + 1, top + 1 + count)


def post(
    session: Session, entries: Sequence[Entry], accounts: Accounts | None = None, known_new: bool = False
) -> tuple[int, int]:
    """Write `entries` (each balanced by construction); one whose key is already posted is skipped (unless
    the caller knows them all `known_new`: then a duplicate key fails the unit of work on the unique
    constraint). Returns (entries written, posting lines written)."""
    if not entries:
        return 0, 0
    accounts = accounts or Accounts()
    if not known_new:
        keys = [e.key for e in entries]
        existing: set[str] = set()
        for i in range(0, len(keys), 5000):
            existing.update(
                session.scalars(select(_ENTRIES.c.key).where(_ENTRIES.c.key.in_(keys[i : i + 5000])))
            )
        entries = [e for e in entries if e.key not in existing]
        if not entries:
            return 0, 0
    ids = accounts.ids(session, {account for entry in entries for account, _ in entry.lines})
    created_at = bind_value(session, _ENTRIES, "created_at", utcnow())
    entry_ids = allocate_ids(session, _ENTRIES, len(entries))
    dates: dict[dt.date, Any] = {}
    totals: dict[tuple[int, Any], list[int]] = {}
    entry_rows = []
    posting_rows = []
    for entry_id, e in zip(entry_ids, entries, strict=True):
        day = dates.get(e.value_date)
        if day is None:
            day = dates[e.value_date] = bind_value(session, _ENTRIES, "value_date", e.value_date)
        entry_rows.append((entry_id, e.key, e.kind, day, e.transaction_id, e.payout_id, e.memo, created_at))
        for line_no, (account, amount) in enumerate(e.lines):
            account_id = ids[account]
            posting_rows.append((entry_id, line_no, account_id, amount))
            total = totals.get((account_id, day))
            if total is None:
                total = totals[(account_id, day)] = [0, 0]
            total[amount < 0] += abs(amount)
    bulk_insert(
        session,
        _ENTRIES,
        ("id", "key", "kind", "value_date", "transaction_id", "payout_id", "memo", "created_at"),
        entry_rows,
    )
    bulk_insert(session, _POSTINGS, ("entry_id", "line_no", "account_id", "amount_fen"), posting_rows)
    session.connection().exec_driver_sql(
        _ADD_TO_BALANCES.replace("?", _marker(session)),
        [(account_id, day, debit, credit) for (account_id, day), (debit, credit) in totals.items()],
    )
    return len(entry_rows), len(posting_rows)


_ADD_TO_BALANCES = (
    "INSERT INTO ledger_balances (account_id, value_date, debit_fen, credit_fen) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (account_id, value_date) DO UPDATE SET "
    "debit_fen = ledger_balances.debit_fen + excluded.debit_fen, "
    "credit_fen = ledger_balances.credit_fen + excluded.credit_fen"
)


def _marker(session: Session) -> str:
    return "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"


def balances(session: Session, prefix: str | None = None, through: dt.date | None = None) -> dict[str, int]:
    """Account code → balance (signed fen: + debit) as of `through` (value dates up to it; None: all),
    optionally only the accounts whose code starts with `prefix`. Read from the per-day totals."""
    b = _BALANCES.c
    stmt = (
        select(_ACCOUNTS.c.code, func.sum(b.debit_fen - b.credit_fen))
        .join(_BALANCES, b.account_id == _ACCOUNTS.c.id)
        .group_by(_ACCOUNTS.c.code)
    )
    if prefix is not None:
        stmt = stmt.where(_ACCOUNTS.c.code.startswith(prefix, autoescape=True))
    if through is not None:
        stmt = stmt.where(b.value_date <= through)
    return {code: int(total) for code, total in session.execute(stmt)}


def balances_from_postings(session: Session) -> dict[tuple[str, dt.date], tuple[int, int]]:
    """(account code, value date) → (Σ debits, Σ credits), recomputed from every posting (a full scan)."""
    p, e = _POSTINGS.c, _ENTRIES.c
    debit = func.sum(case((p.amount_fen > 0, p.amount_fen), else_=0))
    credit = func.sum(case((p.amount_fen < 0, -p.amount_fen), else_=0))
    stmt = (
        select(_ACCOUNTS.c.code, e.value_date, debit, credit)
        .select_from(_POSTINGS)
        .join(_ENTRIES, e.id == p.entry_id)
        .join(_ACCOUNTS, _ACCOUNTS.c.id == p.account_id)
        .group_by(_ACCOUNTS.c.code, e.value_date)
    )
    return {(code, day): (int(d), int(c)) for code, day, d, c in session.execute(stmt)}


def verify_balances(session: Session) -> list[str]:
    """The differences between the per-day totals and the postings (empty: they agree)."""
    b = _BALANCES.c
    kept = {
        (code, day): (int(d), int(c))
        for code, day, d, c in session.execute(
            select(_ACCOUNTS.c.code, b.value_date, b.debit_fen, b.credit_fen).join(
                _ACCOUNTS, _ACCOUNTS.c.id == b.account_id
            )
        )
        if d or c
    }
    truth = balances_from_postings(session)
    return [
        f"{code} {day}: totals {kept.get((code, day))} postings {truth.get((code, day))}"
        for code, day in sorted(kept.keys() | truth.keys())
        if kept.get((code, day)) != truth.get((code, day))
    ]


def trial_balance(session: Session) -> int:
    """Σ of every posting: 0 when the books balance (Σ debits = Σ credits)."""
    return int(session.scalar(select(func.coalesce(func.sum(_POSTINGS.c.amount_fen), 0))) or 0)


def unbalanced_entries(session: Session, limit: int = 100) -> list[tuple[str, int]]:
    """Entries whose lines do not sum to zero (key, difference): always empty unless the store was
    written around this module."""
    stmt = (
        select(_ENTRIES.c.key, func.sum(_POSTINGS.c.amount_fen))
        .join(_POSTINGS, _POSTINGS.c.entry_id == _ENTRIES.c.id)
        .group_by(_ENTRIES.c.key)
        .having(func.sum(_POSTINGS.c.amount_fen) != 0)
        .limit(limit)
    )
    return [(key, int(total)) for key, total in session.execute(stmt)]


def entry_lines(session: Session, key: str) -> list[tuple[str, int]]:
    """The lines of the entry with business key `key` (account code, signed fen)."""
    stmt = (
        select(_ACCOUNTS.c.code, _POSTINGS.c.amount_fen)
        .join(_POSTINGS, _POSTINGS.c.account_id == _ACCOUNTS.c.id)
        .join(_ENTRIES, _ENTRIES.c.id == _POSTINGS.c.entry_id)
        .where(_ENTRIES.c.key == key)
        .order_by(_POSTINGS.c.line_no)
    )
    return [(code, int(amount)) for code, amount in session.execute(stmt)]
