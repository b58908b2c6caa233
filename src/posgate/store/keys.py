"""Sealed-key repository: keys live in the `keys` table sealed (AES-GCM) under the local master key.

The sealing object is passed in (anything with `seal_key(key, label)` / `open_key(sealed, label)`, i.e.
`security.at_rest.CardVault`): the store never sees the master key.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

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
) -> None:
    """Insert or replace the key of `owner` for `purpose` (caller commits)."""
    sealed = sealer.seal_key(key, key_label(owner_kind, owner_ref, purpose))
    row = session.scalar(
        select(SealedKey).where(
            SealedKey.owner_kind == owner_kind,
            SealedKey.owner_ref == owner_ref,
            SealedKey.purpose == purpose,
        )
    )
    if row is None:
        session.add(
            SealedKey(owner_kind=owner_kind, owner_ref=owner_ref, purpose=purpose, sealed=sealed, kcv=kcv)
        )
    else:
        row.sealed, row.kcv = sealed, kcv


def get_keys(session: Session, sealer: KeySealer, owner_kind: str, owner_ref: str) -> dict[str, bytes]:
    """All keys of one owner, opened, by purpose."""
    rows = session.scalars(
        select(SealedKey).where(SealedKey.owner_kind == owner_kind, SealedKey.owner_ref == owner_ref)
    )
    return {
        row.purpose: sealer.open_key(row.sealed, key_label(owner_kind, owner_ref, row.purpose))
        for row in rows
    }
