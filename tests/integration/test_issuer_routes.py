"""Issuer routes in the store (store/acquirer.py): written from `[[issuers]]`, read back by the host — with
TLS, and without a ZAK when the route does not MAC."""

from __future__ import annotations

import os

import pytest

from posgate.errors import ConfigError
from posgate.security.at_rest import CardVault
from posgate.security.keys import kcv
from posgate.store.acquirer import RouteTls, load_routes, upsert_route
from posgate.store.db import make_engine, migrate
from posgate.store.keys import get_keys
from posgate.store.models import IssuerRoute
from posgate.store.runtime import Store

ZPK = bytes.fromhex("1C1C1C1C1C1C1C1C2A2A2A2A2A2A2A2A")
ZAK = bytes.fromhex("22222222222222222222222222222222")


def test_a_route_round_trips_with_tls_and_loses_its_zak_when_it_stops_macing(database_url: str) -> None:
    store, vault = Store(make_engine(database_url)), CardVault(os.urandom(32))
    migrate(store.engine)
    tls = RouteTls("/etc/posgate/ca.pem", "/etc/posgate/acq.pem", "/etc/posgate/acq.key", "issuer.test")

    def write(mac: bool, zak: bytes | None, tls: RouteTls | None):  # type: ignore[no-untyped-def]
        return lambda s: upsert_route(
            s,
            vault,
            "Plain Bank",
            ["621234"],
            "10.0.0.7",
            7001,
            mac,
            "debit",
            (ZPK, kcv(ZPK)),
            (zak, kcv(zak)) if zak else None,
            tls=tls,
        )

    try:
        store.transact(write(True, ZAK, tls))
        (route,) = store.transact(lambda s: load_routes(s, vault))
        assert (route.mac_enabled, route.zak, route.tls) == (True, ZAK, tls)
        assert repr(route) == "RouteRecord('Plain Bank', bins=('621234',), 10.0.0.7:7001, tls)"

        store.transact(write(False, None, None))
        (route,) = store.transact(lambda s: load_routes(s, vault))
        assert (route.mac_enabled, route.zak, route.tls) == (False, None, None)
        assert set(store.transact(lambda s: get_keys(s, vault, "issuer", "Plain Bank"))) == {"ZPK"}

        def mac_on_without_zak(session) -> None:  # type: ignore[no-untyped-def]
            session.query(IssuerRoute).filter_by(name="Plain Bank").update({"mac_enabled": True})

        store.transact(mac_on_without_zak)
        with pytest.raises(ConfigError, match="issuer route 'Plain Bank' has mac = true but the store holds"):
            store.transact(lambda s: load_routes(s, vault))
    finally:
        store.close()
