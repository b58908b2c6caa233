"""Data protection (issue 9, build item 6): a `posgate up` process takes real traffic — every demo card
(balance, sales, a wrong PIN, chip), voids, refunds, a pre-authorization and its completion, reversals,
two sign-ins (two PIKs), hostile frames carrying card data, settlement with batch upload, an onboarding
application with a settlement card and photos, API calls and API errors that name a card number — then
crashes (SIGSEGV, with Python's fault handler writing its crash report to stderr). The card-data scanner
(`posgate.tools.card_scan`) then searches everything that run left: the store (SQLite file, WAL and SHM;
on PostgreSQL every value over the connection), the log, stdout, stderr with the crash output, the
uploads, the terminal's state file and every API body. It must find nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from posgate.fixtures.document import read_demo_fixture
from posgate.iso8583.codec import encode_pos
from posgate.iso8583.framing import build_pos_frame
from posgate.store.db import make_engine
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state
from posgate.terminal.messages import REQUEST_HEADER, request_tpdu, sale_request
from posgate.tools.card_scan import CardSecrets, Finding, scan_bytes, scan_database, scan_path
from posgate.tools.onboarding_data import form_values, photo_files

# not marked `default_risk_rules`: its traffic is a wrong PIN on every demo card and many sales on one card
# within seconds (card testing to the default rules), so it runs the list rules (tests/conftest.py)
pytestmark = pytest.mark.slow

POSGATE_UP = [sys.executable, "-m", "posgate", "up"]
ANY_PORTS = ["--pos-port", "0", "--issuer-ports", "0,0", "--console-port", "0"]
DEBIT = demo_card("6229990000000012")
ANOTHER_CARD = "4111111111111111"  # a Luhn-valid number the demo knows nothing of


class Up:
    """`posgate up` in its own process, stdout and stderr in files."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.data = tmp_path / "data"
        self.stdout_path, self.stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        env = {
            **{k: v for k, v in os.environ.items() if k != "POSGATE_CONFIG"},
            "POSGATE_ENV": "test",
            "POSGATE_ISSUER_TIMEOUT_S": "2",
            "POSGATE_SAF_RETRY_S": "0.5",
            "PYTHONFAULTHANDLER": "1",  # a crash writes every thread's stack to stderr
        }
        # SQLite: the default store, in the data directory (the scan reads the data directory)
        store = [] if database_url.startswith("sqlite") else ["--database-url", database_url]
        self.proc = subprocess.Popen(
            [*POSGATE_UP, "--data-dir", str(self.data), *store, *ANY_PORTS],
            cwd=tmp_path,
            env=env,
            stdout=self.stdout_path.open("wb"),
            stderr=self.stderr_path.open("wb"),
        )

    async def ready(self) -> tuple[tuple[str, int], str]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = self.stdout_path.read_text()
            if "posgate ready pos=" in text:
                pos = text.split("posgate ready pos=", 1)[1].split()[0]
                console = text.split("posgate console ", 1)[1].split()[0].rstrip("/")
                host, port = pos.rsplit(":", 1)
                return (host, int(port)), console
            assert self.proc.poll() is None, self.stderr_path.read_text()[-3000:]
            await asyncio.sleep(0.1)
        raise AssertionError("posgate up printed no ready line")

    def crash(self) -> None:
        self.proc.send_signal(signal.SIGSEGV)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


async def _day_of_traffic(terminal: TerminalClient, piks: list[bytes]) -> list[bytes]:
    """Every demo card and every kind; returns the raw frames of the hostile requests sent."""
    assert (await terminal.sign_in()).approved
    piks.append(terminal.state.pik)
    for doc in read_demo_fixture().cards:
        card = demo_card(doc.pan)
        entry = "chip" if card.chip is not None else "magstripe"
        await terminal.balance(card, doc.pin, entry)
        await terminal.sale(card, doc.pin, 101, entry)
        await terminal.sale(card, "000000", 102, entry)  # a wrong PIN
    sale = await terminal.sale(DEBIT, "123456", 2_000)
    assert sale.approved and sale.rrn
    assert (await terminal.void(sale.rrn, DEBIT, 2_000, pin="123456")).approved
    refunded = await terminal.sale(DEBIT, "123456", 3_000)
    assert refunded.approved and refunded.rrn
    assert (await terminal.refund(refunded.rrn, DEBIT, 1_000)).approved
    held = await terminal.preauth(DEBIT, "123456", 5_000)
    assert held.approved and held.rrn
    assert (await terminal.complete(held.rrn, DEBIT, 4_000)).approved
    assert (await terminal.sale(DEBIT, "123456", 400)).approved
    assert (await terminal.reverse_last("96")).approved
    # hostile requests carrying card data: a corrupt field after the PAN, garbage around a track
    msg = sale_request(terminal.state, "000901", demo_card("6228880000000016"), 100, None, "magstripe", None)
    payload = bytearray(encode_pos(msg))
    payload[13] = 0xAB  # field 4: not BCD
    hostile = [
        build_pos_frame(request_tpdu(terminal.state.nii), REQUEST_HEADER, bytes(payload)),
        b"\x00\x30" + DEBIT.track2.encode()[:48] if DEBIT.track2 else b"",
    ]
    for frame in hostile:
        await terminal.send_raw(frame)
    await terminal.close()
    await terminal.connect()
    assert (await terminal.sign_in()).approved  # new working keys: a second PIK
    piks.append(terminal.state.pik)
    for amount in (201, 202, 203):
        assert (await terminal.sale(DEBIT, "123456", amount)).approved
    terminal.state.journal.pop(0)  # the totals now differ: the batch is uploaded (0320, PANs in 48)
    settled = await terminal.settle()
    assert settled.settled and not settled.balanced and settled.uploaded > 0
    return hostile


async def _console(base: str) -> list[tuple[str, bytes]]:
    """An onboarding application (settlement card, photos), reads, and requests that fail while naming a
    card number; every answer body."""
    bodies: list[tuple[str, bytes]] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        login = await client.post(
            "/api/auth/login", json={"username": "operator", "password": "posgate-demo"}
        )
        assert login.status_code == 200
        csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
        filed = await client.post("/api/applications", data=form_values(), files=photo_files(), headers=csrf)
        assert filed.status_code == 201, filed.text
        calls = [
            ("GET", f"/api/applications/{filed.json()['id']}", None),
            ("GET", "/api/transactions", None),
            ("GET", f"/api/merchants/{DEBIT.pan}", None),
            ("GET", f"/api/terminals/{DEBIT.pan}", None),
            ("GET", f"/api/transactions?pan={DEBIT.pan}&tid={DEBIT.pan}", None),
            ("GET", f"/api/{DEBIT.pan}", None),
            ("GET", f"/transactions?q={DEBIT.pan}", None),
            ("POST", "/api/auth/login", {"username": DEBIT.pan, "password": ANOTHER_CARD}),
        ]
        for method, url, body in calls:
            answer = await client.request(method, url, json=body, headers=csrf)
            bodies.append((f"{method} {url.split('?')[0][:20]}… → {answer.status_code}", answer.content))
        bad = form_values(settlement_card=ANOTHER_CARD, mobile=DEBIT.pan)
        refused = await client.post("/api/applications", data=bad, files=photo_files(seed=3), headers=csrf)
        assert refused.status_code == 422
        bodies.append(("POST /api/applications (refused)", refused.content))
        bodies.append(("POST /api/applications", filed.content))
    return bodies


async def test_no_clear_card_data_anywhere_after_real_traffic_and_a_crash(
    tmp_path: Path, database_url: str
) -> None:
    up = Up(tmp_path, database_url)
    findings: list[Finding] = []
    try:
        pos, console = await up.ready()
        piks: list[bytes] = []
        state = demo_terminal_state()
        async with TerminalClient(*pos, state, timeout_s=10) as terminal:
            hostile = await _day_of_traffic(terminal, piks)
        bodies = await _console(console)
        secrets = CardSecrets.demo(piks=piks)
        secrets.add_card(ANOTHER_CARD)
        # the scanner sees what is there: the frames we sent do carry card data
        assert scan_bytes(hostile[0], "frame sent", secrets)
        for where, body in bodies:
            findings += scan_bytes(body, where, secrets)
        findings += scan_path(up.data, secrets)  # the live store: database, WAL and SHM, log, uploads
        up.crash()
    finally:
        up.stop()
    stderr = up.stderr_path.read_bytes()
    assert b"Fatal Python error: Segmentation fault" in stderr  # the crash report is part of what we scan
    findings += scan_bytes(stderr, "stderr", secrets)
    findings += scan_bytes(up.stdout_path.read_bytes(), "stdout", secrets)
    findings += scan_path(up.data, secrets)  # after the crash: what was left on disk
    state_file = tmp_path / "terminal.json"
    state.save(state_file)
    findings += scan_path(state_file, secrets)
    if not database_url.startswith("sqlite"):
        engine = make_engine(database_url)
        try:
            findings += scan_database(engine, secrets)
        finally:
            engine.dispose()
    database = b"".join(p.read_bytes() for p in up.data.glob("posgate.sqlite*"))
    log = (up.data / "posgate.log").read_bytes()
    assert b"622999******0012" in log  # real data was read
    assert database_url.startswith("postgresql") or b"AskIssuer" in database
    assert list((up.data / "uploads").rglob("*.*")), "the application's photos are on disk"
    assert findings == [], "\n".join(str(f) for f in findings)
