"""TLS on issuer links: the host's client context for one route (`[issuers.tls]`) and the issuer simulator's
server context (`issuer_sim_tls_*`), from certificate and key files (PEM). Only the standard `ssl` module
(OpenSSL); no sockets are opened here.

Both sides require TLS 1.2 or later. The host verifies the issuer's certificate against the route's CA file
(else the system's trusted CAs) and checks that it names the route's `server_name` (else its `host`); it
presents a client certificate when the route has one. The simulator asks for and verifies a client
certificate when it is given a client CA. A file that cannot be read, or a key that does not match its
certificate, raises `ConfigError` naming the setting and the file.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from posgate.errors import ConfigError


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _load_chain(context: ssl.SSLContext, cert: Path, key: Path, names: tuple[str, str]) -> None:
    for name, path in zip(names, (cert, key), strict=True):
        if not path.is_file():
            raise ConfigError(f"{name}: {path} is not a readable file")
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"{names[0]} / {names[1]}: cannot use {cert} with {key} ({_why(exc)}): "
            "a PEM certificate (chain) and its unencrypted PEM private key are expected"
        ) from None


def _load_ca(context: ssl.SSLContext, ca: Path, name: str) -> None:
    if not ca.is_file():
        raise ConfigError(f"{name}: {ca} is not a readable file")
    try:
        context.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{name}: cannot load CA certificates from {ca} ({_why(exc)})") from None


def link_client_context(
    issuer: str, ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """The host's context for the link to `issuer`: the issuer's certificate verified against `ca` (else
    the system's trusted CAs) and its name checked; `cert` and `key`: the host's client certificate."""
    where = f"issuer {issuer!r} tls"
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca is not None:
        _load_ca(context, ca, f"{where}.ca")
    if (cert is None) != (key is None):
        raise ConfigError(f"{where}: cert and key go together: give both or neither")
    if cert is not None and key is not None:
        _load_chain(context, cert, key, (f"{where}.cert", f"{where}.key"))
    return context


def simulator_server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """The issuer simulator's context: its certificate chain and key; with `client_ca`, every acquirer
    must present a certificate it signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, cert, key, ("issuer_sim_tls_cert", "issuer_sim_tls_key"))
    if client_ca is not None:
        _load_ca(context, client_ca, "issuer_sim_tls_client_ca")
        context.verify_mode = ssl.CERT_REQUIRED
    return context
