"""The console's login limits, in the store so that every console process and node counts together.

Each attempt first *reserves* a place under two counters — the username at the caller's address
(`login_max_failures`) and the address across all usernames (`login_max_failures_per_address`, against
password spraying) — by one atomic upsert per counter (`INSERT … ON CONFLICT DO UPDATE … RETURNING`, the
same statement on SQLite and PostgreSQL). Only an attempt whose reservation fits under both limits has its
password checked, so however many requests arrive at once, at most the limit of passwords is checked per
window. A refused reservation is rolled back (it reserves nothing). Afterwards a wrong password keeps its
place; a right one frees it (the username-at-address counter starts again, the address counter gives back
one place: a caller cannot wipe its address's count by signing in to an account of its own). Windows are
fixed: a counter starts at the first attempt and lasts `login_window_s`; a lockout ends with its window.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import case, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from posgate.errors import mask_card_data
from posgate.store.models_onboarding import LoginThrottle


@dataclass(frozen=True)
class Limits:
    per_user_address: int
    per_address: int
    window: dt.timedelta


@dataclass(frozen=True)
class Counter:
    key: str
    limit: int
    what: str  # "username" or "address": which limit, for the message and the audit


@dataclass(frozen=True)
class Reservation:
    """What `reserve` counted: per counter, the count including this attempt and its window's start."""

    counters: tuple[Counter, ...]
    counts: tuple[int, ...]
    window_starts: tuple[dt.datetime, ...]

    def reached(self) -> list[Counter]:
        """The counters this attempt filled up (a failure now locks them until their window ends)."""
        return [c for c, n in zip(self.counters, self.counts, strict=True) if n == c.limit]


class LockedOut(Exception):
    """No place left under `counter` until `retry_after_s` seconds from now."""

    def __init__(self, counter: Counter, count: int, retry_after_s: int) -> None:
        super().__init__(f"{counter.what} locked")
        self.counter = counter
        self.count = count
        self.retry_after_s = retry_after_s


def stored_username(username: str) -> str:
    """A username as the counters keep it: card numbers masked (someone may type one into the wrong
    field), at most 64 characters.

    >>> stored_username("6229990000000012")
    '622999******0012'
    """
    return mask_card_data(username)[:64]


def counters(username: str, ip: str, limits: Limits) -> tuple[Counter, ...]:
    """The two counters an attempt by `username` from `ip` reserves a place under.

    >>> [c.key for c in counters("alice", "192.0.2.1", Limits(5, 20, dt.timedelta(minutes=5)))]
    ['user:alice@192.0.2.1', 'addr:192.0.2.1']
    """
    ip = ip[:64]
    return (
        Counter(f"user:{stored_username(username)}@{ip}", limits.per_user_address, "username"),
        Counter(f"addr:{ip}", limits.per_address, "address"),
    )


def _insert(session: Session):  # type: ignore[no-untyped-def]
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(LoginThrottle)


def _bump(session: Session, key: str, now: dt.datetime, window: dt.timedelta) -> tuple[int, dt.datetime]:
    """Count one attempt under `key` (a new window if the last one is over); the count and window start."""
    table = LoginThrottle.__table__
    expired = table.c.window_start <= now - window
    statement = (
        _insert(session)
        .values(key=key, window_start=now, count=1)
        .on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "count": case((expired, 1), else_=table.c.count + 1),
                "window_start": case((expired, now), else_=table.c.window_start),
            },
        )
        .returning(table.c.count, table.c.window_start)
    )
    count, start = session.execute(statement).one()
    return int(count), start


def reserve(session: Session, username: str, ip: str, now: dt.datetime, limits: Limits) -> Reservation:
    """Reserve a place for one attempt; `LockedOut` (raise it out of the unit of work: nothing is kept) if a
    counter is full."""
    chosen = counters(username, ip, limits)
    counts, starts = [], []
    for counter in chosen:
        count, start = _bump(session, counter.key, now, limits.window)
        if count > counter.limit:
            ends = start + limits.window
            raise LockedOut(counter, count - 1, max(1, math.ceil((ends - now).total_seconds())))
        counts.append(count)
        starts.append(start)
    return Reservation(chosen, tuple(counts), tuple(starts))


def release(session: Session, reservation: Reservation, signed_in: bool) -> None:
    """Give back the places of an attempt whose password was never checked (`signed_in=False`) or was
    right (`signed_in=True`: the username-at-address counter starts again)."""
    table = LoginThrottle.__table__
    for counter, start in zip(reservation.counters, reservation.window_starts, strict=True):
        same_window = (table.c.key == counter.key) & (table.c.window_start == start)
        if signed_in and counter.what == "username":
            session.execute(delete(table).where(table.c.key == counter.key))
        else:
            session.execute(
                update(table).where(same_window, table.c.count > 0).values(count=table.c.count - 1)
            )


def forget_old(session: Session, now: dt.datetime, window: dt.timedelta) -> None:
    """Drop counters whose window ended long ago."""
    table = LoginThrottle.__table__
    session.execute(delete(table).where(table.c.window_start < now - window * 12))
