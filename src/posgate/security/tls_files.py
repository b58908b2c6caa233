"""Loading certificate, key and CA files (PEM) into `ssl` contexts, for every TLS endpoint of posgate: the
POS port (`pos_tls`), the issuer links (`link_tls`) and the web console and REST API
(`console_tls_cert` / `console_tls_key`, served by uvicorn). Only the standard `ssl` module (OpenSSL); no
sockets are opened here.

Every context made here requires TLS 1.2 or later. A file that cannot be read, or a key that does not
match its certificate, raises `ConfigError` naming the setting (or option) and the file — never its
content.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from posgate.errors import ConfigError


def why(exc: Exception) -> str:
    """The reason a file could not be used, in a few words (`strerror` of an `OSError`)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def load_chain(context: ssl.SSLContext, cert: Path, key: Path, names: tuple[str, str]) -> None:
    """Load `cert` (a PEM chain) and its unencrypted PEM `key`; `names` are their settings' names."""
    for name, path in zip(names, (cert, key), strict=True):
        if not path.is_file():
            raise ConfigError(f"{name}: {path} is not a readable file")
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"{names[0]} / {names[1]}: cannot use {cert} with {key} ({why(exc)}): "
            "a PEM certificate (chain) and its unencrypted PEM private key are expected"
        ) from None


def load_ca(context: ssl.SSLContext, ca: Path, name: str) -> None:
    """Trust the CA certificates of the PEM file `ca`; `name` is its setting's name."""
    if not ca.is_file():
        raise ConfigError(f"{name}: {ca} is not a readable file")
    try:
        context.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{name}: cannot load CA certificates from {ca} ({why(exc)})") from None


def server_context(cert: Path, key: Path, names: tuple[str, str]) -> ssl.SSLContext:
    """A server's context (TLS 1.2 or later) serving `cert` with `key`; it asks for no client
    certificate until the caller says so."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_chain(context, cert, key, names)
    return context


def client_context(
    ca: Path | None, cert: Path | None, key: Path | None, names: tuple[str, str, str]
) -> ssl.SSLContext:
    """A client's context (TLS 1.2 or later): the server's certificate verified against `ca` (else the
    system's trusted CAs) and its name checked; `cert` and `key`, when given, are the client's own
    certificate. `names` are the settings' names of `ca`, `cert` and `key`."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca is not None:
        load_ca(context, ca, names[0])
    if (cert is None) != (key is None):
        raise ConfigError(f"{names[1]} and {names[2]} go together: give both or neither")
    if cert is not None and key is not None:
        load_chain(context, cert, key, (names[1], names[2]))
    return context
