"""The store shell of risk aggregates: add a finished request to the counters (`record_outcome`), read the
aggregates a rule set needs for a request (`read_aggregates`), drop buckets no window reaches (`prune`).

Several host nodes share one database: each write is one multi-row upsert that adds to the bucket (`count =
count + excluded.count`), atomic per row on PostgreSQL and SQLite alike, with rows in primary-key order so
concurrent writers never deadlock. Nothing is held in process memory, so a restarted node reads the same
counts. What the buckets mean and how windows are summed: `risk.aggregates`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
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


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"risk counters need PostgreSQL or SQLite, not {dialect}")


def record_outcome(session: Session, outcome: Outcome) -> None:
    """Add a finished request to every counter and distinct-member row it touches (one statement each)."""
    rows = counter_rows(outcome)
    if rows:
        values = [
            {
                "key_kind": row.key_kind,
                "key_value": row.key_value,
                "resolution": row.resolution,
                "bucket_at": row.bucket_at,
                **dict(zip(MEASURES, row.values, strict=True)),
            }
            for row in rows
        ]
        statement = _insert(session, _COUNTERS).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["key_kind", "key_value", "resolution", "bucket_at"],
            set_={m: _COUNTERS.c[m] + statement.excluded[m] for m in MEASURES},
        )
        session.execute(statement)
    seen = seen_rows(outcome)
    if seen:
        statement = _insert(session, _SEEN).values(
            [
                {"key_kind": s.key_kind, "key_value": s.key_value, "member": s.member, "last_at": s.at}
                for s in seen
            ]
        )
        statement = statement.on_conflict_do_update(
            index_elements=["key_kind", "key_value", "member"],
            set_={
                "last_at": case(
                    (statement.excluded.last_at > _SEEN.c.last_at, statement.excluded.last_at),
                    else_=_SEEN.c.last_at,
                )
            },
        )
        session.execute(statement)


def read_aggregates(
    session: Session,
    request: Request,
    aggregates: Iterable[tuple[str, str, str]],
    now: dt.datetime,
    baseline: bool = True,
) -> dict[str, dict[str, Any]]:
    """The aggregate facts for one request (`now` naive UTC): one query for the counters, one per
    distinct-count key."""
    needed = list(aggregates)
    reads = plan(request, needed, now, baseline)
    rows: list[CounterRow] = []
    if reads.counters:
        condition = or_(
            *(
                and_(
                    _COUNTERS.c.key_kind == r.key_kind,
                    _COUNTERS.c.key_value == r.key_value,
                    _COUNTERS.c.resolution == r.resolution,
                    _COUNTERS.c.bucket_at >= r.since,
                )
                for r in reads.counters
            )
        )
        columns = [_COUNTERS.c.key_kind, _COUNTERS.c.key_value, _COUNTERS.c.resolution, _COUNTERS.c.bucket_at]
        result = session.execute(select(*columns, *(_COUNTERS.c[m] for m in MEASURES)).where(condition))
        rows = [CounterRow(r[0], r[1], r[2], r[3], tuple(r[4:])) for r in result]
    seen_counts: dict[tuple[str, str], int] = {}
    for read in reads.seen:
        windows = list(read.since.items())
        counts = session.execute(
            select(
                *(
                    func.coalesce(func.sum(case((_SEEN.c.last_at >= since, 1), else_=0)), 0)
                    for _, since in windows
                )
            )
            .where(_SEEN.c.key_kind == read.key_kind)
            .where(_SEEN.c.key_value == read.key_value)
            .where(_SEEN.c.last_at >= min(since for _, since in windows))
        ).one()
        for (window, _), count in zip(windows, counts, strict=True):
            seen_counts[(read.key_kind, window)] = int(count)
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
