"""Transactions in doubt: rows a host left `pending` because it died while handling them (most often while
it waited for the issuer, which may have debited the card already). Plain functions of a Session.

A row counts as in doubt once it is older than `in_doubt_after_s` (longer than the issuer time-out plus a
margin, so a live node still waiting for its issuer is left alone). Any host node may resolve it: the claim
is one conditional UPDATE (`state = 'pending' AND created_at < cutoff`), so of two nodes — or of a node
and the live request that finally gets its answer — exactly one wins, and the loser changes nothing.

What the resolution does, per kind (the terminal never got an answer, so it must not be charged):

- sale, preauth, completion, void, completion void, preauth void: `timed_out` (98), its 0420 queued (SAF);
- refund (a 0220 advice): `timed_out` (98), its 0420 queued, its reservation on the original released;
- balance inquiry: `timed_out` (98), nothing to reverse;
- terminal reversal (0400): `approved` (00), its original reversed now (if it was not);
- settlement, batch upload: `declined` (96), nothing else: the terminal sends it again.

The 0420 is queued whenever the row was routed to an issuer, even if the host may have died before the
request left: the host cannot know, and an issuer answers a reversal of an unknown original (the simulator
keeps a tombstone, so a late original is then declined). The row keeps a minimal answer, so a terminal that
repeats the request gets it (with its own echoed fields) instead of `94`.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from posgate.store.acquirer import queue_reversal, rrn_of
from posgate.store.audit import audit
from posgate.store.models import Transaction
from posgate.store.originals import release_refund, reverse_for_terminal
from posgate.txnset import TxnState

RECOVERY_REASON_CODE = "98"  # field 39 of the 0420: no answer in time
# kinds whose request asked the issuer to move money: reversed when in doubt
REVERSED_KINDS = ("sale", "preauth", "completion", "void", "completion_void", "preauth_void", "refund")
# kind → (state, response code) the row is given
RESOLUTION: dict[str, tuple[TxnState, str]] = {
    **dict.fromkeys(REVERSED_KINDS, (TxnState.TIMED_OUT, "98")),
    "balance": (TxnState.TIMED_OUT, "98"),
    "reversal": (TxnState.APPROVED, "00"),
    "settlement": (TxnState.DECLINED, "96"),
    "batch_upload": (TxnState.DECLINED, "96"),
}
FALLBACK = (TxnState.DECLINED, "96")


@dataclass(frozen=True)
class InDoubt:
    id: int
    kind: str


@dataclass(frozen=True)
class Resolved:
    """One transaction in doubt, resolved by this call."""

    id: int
    kind: str
    state: str
    response_code: str
    reversal_queued: bool

    @property
    def rrn(self) -> str:
        return rrn_of(self.id)


def find_in_doubt(session: Session, cutoff: dt.datetime, limit: int = 100) -> list[InDoubt]:
    """Pending transactions that arrived before `cutoff` (UTC), oldest first."""
    rows = session.execute(
        select(Transaction.id, Transaction.kind)
        .where(Transaction.state == TxnState.PENDING, Transaction.created_at < cutoff)
        .order_by(Transaction.id)
        .limit(limit)
    )
    return [InDoubt(row.id, row.kind) for row in rows]


def _answer(txn: Transaction, code: str) -> str:
    """The minimal answer a repeat of the request gets: MTI, 11, 37, 39, 41, 42 (the repeat's own request
    supplies the other echoed fields)."""
    fields = {
        "t": f"{int(txn.mti) + 10:04d}",
        "11": txn.stan,
        "37": rrn_of(txn.id),
        "39": code,
        "41": txn.tid,
        "42": txn.mid,
    }
    return json.dumps(fields, sort_keys=True)


def resolve_in_doubt(
    session: Session, candidate: InDoubt, cutoff: dt.datetime, now: dt.datetime
) -> Resolved | None:
    """Claim one transaction in doubt and resolve it (see the module docstring) in this unit of work.
    None when it is no longer pending, or not old enough: another node or the request itself got there
    first."""
    state, code = RESOLUTION.get(candidate.kind, FALLBACK)
    claimed = session.execute(
        update(Transaction)
        .where(
            Transaction.id == candidate.id,
            Transaction.kind == candidate.kind,
            Transaction.state == TxnState.PENDING,
            Transaction.created_at < cutoff,
        )
        .values(
            state=state,
            response_code=code,
            rrn=rrn_of(candidate.id),
            recovered_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        return None
    txn = session.get(Transaction, candidate.id)
    assert txn is not None
    session.refresh(txn)
    txn.response_fields = _answer(txn, code)
    queued = False
    if candidate.kind in REVERSED_KINDS and txn.issuer_name and txn.transmission_dt:
        queue_reversal(session, txn, RECOVERY_REASON_CODE, now)
        queued = True
    if candidate.kind == "refund" and txn.original_id is not None:
        release_refund(session, txn.original_id, txn.amount_fen)
    if candidate.kind == "reversal":
        done = reverse_for_terminal(
            session, txn.tid, txn.stan, txn.business_date, txn.processing_code, RECOVERY_REASON_CODE, now
        )
        queued = done.reversed
    audit(
        session,
        "host",
        "in_doubt_resolved",
        "transaction",
        rrn_of(txn.id),
        now,
        kind=candidate.kind,
        state=state,
        response_code=code,
        reversal_queued=queued,
    )
    return Resolved(candidate.id, candidate.kind, state, code, queued)
