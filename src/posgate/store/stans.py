"""Network STANs (field 11 towards issuers) as the store hands them out: one counter per issuer link
(`network_stan_counters`), shared by every host node on the database, never reset, advanced in blocks.

A counter value v is the STAN `v mod 999,999 + 1` (000001 … 999999; 000000 is never used), so a link's
STAN repeats only after 999,999 further values have been taken on it — by any node, whatever the day.
Which block size to take, and for how long a node may keep one, is `host.stans`'s business.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from posgate.store.models import NetworkStanCounter

#: How many distinct STANs field 11 (n6, 000000 excluded) can carry.
STAN_SPACE = 999_999


def stan_of(value: int) -> str:
    """The STAN of a counter value.

    >>> stan_of(0), stan_of(41), stan_of(999_998), stan_of(999_999)
    ('000001', '000042', '999999', '000001')
    """
    return f"{value % STAN_SPACE + 1:06d}"


_TAKE = NetworkStanCounter.__table__


def take_stans(session: Session, issuer_name: str, count: int) -> int:
    """Reserve `count` consecutive counter values for `issuer_name` and return the first. One short UPDATE
    (the counter's row is locked until the caller commits: commit at once). Concurrent callers on any
    node get disjoint ranges."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    taken = _advance(session, issuer_name, count)
    if taken is None:
        try:
            with session.begin_nested():
                session.add(NetworkStanCounter(issuer_name=issuer_name, taken=count))
            return 0
        except IntegrityError:  # another node created the row meanwhile
            taken = _advance(session, issuer_name, count)
            assert taken is not None
    return taken - count


def _advance(session: Session, issuer_name: str, count: int) -> int | None:
    return session.execute(
        update(_TAKE)
        .where(_TAKE.c.issuer_name == issuer_name)
        .values(taken=_TAKE.c.taken + count)
        .returning(_TAKE.c.taken)
    ).scalar_one_or_none()


def stans_taken(session: Session, issuer_name: str) -> int:
    """How many counter values have been taken on the link so far."""
    return session.scalar(select(_TAKE.c.taken).where(_TAKE.c.issuer_name == issuer_name)) or 0
