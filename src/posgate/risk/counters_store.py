"""The store shell of risk aggregates: add a finished request to the counters (`record_outcome`), read the
aggregates a rule set needs for a request (`read_aggregates`), drop buckets no window reaches (`prune`).

Several host nodes share one database: each write is an upsert that adds to the bucket (`count = count +
excluded.count`), atomic per row on PostgreSQL and SQLite alike, with rows in primary-key order so
concurrent writers never deadlock. Nothing is held in process memory, so a restarted node reads the same
counts. What the buckets mean and how windows are summed: `risk.aggregates`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import DateTime, bindparam, delete, text
from sqlalchemy.orm import Session

from posgate.risk.aggregates import (
    MEASURES,
    RESOLUTION_S,
    RETENTION_S,
    CounterRow,
    Outcome,
    Request,
    counter_rows,
    plan,
    seen_rows,
    summarize,
)
from posgate.store.models_risk import RiskCounter, RiskSeen

_COUNTERS = RiskCounter.__table__
_SEEN = RiskSeen.__table__

# Plain SQL that PostgreSQL and SQLite (3.24+) both take as written, compiled once: building these with the
# expression language cost ≈ 10 ms a request in statement compilation alone.
_ADD = text(
    f"INSERT INTO risk_counters (key_kind, key_value, resolution, bucket_at, {', '.join(MEASURES)}) "
    f"VALUES (:key_kind, :key_value, :resolution, :bucket_at, {', '.join(':' + m for m in MEASURES)}) "
    "ON CONFLICT (key_kind, key_value, resolution, bucket_at) DO UPDATE SET "
    + ", ".join(f"{m} = risk_counters.{m} + excluded.{m}" for m in MEASURES)
).bindparams(bindparam("bucket_at", type_=DateTime()))
_SEE = text(
    "INSERT INTO risk_seen (key_kind, key_value, member, last_at) "
    "VALUES (:key_kind, :key_value, :member, :at) "
    "ON CONFLICT (key_kind, key_value, member) DO UPDATE SET last_at = CASE "
    "WHEN excluded.last_at > risk_seen.last_at THEN excluded.last_at ELSE risk_seen.last_at END"
).bindparams(bindparam("at", type_=DateTime()))
_COUNTER_COLUMNS = f"key_kind, resolution, bucket_at, {', '.join(MEASURES)}"
_statements: dict[tuple[str, int], Any] = {}


def _union(kind: str, count: int) -> Any:
    """One statement reading `count` ranges (counters) or member lists (seen), compiled once per shape."""
    cached = _statements.get((kind, count))
    if cached is not None:
        return cached
    if kind == "counters":
        parts = [
            f"SELECT {_COUNTER_COLUMNS} FROM risk_counters WHERE key_kind = :k{i} AND key_value = :v{i} "
            f"AND resolution = :r{i} AND bucket_at >= :s{i}"
            for i in range(count)
        ]
        columns = {"bucket_at": DateTime()}
    else:
        parts = [
            f"SELECT key_kind, last_at FROM risk_seen WHERE key_kind = :k{i} AND key_value = :v{i} "
            f"AND last_at >= :s{i}"
            for i in range(count)
        ]
        columns = {"last_at": DateTime()}
    statement = (
        text(" UNION ALL ".join(parts))
        .bindparams(*(bindparam(f"s{i}", type_=DateTime()) for i in range(count)))
        .columns(**columns)
    )
    _statements[(kind, count)] = statement
    return statement


def record_outcome(session: Session, outcome: Outcome) -> None:
    """Add a finished request to every counter and distinct-member row it touches, in primary-key order."""
    connection = session.connection()
    rows = counter_rows(outcome)
    if rows:
        connection.execute(
            _ADD,
            [
                {
                    "key_kind": row.key_kind,
                    "key_value": row.key_value,
                    "resolution": row.resolution,
                    "bucket_at": row.bucket_at,
                    **dict(zip(MEASURES, row.values, strict=True)),
                }
                for row in rows
            ],
        )
    seen = seen_rows(outcome)
    if seen:
        connection.execute(
            _SEE,
            [
                {"key_kind": s.key_kind, "key_value": s.key_value, "member": s.member, "at": s.at}
                for s in seen
            ],
        )


def read_aggregates(
    session: Session,
    request: Request,
    aggregates: Iterable[tuple[str, str, str]],
    now: dt.datetime,
    baseline: bool = True,
) -> dict[str, dict[str, Any]]:
    """The aggregate facts for one request (`now` naive UTC): one statement reads every counter range (an
    indexed range per key and resolution), one every distinct-count key's recent members."""
    needed = list(aggregates)
    reads = plan(request, needed, now, baseline)
    connection = session.connection()
    rows: list[CounterRow] = []
    if reads.counters:
        params: dict[str, Any] = {}
        for i, read in enumerate(reads.counters):
            params |= {
                f"k{i}": read.key_kind,
                f"v{i}": read.key_value,
                f"r{i}": read.resolution,
                f"s{i}": read.since,
            }
        values_of = {read.key_kind: read.key_value for read in reads.counters}
        for r in connection.execute(_union("counters", len(reads.counters)), params):
            rows.append(CounterRow(r[0], values_of[r[0]], r[1], r[2], tuple(r[3:])))
    seen_counts: dict[tuple[str, str], int] = {}
    if reads.seen:
        params = {}
        for i, read in enumerate(reads.seen):
            params |= {f"k{i}": read.key_kind, f"v{i}": read.key_value, f"s{i}": min(read.since.values())}
        last: dict[str, list[dt.datetime]] = {read.key_kind: [] for read in reads.seen}
        for kind, at in connection.execute(_union("seen", len(reads.seen)), params):
            last[kind].append(at)
        for read in reads.seen:
            for window, since in read.since.items():
                seen_counts[(read.key_kind, window)] = sum(1 for at in last[read.key_kind] if at >= since)
    return summarize(request, needed, now, rows, seen_counts, baseline)


def prune(session: Session, now: dt.datetime) -> int:
    """Delete buckets older than any window (plus one bucket) and members not seen for 31 days."""
    deleted = 0
    for resolution, keep_s in RETENTION_S.items():
        before = now - dt.timedelta(seconds=keep_s + RESOLUTION_S[resolution])
        result = session.execute(
            delete(_COUNTERS)
            .where(_COUNTERS.c.resolution == resolution)
            .where(_COUNTERS.c.bucket_at < before)
        )
        deleted += result.rowcount or 0
    result = session.execute(delete(_SEEN).where(_SEEN.c.last_at < now - dt.timedelta(days=31)))
    return deleted + (result.rowcount or 0)
