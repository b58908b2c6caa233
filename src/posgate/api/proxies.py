"""The caller's address: the TCP peer, unless that peer is one of `trusted_proxies` — then the rightmost
address in `X-Forwarded-For` that is not itself a trusted proxy (each proxy appends the address it saw, so
everything left of the first untrusted hop may have been written by the client). With no trusted proxies
(the default) no header is believed. `TrustedProxyHeaders` applies this to every request, in place of the
ASGI server's own proxy-header handling (which `services.Console` turns off)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """`trusted_proxies` as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The address to throttle and log for a request from `peer` carrying `forwarded_for`.

    >>> proxy = networks(["10.0.0.0/8"])
    >>> client_address("127.0.0.1", "203.0.113.9", ())
    '127.0.0.1'
    >>> client_address("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.5", proxy)
    '198.51.100.7'
    >>> client_address("198.51.100.7", "1.2.3.4", proxy)
    '198.51.100.7'
    >>> client_address("10.0.0.2", "garbage", proxy)
    '10.0.0.2'
    """
    if not forwarded_for or not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    for hop in reversed(hops):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            return peer  # a hop that is not an address: the chain cannot be believed past it
        if not _trusted(address, trusted):
            return address
    return peer  # every hop is a proxy of ours: the peer is as good as any


class TrustedProxyHeaders:
    """ASGI middleware: `scope["client"]` becomes `client_address(…)`; `X-Forwarded-Proto` from a trusted
    proxy sets the scheme (so the session cookie is marked Secure behind a TLS-terminating proxy)."""

    def __init__(self, app: ASGIApp, trusted: Iterable[str]) -> None:
        self.app = app
        self.trusted = networks(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.trusted and scope.get("client"):
            peer, port = scope["client"]
            if _trusted(peer, self.trusted):
                headers = scope["headers"]
                forwarded = ",".join(v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for")
                scope = {**scope, "client": (client_address(peer, forwarded, self.trusted), port)}
                protos = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-proto"]
                proto = protos[-1].split(",")[-1].strip().lower() if protos else ""
                if proto in ("http", "https") and scope["type"] == "http":
                    scope["scheme"] = proto
        await self.app(scope, receive, send)
