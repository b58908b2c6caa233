"""TLS contexts for the POS port and the terminal simulator, and the settings that configure them: every
mistake stops with a message naming the setting (or option) and the file."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from posgate.config import Settings
from posgate.errors import ConfigError
from posgate.security.pos_tls import client_context, server_context
from tests.e2e.certs import CertificateAuthority


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("pki"))


def test_the_server_context_asks_for_client_certificates_as_configured(ca: CertificateAuthority) -> None:
    host = ca.issue("host", server=True)
    assert server_context(host.cert, host.key).verify_mode == ssl.CERT_NONE
    required = server_context(host.cert, host.key, ca.path, "required")
    assert required.verify_mode == ssl.CERT_REQUIRED
    assert required.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server_context(host.cert, host.key, ca.path, "optional").verify_mode == ssl.CERT_OPTIONAL


def test_a_key_that_does_not_match_the_certificate_names_both_settings(ca: CertificateAuthority) -> None:
    one, other = ca.issue("one", server=True), ca.issue("other", server=True)
    with pytest.raises(
        ConfigError, match=r"^pos_tls_cert / pos_tls_key: cannot use .*one\.pem with .*other\.key"
    ):
        server_context(one.cert, other.key)


def test_a_missing_file_is_named(ca: CertificateAuthority, tmp_path: Path) -> None:
    host = ca.issue("host", server=True)
    with pytest.raises(ConfigError, match=r"^pos_tls_key: .*nope\.key is not a readable file$"):
        server_context(host.cert, tmp_path / "nope.key")
    with pytest.raises(ConfigError, match=r"^pos_tls_client_ca: .*none\.pem is not a readable file$"):
        server_context(host.cert, host.key, tmp_path / "none.pem", "required")
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"^--tls-ca: cannot load CA certificates from .*ca\.pem"):
        client_context(not_pem)


def test_the_client_needs_certificate_and_key_together(ca: CertificateAuthority) -> None:
    terminal = ca.issue("10000001", server=False)
    with pytest.raises(ConfigError, match="--tls-cert and --tls-key go together"):
        client_context(ca.path, terminal.cert, None)
    context = client_context(ca.path, terminal.cert, terminal.key)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"pos_tls_cert": "c.pem"}, "pos_tls_cert and pos_tls_key go together"),
        ({"pos_tls_client_ca": "ca.pem"}, "pos_tls_client_ca and pos_tls_client_auth need pos_tls_cert"),
        (
            {"pos_tls_cert": "c.pem", "pos_tls_key": "k.pem", "pos_tls_client_auth": "required"},
            "pos_tls_client_auth = 'required' needs pos_tls_client_ca",
        ),
        ({"pos_tls_client_auth": "sometimes"}, "Input should be 'none', 'optional' or 'required'"),
        ({"pos_max_in_flight": 0}, "greater than or equal to 1"),
        ({"pos_frame_deadline_s": 0}, "greater than 0"),
    ],
)
def test_inconsistent_settings_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)  # type: ignore[arg-type]
