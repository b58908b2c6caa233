"""Seed the fuzz corpora from the public frame of pos-8583.md and recorded demo traffic.

    python -m tests.fuzz.seed_corpus        # rewrites the seed-* files of tests/fuzz/corpus/<target>/
    python -m tests.fuzz.seed_corpus api    # only those of the API targets (api_bodies, api_asgi, uploads)

It starts the issuer simulator and the host in-process on a SQLite store, puts a recording relay in front
of the POS port and of each issuer, and plays a terminal day with the demo terminal: sign-in (003 and
004), echo, balance, stripe, chip and contactless sales, a void, a refund, a pre-authorization with its
completion and their voids, a reversal, a balanced settlement, then an unbalanced one with batch upload.
Every frame that crossed a relay (both directions) is cut up per target: POS messages, network messages,
POS frames (for the framing target and the POS-port fuzzer), fields 48, 55, 60, 61 and 62. Files are named
`seed-<sha1 prefix>`; inputs the fuzzer found (`found-*`) are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from posgate.bootstrap.host import start_host
from posgate.bootstrap.stack import sim_bank_ports
from posgate.bootstrap.store import open_store
from posgate.config import Settings
from posgate.iso8583.codec import decode_network, decode_pos
from posgate.iso8583.framing import FrameBuffer, split_pos_frame
from posgate.issuer.server import IssuerSimulator
from posgate.terminal import TerminalClient, demo_terminal_state
from posgate.terminal.cards import demo_card
from tests.contract.test_pos_frames import PUBLIC_FRAME
from tests.fuzz._harness import CORPUS_ROOT

DEBIT = demo_card("6229990000000012")
CHIP = demo_card("6228880000000016")
PIN = "123456"


class Relay:
    """A TCP relay that records every frame (2-byte length prefix) in both directions."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.requests: list[bytes] = []
        self.responses: list[bytes] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                self._pipe(reader, up_writer, self.requests), self._pipe(up_reader, writer, self.responses)
            )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frames: list[bytes]) -> None:
        buffer = FrameBuffer(65535)
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                buffer.receive_data(data)
                while (body := buffer.next_frame()) is not None:
                    frames.append(len(body).to_bytes(2, "big") + body)
                writer.write(data)
                await writer.drain()
        writer.close()


async def _terminal_day(host: str, port: int) -> None:
    client = TerminalClient(host, port, demo_terminal_state(), timeout_s=5.0)
    async with client:
        await client.sign_in(with_tdk=True)
        await client.sign_in()
        await client.echo()
        await client.balance(DEBIT, PIN)
        sale = await client.sale(DEBIT, PIN, 1_234)
        await client.sale(CHIP, PIN, 10_000, entry="chip")
        await client.sale(CHIP, PIN, 2_000, entry="contactless")
        await client.sale(CHIP, PIN, 3_000, entry="chip", tamper_arqc=True)
        await client.void(sale.rrn or "", DEBIT, pin=PIN)
        refunded = await client.sale(DEBIT, PIN, 5_000)
        await client.refund(refunded.rrn or "", DEBIT, 2_000)
        auth = await client.preauth(DEBIT, PIN, 8_000)
        done = await client.complete(auth.rrn or "", DEBIT, 7_000)
        await client.complete_void(done.rrn or "", DEBIT, pin=PIN)
        auth2 = await client.preauth(DEBIT, PIN, 1_000)
        await client.preauth_void(auth2.rrn or "", DEBIT, pin=PIN)
        await client.sale(DEBIT, PIN, 999)
        await client.reverse_last("98")
        await client.sale(DEBIT, "000000", 100)  # wrong PIN
        await client.settle()
        await client.sale(DEBIT, PIN, 1_000)
        lost = await client.sale(DEBIT, PIN, 3_000)
        client.state.journal.remove(next(e for e in client.state.journal if e.rrn == lost.rrn))
        await client.settle()  # unbalanced: batch upload and batch end
        await client.sign_out()


async def record(workdir: Path) -> tuple[list[bytes], list[bytes]]:
    """(POS frames, network frames) of a terminal day, both directions, length prefix included."""
    settings = Settings(
        data_dir=workdir / "data",
        database_url=f"sqlite:///{workdir / 'seed.sqlite'}",
        pos_port=0,
        issuer_ports=[0, 0],
        env="test",
        terminal_cache_s=0.0,
    )
    handle = await asyncio.to_thread(open_store, settings)
    simulator = IssuerSimulator(handle.store, handle.vault, host="127.0.0.1")
    names = await simulator.bank_names()
    await simulator.start(ports=sim_bank_ports(settings, names))
    relays = {name: Relay(port) for name, port in simulator.ports.items()}
    relay_ports = {name: await relay.start() for name, relay in relays.items()}
    runtime = await start_host(settings, handle, issuer_ports=relay_ports)
    await runtime.services.links.wait_up(4.0)
    pos_relay = Relay(runtime.address[1])
    pos_port = await pos_relay.start()
    try:
        await _terminal_day("127.0.0.1", pos_port)
        await asyncio.sleep(0.5)  # let SAF advices and echoes cross
    finally:
        await pos_relay.stop()
        await runtime.stop()
        for relay in relays.values():
            await relay.stop()
        await simulator.stop()
        handle.store.close()
    network = [f for relay in relays.values() for f in relay.requests + relay.responses]
    return pos_relay.requests + pos_relay.responses, network


def _write(target: str, inputs: Iterable[bytes]) -> int:
    folder = CORPUS_ROOT / target
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("seed-*"):
        old.unlink()
    written = set()
    for data in inputs:
        name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
        if name not in written:
            (folder / name).write_bytes(data)
            written.add(name)
    return len(written)


def seed(pos_frames: list[bytes], network_frames: list[bytes]) -> dict[str, int]:
    pos_frames = [PUBLIC_FRAME, *pos_frames]
    payloads = [split_pos_frame(f[2:]).payload for f in pos_frames]
    messages = [decode_pos(p) for p in payloads]
    network_payloads = [f[2:] for f in network_frames]
    network_messages = [decode_network(p) for p in network_payloads]
    field = lambda key: [m[key].encode("latin-1") for m in messages if key in m]  # noqa: E731
    field55 = [bytes.fromhex(m["55"]) for m in messages + network_messages if m.get("55")]
    requests = [f for f in pos_frames if int(split_pos_frame(f[2:]).payload[1:2].hex()[0]) % 2 == 0]
    return {
        "pos_codec": _write("pos_codec", payloads),
        "network_codec": _write("network_codec", network_payloads),
        # framing: control byte (bit 4: cut into 1-16 byte reads; bit 5: full frame size) + the stream
        "framing": _write(
            "framing",
            [bytes([0x20]) + f for f in pos_frames[:8]]
            + [bytes([0x33]) + b"".join(pos_frames[:4]), bytes([0x3F]) + b"".join(pos_frames[4:8])],
        ),
        "tlv": _write("tlv", field55),
        "private_fields": _write("private_fields", field("60") + field("61")),
        "settlement": _write("settlement", field("48")),
        "signin": _write(
            "signin", [bytes.fromhex(m["62"]) for m in messages if m["t"] == "0810" and "62" in m]
        ),
        "posport": _write("posport", requests),
    }


def _api_bodies() -> list[tuple[str, str, bytes]]:
    """(route path, content type, body) of a valid request to each body route, and the hostile ones of
    issue 9 (ids beyond 64 bits, lone surrogates, NUL)."""
    from posgate.tools.onboarding_data import form_values, photo_files

    reason = {"reason": "documents are blurred"}
    form = "&".join(f"{k}={v}" for k, v in form_values().items() if k != "address")
    parts = b"".join(
        f'--fuzz\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in form_values().items()
    )
    for kind, (name, data, mime) in photo_files().items():
        head = f'--fuzz\r\nContent-Disposition: form-data; name="{kind}"; filename="{name}"\r\n'
        parts += head.encode() + f"Content-Type: {mime}\r\n\r\n".encode() + data + b"\r\n"
    multipart = parts + b"--fuzz--\r\n"
    j = lambda body: json.dumps(body).encode()  # noqa: E731
    return [
        ("/api/auth/login", "json", j({"username": "admin", "password": "posgate-demo"})),
        ("/api/users", "json", j({"username": "clerk", "password": "a-long-password", "role": "operator"})),
        ("/api/api-keys", "json", j({"label": "reconciliation job", "role": "finance"})),
        ("/api/api-keys", "json", b'{"label": "\\ud800", "role": "risk"}'),
        ("/api/applications/{application_id}/reject", "json", j(reason)),
        ("/api/applications/{application_id}/request-more-info", "json", b'{"reason": "a\\u0000b"}'),
        ("/api/applications/{application_id}/approve", "json", j({"mdr_debit_cap_fen": 2**63})),
        (
            "/api/applications/{application_id}/approve",
            "json",
            j({"mdr_debit_ppm": 3800, "mdr_credit_ppm": 5500, "settlement_cycle": "D0", "d0_allowed": True}),
        ),
        ("/api/merchants/{mid}/terminals", "json", j({"count": 2, "mac_algorithm": "x919"})),
        ("/api/merchants/{mid}/suspend", "json", j(reason)),
        ("/api/terminals/{tid}/close", "json", j({"reason": "\ud800"})),
        ("/api/applications", "multipart", multipart),
        ("/applications/new", "form", form.encode()),
        (
            "/applications/{application_id}/decide",
            "form",
            b"action=approve&mdr_debit_cap_fen=9223372036854775808",
        ),
        ("/merchants/{mid}/terminals", "form", b"csrf_token=x&count=3"),
        ("/merchants/{mid}/lifecycle", "form", b"action=suspend&reason=fraud%00"),
        ("/login", "form", b"username=admin&password=posgate-demo&next=/"),
        ("/applications/{application_id}/resubmit", "multipart", multipart),
        ("/applications/new", "multipart", multipart),
    ]


def seed_api() -> dict[str, int]:
    """Seeds of the API targets: a valid and a hostile body per route, and hostile photos."""
    from posgate.tools.onboarding_data import photo
    from tests.fuzz import api_asgi, api_bodies
    from tests.integration.test_upload_polyglots import jpeg_svg, jpeg_zip, png_bomb, png_zip

    kinds = {"json": 0, "form": 1, "multipart": 2}
    bodies, asgi = [], []
    for path, kind, body in _api_bodies():
        index = next(i for i, (_m, p, _b) in enumerate(api_bodies.ROUTES) if p == path)
        bodies.append(bytes([index, kinds[kind]]) + body)
        asgi.append(bytes([_asgi_index(api_asgi, "POST", path), kinds[kind]]) + body)
        asgi.append(bytes([_asgi_index(api_asgi, "POST", path), kinds[kind] | 0x10]) + body)  # hostile ids
    for path, query in (
        ("/api/transactions", b"tid=12345678&limit=9223372036854775808"),
        ("/api/settlement/statement", b"mid=%00&date=2026-11-26"),
    ):
        asgi.append(bytes([_asgi_index(api_asgi, "GET", path), 0]) + query)
    photos = [
        photo("JPEG", 5),
        photo("PNG", 6),
        photo("JPEG", 7, (400, 300)),
        jpeg_svg(),
        jpeg_zip(),
        png_zip(),
        png_bomb(2000),  # 16 MB of RGBA from a few KB
    ]
    return {
        "api_bodies": _write("api_bodies", bodies),
        "api_asgi": _write("api_asgi", asgi),
        "uploads": _write("uploads", photos),
    }


def _asgi_index(module: object, method: str, path: str) -> int:
    routes = module._state().routes  # type: ignore[attr-defined]
    return next(i for i, route in enumerate(routes) if route == (method, path))


def main() -> None:
    if sys.argv[1:] == ["api"]:
        targets = seed_api()
    else:
        with tempfile.TemporaryDirectory(prefix="posgate-seed-") as workdir:
            pos_frames, network_frames = asyncio.run(record(Path(workdir)))
        targets = {**seed(pos_frames, network_frames), **seed_api()}
    for target, count in targets.items():
        print(f"{target}: {count} seed files")


if __name__ == "__main__":
    main()
