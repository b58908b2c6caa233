"""TLS on the POS port (issue 9, build item 2): a sale over TLS end to end with the terminal simulator —
the library and `posgate terminal` — and the host refusing terminals without the client certificate it
requires. The certificates come from a test CA made with `cryptography`."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from posgate.bootstrap.stack import Running, start_all
from posgate.config import Settings
from posgate.logs import configure_logging
from posgate.security.pos_tls import client_context
from posgate.terminal import TerminalClient, TerminalConnectionError, demo_card, demo_terminal_state

from . import pos_wire
from .certs import CertificateAuthority, Issued
from .conftest import stack_settings
from .pos_wire import FrameReader

OK_CARD = demo_card("6229990000000012")


class Pki:
    def __init__(self, folder: Path) -> None:
        self.ca = CertificateAuthority(folder)
        self.host = self.ca.issue("posgate-host", server=True)
        self.terminal = self.ca.issue("10000001", server=False)
        self.rogue_ca = CertificateAuthority(folder, "rogue CA")
        self.rogue_terminal = self.rogue_ca.issue("10000001-rogue", server=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


StackFactory = Callable[..., Awaitable[tuple[Running, Settings]]]


@pytest.fixture
async def tls_stack(tmp_path: Path, pki: Pki) -> AsyncIterator[StackFactory]:
    started: list[Running] = []

    async def start(client_auth: str = "required") -> tuple[Running, Settings]:
        settings = stack_settings(
            tmp_path,
            f"sqlite:///{tmp_path / 'posgate.sqlite'}",
            pos_tls_cert=pki.host.cert,
            pos_tls_key=pki.host.key,
            pos_tls_client_ca=pki.ca.path,
            pos_tls_client_auth=client_auth,
        )
        configure_logging(settings.data_dir, "INFO", console=False)
        running = await start_all(settings)
        started.append(running)
        return running, settings

    yield start
    for running in started:
        await running.stop()


def terminal(address: tuple[str, int], pki: Pki, own: Issued | None) -> TerminalClient:
    context = client_context(pki.ca.path, own.cert if own else None, own.key if own else None)
    return TerminalClient(*address, demo_terminal_state(), timeout_s=5.0, tls=context)


def host_log(settings: Settings) -> str:
    return (settings.data_dir / "posgate.log").read_text(encoding="utf-8")


async def test_a_sale_over_tls_with_a_client_certificate(tls_stack: StackFactory, pki: Pki) -> None:
    running, settings = await tls_stack("required")
    async with terminal(running.pos_address, pki, pki.terminal) as client:
        assert (await client.sign_in()).approved
        sale = await client.sale(OK_CARD, "123456", 12_34)
        assert sale.approved, sale.summary()
        assert sale.mac_ok
    assert "terminal certificate 10000001" in host_log(settings)


async def test_a_terminal_without_the_required_certificate_is_refused(
    tls_stack: StackFactory, pki: Pki
) -> None:
    running, settings = await tls_stack("required")
    for own in (None, pki.rogue_terminal):  # no certificate; one the configured CA did not sign
        with pytest.raises(TerminalConnectionError, match=r"TLS|closed|reset|lost"):
            async with terminal(running.pos_address, pki, own) as client:
                await client.sign_in()
    # plain TCP on the TLS port: the bytes are no TLS handshake, the connection is closed unanswered
    reader, writer = await asyncio.open_connection(*running.pos_address)
    writer.write(pos_wire.echo())
    assert await asyncio.wait_for(FrameReader(reader).next(), 5) is None
    writer.close()
    text = host_log(settings)
    assert text.count("TLS handshake with 127.0.0.1 failed") >= 2
    assert "rc=00" not in text.split("link up")[-1]  # nothing was served to any of them


async def test_optional_client_certificates_serve_terminals_with_and_without(
    tls_stack: StackFactory, pki: Pki
) -> None:
    running, settings = await tls_stack("optional")
    for own in (None, pki.terminal):
        async with terminal(running.pos_address, pki, own) as client:
            assert (await client.echo()).approved
    with pytest.raises(TerminalConnectionError, match=r"TLS|closed|reset|lost"):  # does not verify
        async with terminal(running.pos_address, pki, pki.rogue_terminal) as client:
            await client.echo()
    assert host_log(settings).count("terminal certificate 10000001") == 1


async def test_the_terminal_refuses_a_host_its_ca_did_not_certify(tls_stack: StackFactory, pki: Pki) -> None:
    running, _ = await tls_stack("none")
    context = client_context(pki.rogue_ca.path)
    client = TerminalClient(*running.pos_address, demo_terminal_state(), timeout_s=5.0, tls=context)
    with pytest.raises(TerminalConnectionError, match="TLS: the host's certificate does not verify"):
        await client.connect()


@pytest.mark.slow
async def test_the_terminal_command_sells_over_tls(tls_stack: StackFactory, pki: Pki, tmp_path: Path) -> None:
    running, _ = await tls_stack("required")
    _, port = running.pos_address
    args = ["sale", "12.34", "--port", str(port), "--state-file", str(tmp_path / "t.json")]
    tls = [
        "--tls-ca",
        str(pki.ca.path),
        "--tls-cert",
        str(pki.terminal.cert),
        "--tls-key",
        str(pki.terminal.key),
    ]
    sale = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "posgate",
        "terminal",
        *args,
        *tls,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    out, err = await asyncio.wait_for(sale.communicate(), 60)
    assert sale.returncode == 0, err.decode()
    assert "APPROVED" in out.decode().upper(), out.decode()
    # without the client certificate the host refuses: exit status 3 (cannot reach / connection lost)
    refused = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "posgate",
        "terminal",
        *args,
        "--tls-ca",
        str(pki.ca.path),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(refused.communicate(), 60)
    assert refused.returncode == 3, err.decode()
    assert "TLS" in err.decode()
