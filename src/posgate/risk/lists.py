"""Risk lists in the store: cards (by PAN hash — the clear PAN is never stored), terminals, merchants and BINs
on the block, allow or watch list, and restricted MCCs (`7995`: every card at merchants of that category;
`7995:credit`: credit cards only), each with a reason and an optional expiry. `list_flags` is what the inline
decision reads (one indexed query per request, so a running host sees a change at its next request);
`add_entry` / `remove_entry` are what the commands call, audited in the same unit of work."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime, bindparam, select, text
from sqlalchemy.orm import Session

from posgate.errors import PosgateError
from posgate.store.audit import audit
from posgate.store.models_risk import RiskListEntry

# (list kind, action) → the fact the rules read (`lists.<name>`, risk.vocabulary)
FLAGS: dict[tuple[str, str], str] = {
    ("card", "block"): "card_blocked",
    ("card", "allow"): "card_allowed",
    ("terminal", "block"): "terminal_blocked",
    ("terminal", "watch"): "terminal_watched",
    ("merchant", "block"): "merchant_blocked",
    ("merchant", "watch"): "merchant_watched",
    ("bin", "block"): "bin_blocked",
    ("mcc", "block"): "mcc_restricted",
}
LIST_KINDS = ("card", "terminal", "merchant", "bin", "mcc")
CARD_KINDS = ("credit", "debit")
_VALUE_RULES = {"terminal": (8, 8), "merchant": (15, 15), "bin": (6, 6)}


class ListError(PosgateError):
    """A list change that cannot be made: an unknown list, a malformed value, a missing reason."""


def check_entry(kind: str, action: str, value: str) -> None:
    """Refuse an unknown (kind, action) or a value of the wrong shape (the card's value is its PAN hash).

    >>> check_entry("terminal", "block", "1000001")
    Traceback (most recent call last):
    ...
    posgate.risk.lists.ListError: a terminal is 8 digits, not '1000001'
    """
    if (kind, action) not in FLAGS:
        known = ", ".join(f"{k} {a}" for k, a in FLAGS)
        raise ListError(f"no {action} list for {kind} (lists: {known})")
    if kind == "card":
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ListError("a card is listed by its PAN hash")
        return
    if kind == "mcc":
        code, _, card_kind = value.partition(":")
        if not (code.isascii() and code.isdigit() and len(code) == 4):
            raise ListError(f"an MCC is 4 digits, not {code!r}")
        if card_kind and card_kind not in CARD_KINDS:
            raise ListError(f"an MCC is restricted for credit or debit cards (or all), not {card_kind!r}")
        return
    shortest, longest = _VALUE_RULES[kind]
    if not (value.isascii() and value.isdigit() and shortest <= len(value) <= longest):
        size = f"{shortest}" if shortest == longest else f"{shortest} to {longest}"
        raise ListError(f"a {kind} is {size} digits, not {value!r}")


def _active(now: dt.datetime) -> Any:
    return (RiskListEntry.removed_at.is_(None)) & (
        RiskListEntry.expires_at.is_(None) | (RiskListEntry.expires_at > now)
    )


def add_entry(
    session: Session,
    kind: str,
    action: str,
    value: str,
    reason: str,
    actor: str,
    now: dt.datetime,
    masked: str | None = None,
    expires_at: dt.datetime | None = None,
) -> int:
    """Put `value` on a list (or renew the reason and expiry of its active entry); the entry's id."""
    check_entry(kind, action, value)
    reason = reason.strip()
    if not reason:
        raise ListError("a reason is required")
    if len(reason) > 200:
        raise ListError("the reason is longer than 200 characters")
    if expires_at is not None and expires_at <= now:
        raise ListError("the expiry is in the past")
    entry = session.scalars(
        select(RiskListEntry).where(
            RiskListEntry.list_kind == kind,
            RiskListEntry.action == action,
            RiskListEntry.value == value,
            _active(now),
        )
    ).first()
    event = "risk_list_renewed" if entry is not None else "risk_list_added"
    if entry is None:
        entry = RiskListEntry(
            list_kind=kind, action=action, value=value, masked=masked, created_at=now, created_by=actor
        )
        session.add(entry)
    entry.reason, entry.expires_at = reason, expires_at
    session.flush()
    expires = expires_at.isoformat() if expires_at else None
    detail = {"list": action, "reason": reason, "expires_at": expires, "entry": entry.id}
    audit(session, actor, event, f"risk_list.{kind}", masked or value, now, **detail)
    return entry.id


def remove_entry(session: Session, kind: str, action: str, value: str, actor: str, now: dt.datetime) -> int:
    """Take `value` off a list; how many active entries were removed (0: it was not on it)."""
    check_entry(kind, action, value)
    entries = session.scalars(
        select(RiskListEntry).where(
            RiskListEntry.list_kind == kind,
            RiskListEntry.action == action,
            RiskListEntry.value == value,
            _active(now),
        )
    ).all()
    for entry in entries:
        entry.removed_at, entry.removed_by = now, actor
        ref = entry.masked or value
        audit(session, actor, "risk_list_removed", f"risk_list.{kind}", ref, now, list=action, entry=entry.id)
    return len(entries)


def remove_entry_by_id(session: Session, entry_id: int, actor: str, now: dt.datetime) -> dict[str, Any]:
    """Take one entry in force off its list (the console's remove: a card's PAN is not at hand, its entry
    is); what was removed (`ListError` when no such entry is in force)."""
    entry = session.scalars(select(RiskListEntry).where(RiskListEntry.id == entry_id, _active(now))).first()
    if entry is None:
        raise ListError(f"no list entry {entry_id} in force")
    entry.removed_at, entry.removed_by = now, actor
    ref = entry.masked or entry.value
    audit(
        session,
        actor,
        "risk_list_removed",
        f"risk_list.{entry.list_kind}",
        ref,
        now,
        list=entry.action,
        entry=entry.id,
    )
    return {"id": entry.id, "list": entry.list_kind, "action": entry.action, "value": ref}


def active_entries(session: Session, now: dt.datetime, kind: str | None = None) -> list[dict[str, Any]]:
    """The entries in force (cards by masked PAN), newest first."""
    query = select(RiskListEntry).where(_active(now)).order_by(RiskListEntry.id.desc())
    if kind is not None:
        query = query.where(RiskListEntry.list_kind == kind)
    return [
        {
            "id": e.id,
            "list": e.list_kind,
            "action": e.action,
            "value": e.masked if e.list_kind == "card" else e.value,
            "reason": e.reason,
            "expires_at": e.expires_at.isoformat() if e.expires_at else None,
            "created_at": e.created_at.isoformat(),
            "created_by": e.created_by,
        }
        for e in session.scalars(query)
    ]


def mcc_value(mcc: str, card_kind: str | None = None) -> str:
    """The listed value of an MCC restriction: every card, or one kind of card.

    >>> mcc_value("7995"), mcc_value("7995", "credit")
    ('7995', '7995:credit')
    """
    return f"{mcc}:{card_kind}" if card_kind else mcc


_FLAGS_QUERY = text(
    "SELECT list_kind, action FROM risk_list_entries WHERE removed_at IS NULL "
    "AND (expires_at IS NULL OR expires_at > :now) AND ("
    "(list_kind = 'card' AND value = :card) OR (list_kind = 'terminal' AND value = :tid) "
    "OR (list_kind = 'merchant' AND value = :mid) OR (list_kind = 'bin' AND value = :bin) "
    "OR (list_kind = 'mcc' AND (value = :mcc OR value = :mcc_kind)))"
).bindparams(bindparam("now", type_=DateTime()))


def list_flags(
    session: Session,
    now: dt.datetime,
    pan_hash: str | None,
    tid: str,
    mid: str,
    bin_: str | None,
    mcc: str = "",
    card_kind: str | None = None,
) -> dict[str, bool]:
    """The `lists.*` facts for one request (naive UTC `now`); `mcc` is the merchant's, `card_kind` the
    card's (credit | debit)."""
    flags = dict.fromkeys(FLAGS.values(), False)
    params = {
        "now": now,
        "card": pan_hash or "",
        "tid": tid,
        "mid": mid,
        "bin": bin_ or "",
        "mcc": mcc or "-",
        "mcc_kind": mcc_value(mcc, card_kind or "debit") if mcc else "-",
    }
    for kind, action in session.connection().execute(_FLAGS_QUERY, params):
        name = FLAGS.get((kind, action))
        if name is not None:
            flags[name] = True
    return flags
