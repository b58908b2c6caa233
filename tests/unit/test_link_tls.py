"""TLS contexts of issuer links (security/link_tls.py) and their settings: what each side requires, and
the exact message for each bad file or half-given pair."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from pydantic import ValidationError

from posgate.config import IssuerTls, Settings
from posgate.errors import ConfigError
from posgate.security.link_tls import link_client_context, simulator_server_context


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tls")
    ca, other = trustme.CA(), trustme.CA()
    cert, stranger = ca.issue_cert("issuer.example.test"), other.issue_cert("other.example.test")
    paths = {name: folder / name for name in ("ca", "cert", "key", "other_key", "junk")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    stranger.private_key_pem.write_to_path(str(paths["other_key"]))
    paths["junk"].write_text("not a certificate\n")
    return paths


def test_the_host_verifies_the_issuer_and_its_name_with_tls_1_2_or_later(files: dict[str, Path]) -> None:
    context = link_client_context("Plain Bank", ca=files["ca"])
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    with_client_cert = link_client_context("Plain Bank", files["ca"], files["cert"], files["key"])
    assert with_client_cert.verify_mode == ssl.CERT_REQUIRED


def test_the_simulator_asks_for_a_client_certificate_only_with_a_client_ca(files: dict[str, Path]) -> None:
    assert simulator_server_context(files["cert"], files["key"]).verify_mode == ssl.CERT_NONE
    required = simulator_server_context(files["cert"], files["key"], client_ca=files["ca"])
    assert required.verify_mode == ssl.CERT_REQUIRED
    assert required.minimum_version == ssl.TLSVersion.TLSv1_2


def test_bad_files_are_named(files: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError) as caught:
        link_client_context("Plain Bank", ca=missing)
    assert str(caught.value) == f"issuer 'Plain Bank' tls.ca: {missing} is not a readable file"

    with pytest.raises(ConfigError) as caught:
        link_client_context("Plain Bank", ca=files["junk"])
    assert str(caught.value).startswith(
        f"issuer 'Plain Bank' tls.ca: cannot load CA certificates from {files['junk']} ("
    )

    with pytest.raises(ConfigError) as caught:
        simulator_server_context(files["cert"], files["other_key"])
    assert str(caught.value).startswith(
        f"issuer_sim_tls_cert / issuer_sim_tls_key: cannot use {files['cert']} with {files['other_key']} ("
    )
    assert str(caught.value).endswith(
        "a PEM certificate (chain) and its unencrypted PEM private key are expected"
    )

    with pytest.raises(ConfigError) as caught:
        link_client_context("Plain Bank", cert=files["cert"])
    assert str(caught.value) == "issuer 'Plain Bank' tls: cert and key go together: give both or neither"


def test_half_given_pairs_are_refused_by_the_settings(files: dict[str, Path]) -> None:
    with pytest.raises(ValidationError, match=r"tls\.cert and tls\.key go together: give both or neither"):
        IssuerTls(cert=files["cert"])
    with pytest.raises(
        ValidationError, match="issuer_sim_tls_cert and issuer_sim_tls_key go together: give both or neither"
    ):
        Settings(issuer_sim_tls_cert=files["cert"])
    with pytest.raises(
        ValidationError, match="issuer_sim_tls_client_ca needs issuer_sim_tls_cert and issuer_sim_tls_key"
    ):
        Settings(issuer_sim_tls_client_ca=files["ca"])
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        IssuerTls(ca_file=files["ca"])  # type: ignore[call-arg]
