"""TLS on issuer links, end to end: the issuer simulator listens with TLS (`issuer_sim_tls_*`), the host's
routes say `[issuers.tls]`, and a terminal's sale crosses the link. Certificates come from trustme (a test
CA made for the run). A link whose CA, server name or client certificate does not fit stays down (91 at
once) and its log line says why; the simulator's TLS port does not speak plain TCP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from posgate.bootstrap.stack import Running, start_all
from posgate.config import IssuerConfig, IssuerTls, Settings
from posgate.errors import ConfigError
from posgate.fixtures.document import read_demo_fixture
from posgate.terminal import CardProfile, TerminalClient, demo_card, demo_terminal_state

from .conftest import stack_settings

ISSUER_NAME = "issuer.example.test"
CARD_A = demo_card("6229990000000012")  # Demo Bank A
CARD_B = demo_card("6228880000000024")  # Demo Bank B


@dataclass
class Pki:
    """PEM files: the issuers' CA and server certificate, another CA, and an acquirer client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    other_ca: Path
    client_ca: Path
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, other, acquirers = trustme.CA(), trustme.CA(), trustme.CA()
    server = ca.issue_cert(ISSUER_NAME)
    client = acquirers.issue_cert("acquirer.example.test")
    pki = Pki(*(folder / name for name in ("ca", "srv", "srv.key", "other", "cca", "cli", "cli.key")))
    ca.cert_pem.write_to_path(str(pki.ca))
    other.cert_pem.write_to_path(str(pki.other_ca))
    acquirers.cert_pem.write_to_path(str(pki.client_ca))
    for blob in server.cert_chain_pems:
        blob.write_to_path(str(pki.server_cert), append=True)
    server.private_key_pem.write_to_path(str(pki.server_key))
    for blob in client.cert_chain_pems:
        blob.write_to_path(str(pki.client_cert), append=True)
    client.private_key_pem.write_to_path(str(pki.client_key))
    return pki


def demo_routes(**tls: IssuerTls | None) -> list[IssuerConfig]:
    """The demo fixture's two banks as `[[issuers]]` entries (same keys), with the TLS given per bank."""
    routes = []
    for bank in read_demo_fixture().banks:
        key = "a" if bank.name.endswith("A") else "b"
        routes.append(
            IssuerConfig(
                name=bank.name,
                bins=bank.bins,
                port=1,
                zpk=bank.zpk,
                zak=bank.zak,
                kind=bank.kind,
                tls=tls[key],
            )
        )
    return routes


def tls_settings(
    tmp_path: Path, database_url: str, pki: Pki, client_ca: bool, **tls: IssuerTls | None
) -> Settings:
    return stack_settings(
        tmp_path,
        database_url,
        issuer_sim_tls_cert=pki.server_cert,
        issuer_sim_tls_key=pki.server_key,
        issuer_sim_tls_client_ca=pki.client_ca if client_ca else None,
        issuers=demo_routes(**tls),
    )


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Running]:
    stack = await start_all(settings)
    try:
        yield stack
    finally:
        await stack.stop()


async def sales(stack: Running, *cards: CardProfile) -> list[str]:
    """One terminal signs in and sells 10.00 on each card; the response codes."""
    host, port = stack.pos_address
    async with TerminalClient(host, port, demo_terminal_state(), timeout_s=5.0) as terminal:
        assert (await terminal.sign_in()).approved
        return [(await terminal.sale(card, "123456", 1_000)).response_code for card in cards]


async def test_a_sale_runs_through_a_tls_issuer_link(tmp_path: Path, database_url: str, pki: Pki) -> None:
    tls = IssuerTls(ca=pki.ca, server_name=ISSUER_NAME)
    settings = tls_settings(tmp_path, database_url, pki, client_ca=False, a=tls, b=tls)
    async with running(settings) as stack:
        assert stack.host is not None and stack.issuers is not None
        assert all(link.is_up and link.ssl is not None for link in stack.host.services.links.by_name.values())
        assert await sales(stack, CARD_A, CARD_B) == ["00", "00"]
        assert await plain_tcp_gets_no_answer(stack.issuers.ports["Demo Bank A"])


async def test_an_issuer_that_wants_a_client_certificate_gets_the_routes(
    tmp_path: Path, database_url: str, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="posgate")
    with_cert = IssuerTls(ca=pki.ca, server_name=ISSUER_NAME, cert=pki.client_cert, key=pki.client_key)
    without = IssuerTls(ca=pki.ca, server_name=ISSUER_NAME)
    settings = tls_settings(tmp_path, database_url, pki, client_ca=True, a=with_cert, b=without)
    async with running(settings) as stack:
        assert await sales(stack, CARD_A, CARD_B) == ["00", "91"]  # B: no client certificate, link down
    broken = [r.getMessage() for r in caplog.records if r.getMessage().startswith("issuer Demo Bank B link")]
    assert broken[0].startswith("issuer Demo Bank B link broken: issuer Demo Bank B link closed")
    assert broken[0].endswith(
        ": closed by the issuer before any answer: if it wants a client certificate, set tls.cert and tls.key"
    )


@pytest.mark.parametrize(
    ("what", "expected"),
    [("another CA", "certificate verify failed"), ("another name", "Hostname mismatch")],
)
async def test_a_link_whose_certificate_does_not_verify_stays_down_and_says_why(
    tmp_path: Path, database_url: str, pki: Pki, caplog: pytest.LogCaptureFixture, what: str, expected: str
) -> None:
    caplog.set_level(logging.INFO, logger="posgate")
    good = IssuerTls(ca=pki.ca, server_name=ISSUER_NAME)
    if what == "another CA":
        bad = IssuerTls(ca=pki.other_ca, server_name=ISSUER_NAME)
    else:
        bad = IssuerTls(ca=pki.ca, server_name="someone-else.example.test")
    settings = tls_settings(tmp_path, database_url, pki, client_ca=False, a=bad, b=good)
    async with running(settings) as stack:
        assert await sales(stack, CARD_A, CARD_B) == ["91", "00"]
    failed = [r.getMessage() for r in caplog.records if "TLS handshake" in r.getMessage()]
    assert failed and failed[0].startswith("issuer Demo Bank A: TLS handshake with 127.0.0.1:")
    assert expected in failed[0]


async def test_a_plain_route_to_a_tls_issuer_stays_down(tmp_path: Path, database_url: str, pki: Pki) -> None:
    settings = tls_settings(tmp_path, database_url, pki, client_ca=False, a=None, b=None)
    async with running(settings) as stack:
        assert await sales(stack, CARD_A) == ["91"]


async def test_a_route_naming_a_missing_ca_file_stops_the_start(
    tmp_path: Path, database_url: str, pki: Pki
) -> None:
    missing = tmp_path / "nowhere.pem"
    tls = IssuerTls(ca=pki.ca, server_name=ISSUER_NAME)
    settings = tls_settings(tmp_path, database_url, pki, client_ca=False, a=IssuerTls(ca=missing), b=tls)
    with pytest.raises(ConfigError) as caught:
        await start_all(settings)
    assert str(caught.value) == f"issuer 'Demo Bank A' tls.ca: {missing} is not a readable file"


async def plain_tcp_gets_no_answer(port: int) -> bool:
    """A sign-on in clear to a TLS port: the simulator answers nothing readable and closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        sign_on = b"0800822000000000000004000000000000001126101530000001001"
        writer.write(len(sign_on).to_bytes(2, "big") + sign_on)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(4096), 5)
        return b"0810" not in data
    finally:
        writer.close()
