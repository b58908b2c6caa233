"""MIDs and TIDs: their formats (pure) and their allocation in the store.

MID = acquirer code `898` + area code (4) + MCC (4) + serial (4) = 15 digits; the demo merchant
898 4401 5311 0001 follows it. TID = 8 digits, serials from 10000002 (10000001 is the demo terminal)
to 89999999.
Allocation reads the highest serial in use and inserts under the table's unique constraint inside a
savepoint, retrying on a collision: never a counter in process memory, so any number of nodes may allocate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from posgate.merchants.errors import StateConflict
from posgate.store.models import Merchant, Terminal

ACQUIRER_CODE = "898"
FIRST_TID = 10_000_002
MAX_TID = 89_999_999  # 9xxxxxxx belongs to `posgate bench`'s terminals
ATTEMPTS = 20
T = TypeVar("T")


def mid_prefix(area_code: str, mcc: str) -> str:
    """The first 11 digits of a MID.

    >>> mid_prefix("4401", "5311")
    '89844015311'
    """
    if not (len(area_code) == 4 and area_code.isdigit() and len(mcc) == 4 and mcc.isdigit()):
        raise ValueError(f"area code and MCC must be 4 digits each, got {area_code!r} and {mcc!r}")
    return ACQUIRER_CODE + area_code + mcc


def format_mid(prefix: str, serial: int) -> str:
    """The MID with `serial` (1-9999).

    >>> format_mid("89844015311", 1)
    '898440153110001'
    """
    if not 1 <= serial <= 9999:
        raise ValueError(f"MID serial must be 1-9999, got {serial}")
    return f"{prefix}{serial:04d}"


def next_mid(session: Session, prefix: str) -> str:
    highest = session.scalar(select(func.max(Merchant.mid)).where(Merchant.mid.like(f"{prefix}____")))
    serial = int(highest[-4:]) + 1 if highest and highest[-4:].isdigit() else 1
    if serial > 9999:
        raise StateConflict(f"no MID serial left for area+MCC {prefix[3:]} (all 9999 used)")
    return format_mid(prefix, serial)


def next_tid(session: Session) -> str:
    highest = session.scalar(
        select(func.max(Terminal.tid)).where(Terminal.tid >= str(FIRST_TID), Terminal.tid <= str(MAX_TID))
    )
    serial = max(int(highest) + 1, FIRST_TID) if highest and highest.isdigit() else FIRST_TID
    if serial > MAX_TID:
        raise StateConflict("no TID left (all 8-digit serials used)")
    return f"{serial:08d}"


def insert_unique(session: Session, allocate: Callable[[], str], insert: Callable[[str], T]) -> T:
    """Allocate an identifier and insert the row that holds it inside a savepoint; on a unique-constraint
    collision (another node took it meanwhile) roll the savepoint back and try the next one."""
    for _ in range(ATTEMPTS):
        candidate = allocate()
        try:
            with session.begin_nested():
                row = insert(candidate)
                session.flush()
            return row
        except IntegrityError:
            continue
    raise StateConflict(f"could not allocate a unique identifier after {ATTEMPTS} attempts")
