"""Provider credentials sealed in the `keys` table (SQLite and PostgreSQL): stored and opened audited, the
rows hold no clear key material, and the opened credentials sign as the originals did."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from posgate.security.at_rest import CardVault, load_or_create_master_key
from posgate.store.db import make_engine, migrate
from posgate.store.models import SealedKey
from posgate.store.models_onboarding import AuditEvent
from posgate.store.runtime import Store
from posgate.wallets import credentials, rsakeys

KEY, PLATFORM = rsakeys.generate(), rsakeys.generate()
APIV3 = b"0123456789abcdef0123456789abcdef"


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[tuple[Store, CardVault]]:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=2)
    yield store, CardVault(load_or_create_master_key(tmp_path / "master.key"))
    store.close()


def test_sealed_credentials_round_trip_audited_and_opaque(store: tuple[Store, CardVault]) -> None:
    db, vault = store
    creds = credentials.Credentials(
        "wechat", "1900000109", "wx1", "SER1", KEY, {"PUB_KEY_ID_1": PLATFORM.public_key()}, APIV3
    )
    db.transact(lambda s: credentials.seal(s, vault, creds, actor="alice"))
    opened = db.transact(
        lambda s: credentials.open_credentials(s, vault, "wechat", "1900000109", actor="host")
    )
    assert opened is not None and opened == creds
    assert opened.apiv3_key == APIV3
    assert rsakeys.verify(KEY.public_key(), b"m", rsakeys.sign(opened.private_key, b"m"))
    assert rsakeys.fingerprint(opened.provider_keys["PUB_KEY_ID_1"]) == rsakeys.fingerprint(PLATFORM)

    def rows(session):  # type: ignore[no-untyped-def]
        keys = list(session.scalars(select(SealedKey).where(SealedKey.owner_kind == "wallet")))
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.subject_kind == "key")))
        return [(k.purpose, bytes(k.sealed), k.kcv) for k in keys], [(e.action, e.actor) for e in events]

    stored, events = db.transact(rows)
    assert sorted(p for p, _, _ in stored) == ["apiv3_key", "config", "private_key"]
    pem_body = rsakeys.private_pem(KEY).split(b"\n")[1]
    for _, sealed, _ in stored:
        assert APIV3 not in sealed and pem_body not in sealed
    assert dict((p, k) for p, _, k in stored)["private_key"] == rsakeys.fingerprint(KEY)
    assert ("key_stored", "alice") in events and ("keys_opened", "host") in events
    assert db.transact(lambda s: credentials.open_credentials(s, vault, "alipay", "1900000109")) is None
