"""The store's part of the composition root: `open_store` (engine, migrations, master key, the demo fixture on
an empty store, the configured issuers' routes). Used by every command that touches the store and by the
tests."""

from __future__ import annotations

import logging
from pathlib import Path

from posgate.bootstrap.seed import load_demo_fixture, store_is_empty
from posgate.config import IssuerTls, Settings
from posgate.files import private_dir, restrict_umask
from posgate.fixtures.document import read_demo_fixture
from posgate.security.at_rest import CardVault, load_or_create_keyring
from posgate.security.keyring import read_keyring
from posgate.security.keys import kcv
from posgate.store.acquirer import RouteTls, current_key_period, upsert_route
from posgate.store.audit import audit
from posgate.store.db import make_engine, migrate
from posgate.store.runtime import Store, StoreHandle

log = logging.getLogger("posgate")


def open_store(settings: Settings, load_demo: bool = True) -> StoreHandle:
    """Engine + migrations + master key; load the demo fixture into an empty store when asked."""
    restrict_umask()  # SQLite creates its WAL and SHM files itself
    private_dir(settings.data_dir, own=True)
    engine = make_engine(settings.resolved_database_url, pool_size=settings.db_threads)
    migrate(engine)
    key_path = settings.master_key_path
    created = not key_path.exists()
    vault = CardVault(load_or_create_keyring(key_path))
    vault.refresh = lambda: read_keyring(key_path)  # a ciphertext of a version another process added
    # SQLite has one writer at a time and answers in microseconds: units of work run inline on the event
    # loop (no lock waits — its busy handler sleeps in growing steps — and no GIL hand-offs).
    # PostgreSQL answers over a socket: its units of work run on a pool of threads.
    embedded = engine.dialect.name == "sqlite"
    store = Store(engine, threads=1 if embedded else settings.db_threads, inline=embedded)
    if created:
        keyring = vault.keyring
        store.transact(
            lambda s: audit(
                s,
                "system",
                "master_key_created",
                "master_key",
                f"v{keyring.current}",
                fingerprint=keyring.fingerprint(keyring.current),
                path=str(key_path),
            )
        )
    if load_demo and store.transact(store_is_empty):
        if settings.env == "production":
            log.warning("empty store: the demo fixture holds test keys and is not loaded in production")
        else:
            fixture = read_demo_fixture()
            store.transact(lambda s: load_demo_fixture(s, vault, fixture, settings.env))
            log.info("empty store: loaded the demo fixture (test keys)")
    # configured issuers last: they may override a fixture bank's route (same name)
    for issuer in settings.issuers:
        zpk = bytes.fromhex(issuer.zpk.get_secret_value())
        zak = bytes.fromhex(issuer.zak.get_secret_value()) if issuer.zak is not None else None
        store.transact(
            lambda s, i=issuer, zpk=zpk, zak=zak: upsert_route(
                s,
                vault,
                i.name,
                i.bins,
                i.host,
                i.port,
                i.mac,
                i.kind,
                (zpk, kcv(zpk)),
                (zak, kcv(zak)) if zak is not None else None,
                (i.stand_in_max_fen, i.stand_in_card_daily_fen),
                _route_tls(i.tls),
            )
        )
    store.transact(current_key_period)
    return StoreHandle(store, vault)


def _route_tls(tls: IssuerTls | None) -> RouteTls | None:
    """`[issuers.tls]` as the store keeps it: file paths made absolute (another node reads them too)."""
    if tls is None:
        return None

    def absolute(path: Path | None) -> str | None:
        return str(path.resolve()) if path is not None else None

    return RouteTls(absolute(tls.ca), absolute(tls.cert), absolute(tls.key), tls.server_name)
