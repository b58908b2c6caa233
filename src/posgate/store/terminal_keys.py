"""A terminal's working-key generations and its sign-in count, in the store so every host node sees the same.

Sign-in is not authenticated (an 0800 carries no MAC), so a sign-in never takes the keys in use away:
- **current** generation: the keys the terminal uses (keys table, purposes `PIK`, `MAK`, `TDK`;
  `terminals.signed_in_period`, `signed_in_at`);
- **pending** generation: the keys issued at a sign-in and not used yet (purposes `PIK.next`, `MAK.next`,
  `TDK.next`; `terminals.pending_period`, `pending_at`). The first message that verifies under the pending
  MAK promotes it to current (`promote_pending_keys`); until then the current keys stay valid.

Every change is a compare-and-set on `terminals.pending_at` (one conditional UPDATE), so two nodes handling
the same terminal at once cannot overwrite each other's keys. `count_sign_in` is the per-TID rate limit: a
fixed window counted in the terminal's row. Plain functions of a Session; the caller commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.orm import Session

from posgate.store.acquirer import TerminalRecord, load_terminal
from posgate.store.audit import audit
from posgate.store.keys import KeySealer, get_keys, put_key
from posgate.store.models import SealedKey, Terminal

WORKING_PURPOSES = ("PIK", "MAK", "TDK")
PENDING_SUFFIX = ".next"
OWNER = "terminal"


def pending_purpose(purpose: str) -> str:
    """The keys-table purpose of a pending working key.

    >>> pending_purpose("MAK")
    'MAK.next'
    """
    return purpose + PENDING_SUFFIX


@dataclass(frozen=True, repr=False)
class StoredKeys:
    """A terminal's keys as stored, opened: TMK, and each generation by purpose (`PIK`, `MAK`, `TDK`)."""

    tmk: bytes | None
    current: dict[str, bytes]
    pending: dict[str, bytes]

    def __repr__(self) -> str:
        return f"StoredKeys(current={sorted(self.current)}, pending={sorted(self.pending)})"


def load_terminal_keys(session: Session, sealer: KeySealer, tid: str, use: str | None = None) -> StoredKeys:
    """The terminal's keys, opened; with `use`, the opening is audited as the host's (`keys_opened`)."""
    keys = get_keys(session, sealer, OWNER, tid, actor="host" if use else None, use=use)
    return StoredKeys(
        tmk=keys.get("TMK"),
        current={p: keys[p] for p in WORKING_PURPOSES if p in keys},
        pending={p: keys[pending_purpose(p)] for p in WORKING_PURPOSES if pending_purpose(p) in keys},
    )


def load_terminal_with_keys(
    session: Session, sealer: KeySealer, tid: str, use: str
) -> tuple[TerminalRecord | None, StoredKeys]:
    """The terminal's record and its keys as of one moment (the keys' opening audited as the host's).

    The row is read first with a share lock: a sign-in or a promotion, which changes the row and then the
    keys in one transaction, commits wholly before this read or waits until this unit of work ends. Read in
    two units of work (or in two statements without the lock: PostgreSQL's read committed takes a snapshot
    per statement), a promotion that commits in between gives a record that still names the pending
    generation and keys that no longer hold it — a terminal at its first sign-in then seems to hold no
    keys at all, and its sale gets `97`. SQLite serializes units of work (`BEGIN IMMEDIATE`)."""
    session.execute(select(Terminal.id).where(Terminal.tid == tid).with_for_update(read=True))
    return load_terminal(session, tid), load_terminal_keys(session, sealer, tid, use)


def _pending_is(seen: dt.datetime | None):  # type: ignore[no-untyped-def]
    return Terminal.pending_at.is_(None) if seen is None else Terminal.pending_at == seen


def _delete_keys(session: Session, tid: str, purposes: list[str]) -> None:
    if purposes:
        session.execute(
            delete(SealedKey).where(
                SealedKey.owner_kind == OWNER, SealedKey.owner_ref == tid, SealedKey.purpose.in_(purposes)
            )
        )


def offer_pending_keys(
    session: Session,
    sealer: KeySealer,
    tid: str,
    keys: dict[str, tuple[bytes, str]],
    period: int,
    now: dt.datetime,
    seen_pending_at: dt.datetime | None,
) -> bool:
    """Store `keys` (purpose → (clear key, KCV)) as the pending generation of `tid` for key period `period`,
    issued `now` — unless the pending generation changed since it was read (`seen_pending_at`, None: there
    was none). Returns True when stored; False means another node got there first: read again.

    Pending keys of an earlier period that are replaced leave a trace when the terminal has no keys in use:
    `signed_in_period` takes their period (with no keys), so the host knows the terminal may hold keys of an
    earlier period and answers a MAC it cannot verify with 97, "sign in again", rather than A0."""
    earlier = case((Terminal.pending_period < period, Terminal.pending_period), else_=None)
    changed = session.execute(
        update(Terminal)
        .where(Terminal.tid == tid, _pending_is(seen_pending_at))
        .values(
            pending_period=period,
            pending_at=now,
            signed_in_period=func.coalesce(Terminal.signed_in_period, earlier),
        )
    ).rowcount
    if not changed:
        return False
    _delete_keys(session, tid, [pending_purpose(p) for p in WORKING_PURPOSES if p not in keys])
    for purpose, (key, kcv) in keys.items():
        put_key(session, sealer, OWNER, tid, pending_purpose(purpose), key, kcv, audited=False)
    kcvs = {purpose: kcv for purpose, (_key, kcv) in keys.items()}
    audit(session, "host", "working_keys_issued", "key", f"{OWNER}/{tid}", now, kcvs=kcvs, period=period)
    return True


def promote_pending_keys(
    session: Session,
    sealer: KeySealer,
    tid: str,
    keys: dict[str, tuple[bytes, str]],
    seen_pending_at: dt.datetime,
    batch_no: str,
) -> bool:
    """The terminal MACed a message under the pending generation (`keys`, read when `pending_at` was
    `seen_pending_at`): it becomes the current one, and the keys it replaces are deleted. `batch_no` is the
    batch of that (authenticated) message. Returns False when another node promoted it first."""
    changed = session.execute(
        update(Terminal)
        .where(Terminal.tid == tid, Terminal.pending_at == seen_pending_at)
        .values(
            signed_in_period=Terminal.pending_period,
            signed_in_at=Terminal.pending_at,
            pending_period=None,
            pending_at=None,
            batch_no=batch_no,
        )
    ).rowcount
    if not changed:
        return False
    _delete_keys(session, tid, [p for p in WORKING_PURPOSES if p not in keys])
    _delete_keys(session, tid, [pending_purpose(p) for p in WORKING_PURPOSES])
    for purpose, (key, kcv) in keys.items():
        put_key(session, sealer, OWNER, tid, purpose, key, kcv, audited=False)
    kcvs = {purpose: kcv for purpose, (_key, kcv) in keys.items()}
    audit(session, "host", "working_keys_in_use", "key", f"{OWNER}/{tid}", kcvs=kcvs)
    return True


def count_sign_in(session: Session, tid: str, now: dt.datetime, window_s: float, limit: int) -> bool:
    """Count one sign-in of `tid` in its current window of `window_s` seconds (a window starts at the first
    sign-in after the previous one ended). True while the count is at most `limit`."""
    in_window = Terminal.sign_in_window_at > now - dt.timedelta(seconds=window_s)
    count = session.execute(
        update(Terminal)
        .where(Terminal.tid == tid)
        .values(
            sign_in_count=case((in_window, Terminal.sign_in_count + 1), else_=1),
            sign_in_window_at=case((in_window, Terminal.sign_in_window_at), else_=now),
        )
        .returning(Terminal.sign_in_count)
    ).scalar_one_or_none()
    return count is not None and count <= limit


def record_mac_failure(
    session: Session, tid: str, mti: str, stan: str, algorithm: str, mak_kcvs: list[str], why: str
) -> None:
    """A request whose MAC was refused (`A0`): the use of the terminal's MAK that failed, audited as the
    host's `mac_verify_failed` with the KCVs of the MAKs it was checked under — never the MAC or a key. Such
    a request stores no transaction, so without this the trail would not show the attempt."""
    audit(
        session,
        "host",
        "mac_verify_failed",
        "key",
        f"{OWNER}/{tid}",
        mti=mti,
        stan=stan,
        algorithm=algorithm,
        mak_kcvs=mak_kcvs,
        why=why,
    )
