"""TLS on issuer links: the host's client context for one route (`[issuers.tls]`) and the issuer simulator's
server context (`issuer_sim_tls_*`), from certificate and key files (PEM). Only the standard `ssl` module
(OpenSSL); no sockets are opened here.

Both sides require TLS 1.2 or later; `tls_files` loads the files. The host verifies the issuer's certificate
against the route's CA file (else the system's trusted CAs) and checks that it names the route's
`server_name` (else its `host`); it presents a client certificate when the route has one. The simulator asks
for and verifies a client certificate when it is given a client CA. A file that cannot be read, or a key
that does not match its certificate, raises `ConfigError` naming the setting and the file.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from posgate.errors import ConfigError
from posgate.security import tls_files


def link_client_context(
    issuer: str, ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """The host's context for the link to `issuer`: the issuer's certificate verified against `ca` (else
    the system's trusted CAs) and its name checked; `cert` and `key`: the host's client certificate."""
    where = f"issuer {issuer!r} tls"
    if (cert is None) != (key is None):
        raise ConfigError(f"{where}: cert and key go together: give both or neither")
    return tls_files.client_context(ca, cert, key, (f"{where}.ca", f"{where}.cert", f"{where}.key"))


def simulator_server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """The issuer simulator's context: its certificate chain and key; with `client_ca`, every acquirer
    must present a certificate it signed."""
    context = tls_files.server_context(cert, key, ("issuer_sim_tls_cert", "issuer_sim_tls_key"))
    if client_ca is not None:
        tls_files.load_ca(context, client_ca, "issuer_sim_tls_client_ca")
        context.verify_mode = ssl.CERT_REQUIRED
    return context
