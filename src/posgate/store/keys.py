"""Sealed-key repository: keys live in the `keys` table sealed (AES-GCM) under the local master key.

The sealing object is passed in (anything with `seal_key(key, label)` / `open_key(sealed, label)`, i.e.
`security.at_rest.CardVault`): the store never sees the master key.

Key use is audited here, in the unit of work that uses the key (`store.audit`, subject kind `key`): every
key stored (`key_stored`: generated, imported or replaced — its KCV and the one it replaced) and every
opening of an owner's keys from the store (`keys_opened`: by whom, for what). Opened keys are then held in
memory (the host caches a terminal's working keys until its next sign-in), so the per-message uses — each
MAC checked, each PIN block translated — are not events of their own: every transaction's stored trace
names them (`VerifyMac`, `TranslatePin`); a MAC refused stores no transaction and is audited instead
(`terminal_keys.record_mac_failure`). An audit detail holds KCVs and purposes, never key material.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.store.audit import audit
from posgate.store.models import SealedKey


class KeySealer(Protocol):
    def seal_key(self, key: bytes, label: str) -> bytes: ...

    def open_key(self, sealed: bytes, label: str) -> bytes: ...


def key_label(owner_kind: str, owner_ref: str, purpose: str) -> str:
    return f"{owner_kind}/{owner_ref}/{purpose}"


def put_key(
    session: Session,
    sealer: KeySealer,
    owner_kind: str,
    owner_ref: str,
    purpose: str,
    key: bytes,
    kcv: str,
    actor: str = "host",
    audited: bool = True,
) -> bool:
    """Insert or replace the key of `owner` for `purpose` (caller commits); audited as `key_stored` unless
    the caller audits the change itself (`audited=False`). The same key again (same KCV) changes nothing:
    returns False."""
    label = key_label(owner_kind, owner_ref, purpose)
    row = session.scalar(
        select(SealedKey).where(
            SealedKey.owner_kind == owner_kind,
            SealedKey.owner_ref == owner_ref,
            SealedKey.purpose == purpose,
        )
    )
    if row is not None and row.kcv == kcv:
        return False
    sealed = sealer.seal_key(key, label)
    replaced = row.kcv if row is not None else None
    if row is None:
        session.add(
            SealedKey(owner_kind=owner_kind, owner_ref=owner_ref, purpose=purpose, sealed=sealed, kcv=kcv)
        )
    else:
        row.sealed, row.kcv = sealed, kcv
    if audited:
        audit(session, actor, "key_stored", "key", label, kcv=kcv, replaced_kcv=replaced)
    return True


def get_keys(
    session: Session,
    sealer: KeySealer,
    owner_kind: str,
    owner_ref: str,
    actor: str | None = None,
    use: str | None = None,
) -> dict[str, bytes]:
    """All keys of one owner, opened, by purpose. With `actor`, the opening is audited (`keys_opened`,
    with the purposes opened and `use`)."""
    rows = list(
        session.scalars(
            select(SealedKey).where(SealedKey.owner_kind == owner_kind, SealedKey.owner_ref == owner_ref)
        )
    )
    opened = {
        row.purpose: sealer.open_key(row.sealed, key_label(owner_kind, owner_ref, row.purpose))
        for row in rows
    }
    if actor is not None and rows:
        audit(
            session,
            actor,
            "keys_opened",
            "key",
            f"{owner_kind}/{owner_ref}",
            purposes=sorted(opened),
            kcvs={row.purpose: row.kcv for row in rows},
            use=use,
        )
    return opened
