"""Terminal provisioning: TIDs with a fresh TMK each (sealed where the host's sign-in reads it) and their MAC
algorithm (ANSI X9.19 unless the terminal can only do the legacy CUP ECB), the TMK's delivery as a TR-31 key
block under the acquirer's KTK, and — for the simulator only, never in production — the data of a terminal
profile. The clear TMK never leaves through the API.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.errors import SecurityError
from posgate.merchants.errors import FieldError, NotFound, OnboardingError, StateConflict
from posgate.merchants.identifiers import insert_unique, next_tid
from posgate.merchants.keyblock import wrap_tmk
from posgate.security.keys import generate_key, kcv
from posgate.security.pos_mac import MacAlgorithm
from posgate.store.audit import audit
from posgate.store.keys import KeySealer, get_keys, put_key
from posgate.store.models import Merchant, SealedKey, Terminal

MAX_TERMINALS_PER_REQUEST = 20
KTK_OWNER = ("acquirer", "KTK")


class Refused(OnboardingError):
    """The action is not allowed in this deployment."""

    code = "forbidden"


@dataclass(frozen=True)
class Tr31Export:
    tid: str
    key_block: str
    tmk_kcv: str
    ktk_kcv: str


@dataclass(frozen=True)
class ProfileData:
    """What a simulator profile needs. Holds the clear TMK: test deployments only."""

    tid: str
    mid: str
    nii: str
    tmk_hex: str = field(repr=False)
    mac_algorithm: str = MacAlgorithm.X919.value


def get_merchant(session: Session, mid: str) -> Merchant:
    row = session.scalar(select(Merchant).where(Merchant.mid == mid))
    if row is None:
        raise NotFound("no merchant with this MID")  # (15 digits: error masking would hide it)
    return row


def get_terminal(session: Session, tid: str) -> Terminal:
    row = session.scalar(select(Terminal).where(Terminal.tid == tid))
    if row is None:
        raise NotFound(f"no terminal with TID {tid}")
    return row


DEFAULT_MAC_ALGORITHM = MacAlgorithm.X919.value


def mac_algorithm_of(value: object) -> str:
    """A MAC algorithm as given to the API or the CLI; `FieldError("mac_algorithm")` if it is not one."""
    if not isinstance(value, str):
        raise FieldError("mac_algorithm", f"must be x919 or cup_ecb, got a {type(value).__name__}")
    try:
        return MacAlgorithm.parse(value).value
    except SecurityError as exc:
        raise FieldError("mac_algorithm", str(exc).removeprefix("MAC algorithm ")) from None


def provision_terminals(
    session: Session,
    sealer: KeySealer,
    merchant: Merchant,
    count: int,
    actor: str,
    now: dt.datetime,
    mac_algorithm: str = DEFAULT_MAC_ALGORITHM,
) -> list[str]:
    """Create `count` terminals (status testing) of `merchant`, each with a fresh TMK and the MAC algorithm
    `mac_algorithm` (X9.19 unless the terminal can only compute CUP ECB); returns the TIDs."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_TERMINALS_PER_REQUEST:
        raise FieldError("terminals", f"must be 1 to {MAX_TERMINALS_PER_REQUEST}, got {count!r}")
    mac_algorithm = mac_algorithm_of(mac_algorithm)
    if merchant.status not in ("testing", "live"):
        raise StateConflict(f"the merchant is {merchant.status}; terminals need it testing or live")
    tids = []
    for _ in range(count):

        def insert(tid: str) -> Terminal:
            row = Terminal(
                tid=tid,
                merchant_id=merchant.id,
                status="testing",
                created_at=now,
                mac_algorithm=mac_algorithm,
            )
            session.add(row)
            return row

        terminal = insert_unique(session, lambda: next_tid(session), insert)
        tmk = generate_key()
        tmk_kcv = kcv(tmk)
        put_key(session, sealer, "terminal", terminal.tid, "TMK", tmk, tmk_kcv, actor=actor)
        audit(
            session,
            actor,
            "provision",
            "terminal",
            terminal.tid,
            now,
            mid=merchant.mid,
            tmk_kcv=tmk_kcv,
            mac_algorithm=mac_algorithm,
        )
        tids.append(terminal.tid)
    return tids


def key_kcv(session: Session, owner_kind: str, owner_ref: str, purpose: str) -> str | None:
    return session.scalar(
        select(SealedKey.kcv).where(
            SealedKey.owner_kind == owner_kind, SealedKey.owner_ref == owner_ref, SealedKey.purpose == purpose
        )
    )


def key_transfer_key(session: Session, sealer: KeySealer, actor: str, now: dt.datetime) -> tuple[bytes, str]:
    """The acquirer's KTK (and its KCV), created on first use."""
    key = get_keys(session, sealer, *KTK_OWNER).get("KTK")
    if key is None:
        key = generate_key()
        put_key(session, sealer, *KTK_OWNER, "KTK", key, kcv(key), actor=actor)
        session.flush()
        audit(session, actor, "create_ktk", "key", "acquirer/KTK", now, kcv=kcv(key))
    return key, kcv(key)


def _usable_tmk(session: Session, sealer: KeySealer, tid: str) -> tuple[Terminal, bytes]:
    terminal = get_terminal(session, tid)
    if terminal.status == "closed":
        raise StateConflict(f"terminal {tid} is closed; its TMK is not delivered")
    tmk = get_keys(session, sealer, "terminal", tid).get("TMK")
    if tmk is None:
        raise StateConflict(f"terminal {tid} has no TMK")
    return terminal, tmk


def export_tr31(session: Session, sealer: KeySealer, tid: str, actor: str, now: dt.datetime) -> Tr31Export:
    """The terminal's TMK as a TR-31 key block under the KTK (audited)."""
    _terminal, tmk = _usable_tmk(session, sealer, tid)
    ktk, ktk_kcv = key_transfer_key(session, sealer, actor, now)
    export = Tr31Export(tid=tid, key_block=wrap_tmk(ktk, tmk), tmk_kcv=kcv(tmk), ktk_kcv=ktk_kcv)
    audit(session, actor, "export_tmk_tr31", "terminal", tid, now, tmk_kcv=export.tmk_kcv, ktk_kcv=ktk_kcv)
    return export


def simulator_profile(
    session: Session, sealer: KeySealer, tid: str, env: str, actor: str, now: dt.datetime
) -> ProfileData:
    """The data of a simulator profile file (clear TMK): refused when POSGATE_ENV=production (audited)."""
    if env == "production":
        raise Refused("simulator profiles hold the clear TMK and are refused when POSGATE_ENV=production")
    terminal, tmk = _usable_tmk(session, sealer, tid)
    merchant = session.get(Merchant, terminal.merchant_id)
    assert merchant is not None
    audit(session, actor, "export_tmk_profile", "terminal", tid, now, tmk_kcv=kcv(tmk))
    return ProfileData(
        tid=tid,
        mid=merchant.mid,
        nii=terminal.nii,
        tmk_hex=tmk.hex().upper(),
        mac_algorithm=terminal.mac_algorithm,
    )
