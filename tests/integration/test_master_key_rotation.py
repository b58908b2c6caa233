"""Master key rotation on the store (SQLite and PostgreSQL): every sealed value re-encrypted under the new
version, the old version retired only when nothing needs it, audited; a value no key opens stops it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from posgate.bootstrap.store import open_store
from posgate.config import Settings
from posgate.errors import SecurityError
from posgate.security.at_rest import CardVault
from posgate.security.keyring import read_keyring
from posgate.store.acquirer import insert_transaction
from posgate.store.key_rotation import RotationError, rotate
from posgate.store.keys import key_label
from posgate.store.models import SealedKey, Transaction
from posgate.store.models_onboarding import AuditEvent
from posgate.store.models_simulator import SimCard
from posgate.store.rekey import SEALED_COLUMNS, reseal_batch
from posgate.store.runtime import StoreHandle

PANS = ["6229990000000012", "6228880000000016", "6229990000000020"]


@pytest.fixture
def handle(tmp_path: Path, database_url: str) -> StoreHandle:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, env="test")
    handle = open_store(settings)
    for n, pan in enumerate(PANS, 1):
        protected = handle.vault.protect_pan(pan)
        values = {
            "tid": "10000001",
            "mid": "898440153110001",
            "batch_no": "000001",
            "stan": f"{n:06d}",
            "mti": "0200",
            "processing_code": "000000",
            "business_date": dt.date(2026, 11, 26),
            "kind": "sale",
            "amount_fen": 100,
            "state": "approved",
            "pan_ciphertext": protected.ciphertext,
            "pan_hash": protected.pan_hash,
            "pan_masked": protected.masked,
        }
        handle.store.transact(lambda s, values=values: insert_transaction(s, **values))
    yield handle
    handle.store.close()


def sealed_values(handle: StoreHandle) -> dict[str, list[bytes]]:
    def read(session):  # type: ignore[no-untyped-def]
        return {
            "transactions": [bytes(v) for v in session.scalars(select(Transaction.pan_ciphertext)) if v],
            "sim_cards": [bytes(v) for v in session.scalars(select(SimCard.pan_ciphertext))],
            "keys": [bytes(row.sealed) for row in session.scalars(select(SealedKey).order_by(SealedKey.id))],
        }

    return handle.store.transact(read)


def opens_everything(handle: StoreHandle, vault: CardVault) -> set[int]:
    """The versions of every sealed value, opened with `vault` (raises if one does not open)."""
    versions: set[int] = set()
    for spec in SEALED_COLUMNS:
        after = 0
        while True:
            batch = handle.store.transact(
                lambda s, spec=spec, after=after: reseal_batch(s, vault, spec, after, 50, False)
            )
            if batch.last_id is None:
                break
            assert batch.unreadable == 0, spec.name
            versions.add(vault.current_version if batch.older == 0 else -1)
            after = batch.last_id
    return versions


def test_rotation_reseals_every_value_and_retires_the_old_key(tmp_path: Path, handle: StoreHandle) -> None:
    path = tmp_path / "data" / "master.key"
    old_key = read_keyring(path).keys[1]
    before = sealed_values(handle)
    lines: list[str] = []
    report = rotate(path, handle.store, handle.vault, wait_s=0, batch_size=2, progress=lines.append)
    assert (report.added, report.current, report.retired) == (2, 2, [1])
    assert report.resealed["transactions.pan_ciphertext"] == len(PANS)
    assert report.resealed["keys.sealed"] == len(before["keys"])
    assert any(line.startswith("retired master key version(s) 1") for line in lines)
    after = sealed_values(handle)
    assert all(v[:4] == b"pgk\x02" for values in after.values() for v in values)
    keyring = read_keyring(path)
    assert keyring.versions == [2]
    fresh = CardVault(keyring)  # another process, starting now, from the file
    assert opens_everything(handle, fresh) == {2}
    assert sorted(fresh.reveal_pan(v) for v in after["transactions"]) == sorted(PANS)
    old = CardVault(old_key)
    for value in after["transactions"] + after["sim_cards"]:
        with pytest.raises(SecurityError, match=r"^protected PAN failed authentication$"):
            old.reveal_pan(value)
    labels = handle.store.transact(
        lambda s: [
            key_label(r.owner_kind, r.owner_ref, r.purpose)
            for r in s.scalars(select(SealedKey).order_by(SealedKey.id))
        ]
    )
    for label, value in zip(labels, after["keys"], strict=True):
        assert fresh.open_key(value, label)
        with pytest.raises(SecurityError, match="failed authentication"):
            old.open_key(value, label)
    assert fresh.pan_hash(PANS[0]) == old.pan_hash(PANS[0])  # look-up hashes and their indexes stay valid
    events = handle.store.transact(
        lambda s: [
            (e.action, e.subject_ref, json.loads(e.detail))
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.subject_kind == "master_key").order_by(AuditEvent.id)
            )
        ]
    )
    assert [(a, r) for a, r, _ in events] == [
        ("master_key_created", "v1"),
        ("master_key_added", "v2"),
        ("master_key_rotated", "v2"),
    ]
    assert events[2][2]["retired"] == [1] and events[2][2]["fingerprint"] == keyring.fingerprint(2)
    assert old_key.hex() not in json.dumps(events)


def test_a_second_rotation_goes_to_version_3(tmp_path: Path, handle: StoreHandle) -> None:
    path = tmp_path / "data" / "master.key"
    rotate(path, handle.store, handle.vault, wait_s=0)
    report = rotate(path, handle.store, handle.vault, wait_s=0)
    assert (report.current, report.retired) == (3, [2])
    assert opens_everything(handle, CardVault(read_keyring(path))) == {3}


def test_a_value_no_key_opens_stops_the_rotation_before_anything_is_retired(
    tmp_path: Path, handle: StoreHandle
) -> None:
    path = tmp_path / "data" / "master.key"

    def spoil(session) -> None:  # type: ignore[no-untyped-def]
        row = session.scalars(select(Transaction).order_by(Transaction.id)).first()
        row.pan_ciphertext = b"\x00" * 40

    handle.store.transact(spoil)
    with pytest.raises(
        RotationError, match=r"values no master key version opens: transactions.pan_ciphertext 1"
    ):
        rotate(path, handle.store, handle.vault, wait_s=0)
    assert read_keyring(path).versions == [1, 2]  # nothing retired: `posgate keys reencrypt` can finish
