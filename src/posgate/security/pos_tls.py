"""TLS for the POS port: the host's server context and the terminal simulator's client context, from
certificate and key files (PEM). Only the standard `ssl` module (OpenSSL); no sockets are opened here.

Both sides require TLS 1.2 or later; `tls_files` loads the files. The host can ask terminals for a client
certificate (`client_auth`): `required` refuses a handshake without a certificate signed by the configured
CA, `optional` verifies one when the terminal sends it, `none` does not ask. A file that cannot be read, or
a key that does not match its certificate, raises `ConfigError` naming the setting or option and the file.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from posgate.errors import ConfigError
from posgate.security import tls_files

ClientAuth = Literal["none", "optional", "required"]
CLIENT_AUTH_MODES: dict[str, ssl.VerifyMode] = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


def server_context(
    cert: Path, key: Path, client_ca: Path | None = None, client_auth: ClientAuth = "none"
) -> ssl.SSLContext:
    """The POS port's TLS context: its certificate chain and key; terminals' certificates verified against
    `client_ca` as `client_auth` says."""
    context = tls_files.server_context(cert, key, ("pos_tls_cert", "pos_tls_key"))
    if client_auth != "none":
        if client_ca is None:
            raise ConfigError(f"pos_tls_client_auth = {client_auth!r} needs pos_tls_client_ca")
        tls_files.load_ca(context, client_ca, "pos_tls_client_ca")
    context.verify_mode = CLIENT_AUTH_MODES[client_auth]
    return context


def client_context(
    ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A terminal's TLS context: the host's certificate verified against `ca` (else the system's trusted
    CAs), its name checked; `cert` and `key` are the terminal's own certificate, when the host asks."""
    return tls_files.client_context(ca, cert, key, ("--tls-ca", "--tls-cert", "--tls-key"))


def peer_subject(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The common name of a verified peer certificate, for the log; None without one."""
    if ssl_object is None:
        return None
    certificate = ssl_object.getpeercert()
    if not certificate:
        return None
    for rdn in certificate.get("subject", ()):
        for attribute in rdn:  # ((name, value), ...) per relative distinguished name
            if isinstance(attribute, tuple) and attribute[0] == "commonName":
                return attribute[1]
    return None
