"""TLS on the web console and the REST API (issue 9, build item 2): `posgate up` with `console_tls_cert`
and `console_tls_key` serves HTTPS and says so in its banner; a real sign-in and API calls over loopback
HTTPS, verified against a test CA made with `cryptography`; HSTS and `Secure` cookies; no plain HTTP on
that port; a client that does not trust the CA is refused by its own verification."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .certs import CertificateAuthority, Issued

pytestmark = pytest.mark.default_risk_rules  # the host's own default risk rules

POSGATE = [sys.executable, "-m", "posgate"]


class Pki:
    def __init__(self, folder: Path) -> None:
        self.ca = CertificateAuthority(folder)
        self.console: Issued = self.ca.issue("posgate-console", server=True)
        self.other_ca = CertificateAuthority(folder, "other CA")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("console-pki"))


@pytest.fixture(scope="module")
def https_up(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[str]:
    """`posgate up` with console TLS; yields the console's URL as its banner prints it."""
    folder = tmp_path_factory.mktemp("up")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSGATE_")}
    env.update(
        POSGATE_CONSOLE_TLS_CERT=str(pki.console.cert),
        POSGATE_CONSOLE_TLS_KEY=str(pki.console.key),
        POSGATE_ENV="test",
        POSGATE_OPS_PORT="0",
    )
    proc = subprocess.Popen(
        [
            *POSGATE,
            "up",
            "--data-dir",
            str(folder / "data"),
            "--pos-port",
            "0",
            "--issuer-ports",
            "0,0",
            "--console-port",
            "0",
        ],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = ""
        for line in proc.stdout:
            if line.startswith("posgate console "):
                banner = line.strip()
            if line.startswith("posgate ready pos="):
                break
        assert banner.startswith("posgate console https://127.0.0.1:"), banner
        yield banner.split(" ", 2)[2]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def trusting(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca.path))


@pytest.mark.slow
def test_a_sign_in_and_api_calls_over_https(https_up: str, pki: Pki) -> None:
    with httpx.Client(base_url=https_up, verify=trusting(pki), timeout=30) as api:
        login = api.post("/api/auth/login", json={"username": "admin", "password": "posgate-demo"})
        assert login.status_code == 200, login.text
        assert login.url.scheme == "https"
        cookie = login.headers["set-cookie"]
        assert "posgate_session=" in cookie
        assert "; secure" in cookie.lower() and "; httponly" in cookie.lower(), cookie
        assert login.headers["strict-transport-security"] == "max-age=31536000"
        csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
        me = api.get("/api/auth/me")
        assert me.status_code == 200 and me.json()["username"] == "admin"
        created = api.post(
            "/api/users",
            json={"username": "tls-reviewer", "password": "a long enough password 1", "role": "reviewer"},
            headers=csrf,
        )
        assert created.status_code == 201, created.text
        users = api.get("/api/users")
        assert "tls-reviewer" in {u["username"] for u in users.json()}
        page = api.get("/login")
        assert page.status_code == 200 and "strict-transport-security" in page.headers


@pytest.mark.slow
def test_the_https_port_speaks_no_plain_http(https_up: str) -> None:
    plain = https_up.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(plain + "login", timeout=10)


@pytest.mark.slow
def test_a_client_that_does_not_trust_the_ca_is_refused(https_up: str, pki: Pki) -> None:
    wrong = ssl.create_default_context(cafile=str(pki.other_ca.path))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.post(
            https_up + "api/auth/login",
            json={"username": "admin", "password": "posgate-demo"},
            verify=wrong,
            timeout=10,
        )
