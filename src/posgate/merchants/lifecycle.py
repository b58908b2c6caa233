"""Merchant and terminal lifecycle: testing → live (the test swipe), suspend / resume, close.

Statuses: testing (provisioned; only sign-in, echo and the 0.01 CNY test sale with its void or reversal
are accepted by the host), live, suspended (the host answers 03; `resume` restores the status it had),
closed (final). Closing a merchant closes its terminals. Every change is audited in the same unit of work.
The host calls `store.acquirer.complete_test_swipe` (re-exported here) when a terminal's test sale has
been voided or reversed.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.merchants.errors import StateConflict
from posgate.merchants.provisioning import get_merchant, get_terminal
from posgate.merchants.review import check_reason
from posgate.store.acquirer import complete_test_swipe  # noqa: F401  (re-exported)
from posgate.store.audit import audit
from posgate.store.models import Merchant, Terminal

ACTIVE = ("testing", "live")


def _suspend(what: str, row: Merchant | Terminal) -> None:
    if row.status not in ACTIVE:
        raise StateConflict(f"{what} is {row.status}; suspend needs it testing or live")
    row.suspended_from, row.status = row.status, "suspended"


def _resume(what: str, row: Merchant | Terminal) -> None:
    if row.status != "suspended":
        raise StateConflict(f"{what} is {row.status}; resume needs it suspended")
    row.status, row.suspended_from = row.suspended_from or "testing", None


def _close(what: str, row: Merchant | Terminal) -> None:
    if row.status == "closed":
        raise StateConflict(f"{what} is already closed")
    row.status, row.suspended_from = "closed", None


def suspend_merchant(
    session: Session, mid: str, reason: str, actor: str, now: dt.datetime | None = None
) -> None:
    """A suspended merchant's terminals all get 03 from the host (their own status is kept)."""
    merchant = get_merchant(session, mid)
    before = merchant.status
    _suspend("the merchant", merchant)
    audit(
        session,
        actor,
        "suspend",
        "merchant",
        mid,
        now,
        **{"from": before, "to": "suspended"},
        reason=check_reason(reason),
    )


def resume_merchant(session: Session, mid: str, actor: str, now: dt.datetime | None = None) -> None:
    merchant = get_merchant(session, mid)
    _resume("the merchant", merchant)
    audit(session, actor, "resume", "merchant", mid, now, **{"from": "suspended", "to": merchant.status})


def close_merchant(
    session: Session, mid: str, reason: str, actor: str, now: dt.datetime | None = None
) -> None:
    """Close the merchant and every terminal of it that is not closed yet."""
    text = check_reason(reason)
    merchant = get_merchant(session, mid)
    before = merchant.status
    _close("the merchant", merchant)
    audit(session, actor, "close", "merchant", mid, now, **{"from": before, "to": "closed"}, reason=text)
    for terminal in session.scalars(
        select(Terminal).where(Terminal.merchant_id == merchant.id, Terminal.status != "closed")
    ):
        was = terminal.status
        _close(f"terminal {terminal.tid}", terminal)
        audit(
            session,
            actor,
            "close",
            "terminal",
            terminal.tid,
            now,
            **{"from": was, "to": "closed"},
            reason=text,
        )


def suspend_terminal(
    session: Session, tid: str, reason: str, actor: str, now: dt.datetime | None = None
) -> None:
    terminal = get_terminal(session, tid)
    before = terminal.status
    _suspend(f"terminal {tid}", terminal)
    audit(
        session,
        actor,
        "suspend",
        "terminal",
        tid,
        now,
        **{"from": before, "to": "suspended"},
        reason=check_reason(reason),
    )


def resume_terminal(session: Session, tid: str, actor: str, now: dt.datetime | None = None) -> None:
    terminal = get_terminal(session, tid)
    merchant = session.get(Merchant, terminal.merchant_id)
    if merchant is not None and merchant.status in ("suspended", "closed"):
        raise StateConflict(f"terminal {tid}: its merchant is {merchant.status}; resume the merchant first")
    _resume(f"terminal {tid}", terminal)
    audit(session, actor, "resume", "terminal", tid, now, **{"from": "suspended", "to": terminal.status})


def close_terminal(
    session: Session, tid: str, reason: str, actor: str, now: dt.datetime | None = None
) -> None:
    text = check_reason(reason)
    terminal = get_terminal(session, tid)
    before = terminal.status
    _close(f"terminal {tid}", terminal)
    audit(session, actor, "close", "terminal", tid, now, **{"from": before, "to": "closed"}, reason=text)
