"""Re-encryption under the current master key version: every sealed value in the store — PANs
(`transactions`, `sim_cards`), sealed keys (`keys`), the applicants' ID and settlement card numbers
(`applications`) — is opened with whichever version the vault holds that sealed it and, if that is not the
current version, sealed again under it. Plain functions of a Session: one batch of rows per unit of work,
so a running host waits at most one short batch for the database.

Each row is written with a conditional UPDATE (`WHERE id = … AND <column> = <the value read>`): a value
that another process replaced meanwhile (a sign-in storing new working keys) is left to that process,
which seals under the current version already.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from posgate.errors import SecurityError
from posgate.store.keys import key_label
from posgate.store.models_onboarding import CARD_LABEL, ID_NUMBER_LABEL
from posgate.store.schema import metadata


class Resealer(Protocol):
    """What re-encryption needs of the vault (`security.at_rest.CardVault`)."""

    @property
    def current_version(self) -> int: ...

    def reveal_pan_with_version(self, ciphertext: bytes) -> tuple[str, int]: ...

    def protect_pan(self, pan: str) -> Any: ...

    def open_key_with_version(self, sealed: bytes, label: str) -> tuple[bytes, int]: ...

    def seal_key(self, key: bytes, label: str) -> bytes: ...


@dataclass(frozen=True)
class SealedColumn:
    """A column of sealed values: a PAN (`pan`) or a key or personal value sealed under a label (`key`)."""

    table: str
    column: str
    kind: str
    label_columns: tuple[str, ...] = ()
    fixed_label: str | None = None

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"

    def label(self, row: Any) -> str:
        if self.fixed_label is not None:
            return self.fixed_label
        return key_label(*(getattr(row, c) for c in self.label_columns))


SEALED_COLUMNS = (
    SealedColumn("transactions", "pan_ciphertext", "pan"),
    SealedColumn("sim_cards", "pan_ciphertext", "pan"),
    SealedColumn("keys", "sealed", "key", label_columns=("owner_kind", "owner_ref", "purpose")),
    SealedColumn("applications", "id_number_sealed", "key", fixed_label=ID_NUMBER_LABEL),
    SealedColumn("applications", "settlement_card_sealed", "key", fixed_label=CARD_LABEL),
)


@dataclass(frozen=True)
class Batch:
    """One batch of one column: the last row id read (None: no rows left), rows read, values sealed
    again, values under an older version left (changed meanwhile), values no key of the vault opens."""

    last_id: int | None
    seen: int = 0
    resealed: int = 0
    older: int = 0
    unreadable: int = 0


def _open(vault: Resealer, spec: SealedColumn, value: bytes, row: Any) -> tuple[Any, int]:
    if spec.kind == "pan":
        return vault.reveal_pan_with_version(value)
    return vault.open_key_with_version(value, spec.label(row))


def _seal(vault: Resealer, spec: SealedColumn, clear: Any, row: Any) -> bytes:
    if spec.kind == "pan":
        return bytes(vault.protect_pan(clear).ciphertext)
    return vault.seal_key(clear, spec.label(row))


def reseal_batch(
    session: Session, vault: Resealer, spec: SealedColumn, after_id: int, limit: int, write: bool = True
) -> Batch:
    """The next `limit` rows after `after_id` (by id): each value not under the current version is sealed
    again (`write`), or only counted (`write=False`: a census)."""
    table: Table = metadata.tables[spec.table]
    column = table.c[spec.column]
    rows = session.execute(
        select(table.c.id, column, *(table.c[c] for c in spec.label_columns))
        .where(table.c.id > after_id, column.is_not(None))
        .order_by(table.c.id)
        .limit(limit)
    ).all()
    if not rows:
        return Batch(last_id=None)
    current = vault.current_version
    resealed = older = unreadable = 0
    for row in rows:
        value = bytes(getattr(row, spec.column))
        try:
            clear, version = _open(vault, spec, value, row)
        except SecurityError:
            unreadable += 1
            continue
        if version == current:
            continue
        if not write:
            older += 1
            continue
        changed = session.execute(
            update(table)
            .where(table.c.id == row.id, column == value)
            .values({spec.column: _seal(vault, spec, clear, row)})
            .execution_options(synchronize_session=False)
        ).rowcount
        resealed += changed
        older += 1 - changed
    return Batch(rows[-1].id, len(rows), resealed, older, unreadable)
