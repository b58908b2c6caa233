"""Console TLS settings and context (`console_tls_cert`, `console_tls_key`, `console_hsts_max_age_s`):
mistakes stop with a message naming the setting and the file; TLS 1.2 or later. Without TLS the app sends
no HSTS and its cookies are not `Secure` (a browser on plain HTTP would drop them); with TLS it does both,
even behind a TLS-terminating hop that forwards plain HTTP."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from posgate.api.app import create_app
from posgate.bootstrap.stack import console_ssl_context
from posgate.config import Settings
from posgate.errors import ConfigError
from tests.e2e.certs import CertificateAuthority


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("pki"))


def test_the_console_context_serves_the_configured_certificate_over_tls12_or_later(
    ca: CertificateAuthority,
) -> None:
    console = ca.issue("console", server=True)
    context = console_ssl_context(Settings(console_tls_cert=console.cert, console_tls_key=console.key))
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE
    assert console_ssl_context(Settings()) is None


def test_unusable_files_are_named(ca: CertificateAuthority, tmp_path: Path) -> None:
    console = ca.issue("console", server=True)
    other = ca.issue("other", server=True)
    with pytest.raises(ConfigError, match=r"^console_tls_key: .*nope\.key is not a readable file$"):
        console_ssl_context(Settings(console_tls_cert=console.cert, console_tls_key=tmp_path / "nope.key"))
    with pytest.raises(ConfigError, match=r"^console_tls_cert / console_tls_key: cannot use .*"):
        console_ssl_context(Settings(console_tls_cert=console.cert, console_tls_key=other.key))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"console_tls_cert": "c.pem"}, "console_tls_cert and console_tls_key go together"),
        ({"console_tls_key": "k.pem"}, "console_tls_cert and console_tls_key go together"),
        ({"console_hsts_max_age_s": -1}, "greater than or equal to 0"),
    ],
)
def test_inconsistent_settings_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def client_for(tmp_path: Path) -> Iterator[object]:
    from posgate.bootstrap.store import open_store

    handles = []

    def make(**values: object) -> TestClient:
        settings = Settings(data_dir=tmp_path / f"data{len(handles)}", env="test", **values)  # type: ignore[arg-type]
        handle = open_store(settings)
        handles.append(handle)
        return TestClient(create_app(handle, settings))

    yield make
    for handle in handles:
        handle.store.close()


def _login(client: TestClient) -> tuple[str, dict[str, str]]:
    response = client.post("/api/auth/login", json={"username": "admin", "password": "posgate-demo"})
    assert response.status_code == 200
    return response.headers["set-cookie"], dict(response.headers)


def test_hsts_and_secure_cookies_only_with_console_tls(client_for, ca: CertificateAuthority) -> None:  # type: ignore[no-untyped-def]
    plain_cookie, plain_headers = _login(client_for())
    assert "strict-transport-security" not in plain_headers
    assert "secure" not in plain_cookie.lower()
    console = ca.issue("console", server=True)
    tls = client_for(console_tls_cert=console.cert, console_tls_key=console.key, console_hsts_max_age_s=600)
    tls_cookie, tls_headers = _login(tls)  # the test client speaks plain HTTP: a TLS-terminating hop
    assert tls_headers["strict-transport-security"] == "max-age=600"
    assert "; secure" in tls_cookie.lower()
    language = tls.get("/login?lang=en")
    assert "; secure" in language.headers["set-cookie"].lower()
    no_hsts = client_for(console_tls_cert=console.cert, console_tls_key=console.key, console_hsts_max_age_s=0)
    assert "strict-transport-security" not in _login(no_hsts)[1]
