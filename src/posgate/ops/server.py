"""The operations HTTP port of a host process: `GET /healthz`, `GET /readyz`, `GET /metrics`.

A deliberately small HTTP/1.1 server on asyncio (one request per connection, `Connection: close`), so the
host needs no web framework to be observable and keeps answering when the console is not running:

- `/healthz`: 200 `ok` while the event loop turns (the process is alive);
- `/readyz`: 200 when the store answers `SELECT 1` within 2 s, every issuer link is signed on and the SAF
  queue holds fewer than `ops_saf_ready_max` undelivered entries; 503 otherwise. The body is JSON naming
  each check (`{"ready": false, "checks": {"store": "ok", "issuer_links": "down: Demo Bank B", …}}`);
- `/metrics`: the Prometheus text format (`ops.metrics.HostMetrics`), the SAF depth read when scraped.

Anything else is 404; a method other than GET/HEAD is 405; a request line or header block that does not
arrive whole within 5 s, or is longer than 8 KiB, closes the connection. The port listens on `ops_host`
(default loopback): put it behind the same network rules as the database, not on the Internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import func, select, text

from posgate.host.links import IssuerLinks
from posgate.ops.metrics import HostMetrics
from posgate.store.models import SafEntry
from posgate.store.runtime import Store

log = logging.getLogger("posgate.ops")

_HEAD_LIMIT = 8192
_HEAD_DEADLINE_S = 5.0
_STORE_DEADLINE_S = 2.0
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def saf_depth(store: Store) -> Callable[[], Awaitable[int]]:
    """Undelivered SAF entries, counted in the store."""

    async def count() -> int:
        return await store.run(
            lambda s: int(
                s.scalar(select(func.count()).select_from(SafEntry).where(SafEntry.status == "pending")) or 0
            )
        )

    return count


@dataclass
class OpsEndpoints:
    """What the endpoints look at: the store, the issuer links, the metrics, the SAF bound."""

    store: Store
    links: IssuerLinks
    metrics: HostMetrics
    saf_ready_max: int = 1000

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(_STORE_DEADLINE_S):
                await self.store.run(lambda s: s.execute(text("SELECT 1")))
            checks["store"] = "ok"
        except Exception as exc:  # any failure to reach the store is "not ready", with its kind
            checks["store"] = f"unreachable: {type(exc).__name__}"
        down = sorted(name for name, link in self.links.by_name.items() if not link.is_up)
        checks["issuer_links"] = "ok" if not down else "down: " + ", ".join(down)
        if checks["store"] == "ok":
            depth = await saf_depth(self.store)()
            self.metrics.saf_depth.set(depth)
            checks["saf_queue"] = "ok" if depth < self.saf_ready_max else f"{depth} ≥ {self.saf_ready_max}"
        else:
            checks["saf_queue"] = "unknown (store unreachable)"
        return all(v == "ok" for v in checks.values()), checks

    async def metrics_body(self) -> bytes:
        for name, link in self.links.by_name.items():
            self.metrics.link_up.labels(name).set(1 if link.is_up else 0)
        with contextlib.suppress(Exception):  # a store that does not answer leaves the last depth
            async with asyncio.timeout(_STORE_DEADLINE_S):
                self.metrics.saf_depth.set(await saf_depth(self.store)())
        return self.metrics.render()

    async def respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request."""
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"method not allowed\n"
        path = path.split("?", 1)[0]
        if path == "/healthz":
            return 200, "text/plain; charset=utf-8", b"ok\n"
        if path == "/readyz":
            ready, checks = await self.readiness()
            body = json.dumps({"ready": ready, "checks": checks}, ensure_ascii=False).encode() + b"\n"
            return (200 if ready else 503), "application/json", body
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", await self.metrics_body()
        return 404, "text/plain; charset=utf-8", b"not found\n"


class OpsServer:
    """The asyncio server of the operations port."""

    def __init__(self, endpoints: OpsEndpoints) -> None:
        self.endpoints = endpoints
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, port, limit=_HEAD_LIMIT)
        bound_host, bound_port = self._server.sockets[0].getsockname()[:2]
        return bound_host, bound_port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_HEAD_DEADLINE_S):
                head = await reader.readuntil(b"\r\n\r\n")
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                return
            method, path = parts[0], parts[1]
            status, content_type, body = await self.endpoints.respond(method, path)
            headers = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"
            )
            writer.write(headers.encode("latin-1") + (b"" if method == "HEAD" else body))
            async with asyncio.timeout(_HEAD_DEADLINE_S):
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except Exception:
            log.exception("operations endpoint failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
