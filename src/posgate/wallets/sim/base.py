"""What every provider simulator shares: its book, keys and registered merchants, fault injection, the
notification sender (with the provider's retries) and the uvicorn shell with `async start()` / `stop()`.

Fault injection (`faults`, or `POST /sim/faults` with the same names):
- `slow_s`: every API call is applied, then its answer held this long (the acquirer's time-out fires);
- `fail_next`: the next N API calls answer the provider's system error (HTTP 500), applying nothing;
- `lose_notifications`: the next N notifications are never sent, on any attempt (polling must find them);
- `duplicate_notifications`: the next N notifications are sent twice.

The simulators' own endpoints (`/sim/...`: customers, payment codes, paying a merchant-presented code,
registering a merchant, faults) stand for the wallet app and the provider's merchant portal. They are not
part of the providers' APIs and answer only loopback clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from posgate.wallets import rsakeys
from posgate.wallets.sim.book import Book, BookError, Notice, Trade

log = logging.getLogger("posgate.wallets.sim")

DEMO_CUSTOMERS: tuple[tuple[str, int, float | None], ...] = (
    ("demo", 5_000_000, None),  # 50,000.00 to spend
    ("alice", 50_000, None),
    ("poor", 100, None),  # 1.00
    ("slowpoke", 5_000_000, 1.0),  # types a password: code payments confirm after 1 s
)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Faults:
    slow_s: float = 0.0
    fail_next: int = 0
    lose_notifications: int = 0
    duplicate_notifications: int = 0

    def update(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown fault {name!r}")
            current = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"fault {name}: {value!r} is not a non-negative number")
            setattr(self, name, type(current)(value))


@dataclass
class Merchant:
    """What a merchant registered at the provider (its portal): its id, app id, public key and the key's
    serial / certId, and for WeChat Pay its API v3 key (a shared secret)."""

    merchant_id: str
    app_id: str
    public_key: rsakeys.PublicKey = field(repr=False)
    key_serial: str
    apiv3_key: bytes | None = field(default=None, repr=False)
    notify_url: str | None = None


@dataclass
class Delivery:
    """A notification on its way: what to send, and how an answer counts as received."""

    url: str
    make: Callable[[], tuple[dict[str, str], bytes]]  # headers and body, signed afresh for each attempt
    accepted: Callable[[httpx.Response], bool]
    label: str


def loopback_only(request: Request) -> bool:
    client = request.client
    if client is None:
        return False
    try:
        return ipaddress.ip_address(client.host).is_loopback
    except ValueError:
        return client.host in ("testclient", "localhost")


class ProviderSimulator:
    """One provider simulator. Subclasses give `name`, `api_routes()`, `notification(notice)` and the
    translations of book errors to the provider's own."""

    name = "provider"
    retry_schedule_s: tuple[float, ...] = (15, 15, 30, 180, 600)

    def __init__(
        self,
        platform_key: rsakeys.PrivateKey | None = None,
        platform_serial: str | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        retry_schedule_s: tuple[float, ...] | None = None,
        customers: tuple[tuple[str, int, float | None], ...] = DEMO_CUSTOMERS,
        fee_rate_ppm: int = 6000,
    ) -> None:
        self.platform_key = platform_key or rsakeys.generate()
        self.platform_serial = platform_serial or rsakeys.fingerprint(self.platform_key) + "0000"
        self.clock = clock
        if retry_schedule_s is not None:
            self.retry_schedule_s = retry_schedule_s
        self.book = Book(self.name)
        for name, balance, confirm in customers:
            self.book.add_customer(name, balance, confirm)
        self.merchants: dict[str, Merchant] = {}
        self.faults = Faults()
        self.fee_rate_ppm = fee_rate_ppm
        self.delivered: list[tuple[str, int]] = []  # (label, HTTP status) of each attempt, for tests
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: Any = None
        self._serve_task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self.address: tuple[str, int] | None = None

    # -- to be given by each provider ------------------------------------------------------------------

    def api_routes(self) -> list[Route]:
        raise NotImplementedError

    def notification(self, notice: Notice, trade: Trade) -> Delivery | None:
        raise NotImplementedError

    def qr_token(self, code_url: str) -> str | None:
        """The order token inside one of this provider's code URLs, or None."""
        raise NotImplementedError

    # -- registration ----------------------------------------------------------------------------------

    def register_merchant(self, merchant: Merchant) -> None:
        self.merchants[merchant.merchant_id] = merchant

    @property
    def platform_public_pem(self) -> bytes:
        return rsakeys.public_pem(self.platform_key.public_key())

    @property
    def base_url(self) -> str:
        if self.address is None:
            raise RuntimeError(f"the {self.name} simulator is not started")
        host, port = self.address
        return f"http://{host}:{port}"

    # -- the shell -------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        routes = [
            *self.api_routes(),
            Route("/sim/customers", self._customers, methods=["GET", "POST"]),
            Route("/sim/codes", self._issue_code, methods=["POST"]),
            Route("/sim/pay", self._wallet_pay, methods=["POST"]),
            Route("/sim/faults", self._faults, methods=["GET", "POST"]),
            Route("/sim/merchants", self._register, methods=["POST"]),
            Route("/sim/platform", self._platform, methods=["GET"]),
        ]
        return Starlette(routes=routes)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        import uvicorn

        config = uvicorn.Config(self.app(), host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._serve_task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._serve_task.done():
                raise OSError(f"the {self.name} simulator could not listen on {host}:{port} (port in use?)")
            await asyncio.sleep(0.01)
        self.address = self._server.servers[0].sockets[0].getsockname()[:2]
        self._http = httpx.AsyncClient(timeout=5.0)
        self._ticker = asyncio.create_task(self._tick())
        return self.address  # type: ignore[return-value]

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            self._server.should_exit = True
        if self._serve_task is not None:
            with contextlib.suppress(Exception):
                await self._serve_task
        if self._http is not None:
            await self._http.aclose()

    async def _tick(self) -> None:
        """Time passes without requests: orders expire, customers finish confirming, notices go out."""
        while True:
            await asyncio.sleep(0.2)
            async with self._lock:
                self.book.advance_all(self.clock())
            self.flush()

    # -- notifications --------------------------------------------------------------------------------

    def flush(self) -> None:
        """Send what the book queued."""
        while self.book.outbox:
            notice = self.book.outbox.pop(0)
            trade = self.book.trades.get((notice.merchant_id, notice.out_trade_no))
            if trade is None:
                continue
            delivery = self.notification(notice, trade)
            if delivery is None:
                continue
            if self.faults.lose_notifications > 0:
                self.faults.lose_notifications -= 1
                log.info("%s: notification %s lost (fault)", self.name, delivery.label)
                continue
            copies = 1
            if self.faults.duplicate_notifications > 0:
                self.faults.duplicate_notifications -= 1
                copies = 2
            for _ in range(copies):
                task = asyncio.get_running_loop().create_task(self._deliver(delivery))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery) -> None:
        assert self._http is not None
        for delay in (0.0, *self.retry_schedule_s):
            if delay:
                await asyncio.sleep(delay)
            status = 0
            try:
                headers, body = delivery.make()
                answer = await self._http.post(delivery.url, content=body, headers=headers)
                status = answer.status_code
                ok = delivery.accepted(answer)
            except httpx.HTTPError:
                ok = False
            self.delivered.append((delivery.label, status))
            if ok:
                return
        attempts = 1 + len(self.retry_schedule_s)
        log.info("%s: notification %s given up after %d attempts", self.name, delivery.label, attempts)

    # -- API helpers ------------------------------------------------------------------------------------

    async def guarded(self, request: Request, handler: Callable[[], Awaitable[Response]]) -> Response:
        """Run one API call: an injected failure answers at once (nothing applied); otherwise the handler
        runs under the book's lock and the outbox goes out, and a slow answer is held only then (the call
        was applied: the acquirer that gave up waiting must query to learn the outcome)."""
        if self.faults.fail_next > 0:
            self.faults.fail_next -= 1
            return self.system_error()
        await request.body()  # read whole before anything is applied
        async with self._lock:
            response = await handler()
        self.flush()
        if self.faults.slow_s:
            await asyncio.sleep(self.faults.slow_s)
        return response

    def system_error(self) -> Response:
        return JSONResponse({"code": "SYSTEM_ERROR", "message": "system error (injected)"}, status_code=500)

    # -- the wallet app and the portal -------------------------------------------------------------------

    async def _customers(self, request: Request) -> Response:
        if not loopback_only(request):
            return JSONResponse({"error": "loopback only"}, status_code=403)
        if request.method == "POST":
            data = await _json(request)
            name, balance = data.get("name"), data.get("balance_fen")
            if not isinstance(name, str) or not name or not isinstance(balance, int) or balance < 0:
                return JSONResponse(
                    {"error": "name and balance_fen (fen, integer) are needed"}, status_code=400
                )
            confirm = data.get("confirm_after_s")
            async with self._lock:
                self.book.add_customer(name, balance, float(confirm) if confirm else None)
        return JSONResponse(
            {
                c.name: {"user_id": c.user_id, "balance_fen": c.balance_fen}
                for c in self.book.customers.values()
            }
        )

    async def _issue_code(self, request: Request) -> Response:
        if not loopback_only(request):
            return JSONResponse({"error": "loopback only"}, status_code=403)
        data = await _json(request)
        try:
            async with self._lock:
                code = self.book.issue_code(str(data.get("customer", "")), self.clock())
        except BookError as exc:
            return JSONResponse({"error": str(exc), "code": exc.code}, status_code=404)
        return JSONResponse({"code": code, "expires_in": 60})

    async def _wallet_pay(self, request: Request) -> Response:
        """The customer's wallet app pays a scanned merchant code (the URL inside the EMVCo payload)."""
        if not loopback_only(request):
            return JSONResponse({"error": "loopback only"}, status_code=403)
        data = await _json(request)
        token = self.qr_token(str(data.get("code_url", "")))
        if token is None:
            return JSONResponse({"error": f"not a {self.name} code"}, status_code=400)
        try:
            async with self._lock:
                trade = self.book.pay_order(token, str(data.get("customer", "")), self.clock())
        except BookError as exc:
            status = 404 if exc.code == "NOT_FOUND" else 409
            return JSONResponse({"error": str(exc), "code": exc.code}, status_code=status)
        self.flush()
        return JSONResponse(
            {
                "paid": True,
                "trade_no": trade.trade_no,
                "amount_fen": trade.amount_fen,
                "merchant": trade.merchant_id,
            }
        )

    async def _faults(self, request: Request) -> Response:
        if not loopback_only(request):
            return JSONResponse({"error": "loopback only"}, status_code=403)
        if request.method == "POST":
            try:
                self.faults.update(await _json(request))
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(self.faults.__dict__)

    async def _register(self, request: Request) -> Response:
        if not loopback_only(request):
            return JSONResponse({"error": "loopback only"}, status_code=403)
        data = await _json(request)
        try:
            apiv3 = data.get("apiv3_key")
            merchant = Merchant(
                merchant_id=str(data["merchant_id"]),
                app_id=str(data.get("app_id", "")),
                public_key=rsakeys.load_public(str(data["public_key_pem"])),
                key_serial=str(data["key_serial"]),
                apiv3_key=apiv3.encode() if isinstance(apiv3, str) else None,
                notify_url=data.get("notify_url"),
            )
        except (KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"error": f"bad registration: {type(exc).__name__}"}, status_code=400)
        self.register_merchant(merchant)
        return JSONResponse({"registered": merchant.merchant_id})

    async def _platform(self, request: Request) -> Response:
        return JSONResponse(
            {"public_key_pem": self.platform_public_pem.decode(), "serial": self.platform_serial}
        )


async def _json(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
