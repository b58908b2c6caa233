"""`posgate bench auth`: a load generator and its report (TPS, latency percentiles).

The stack under test runs as its own process (`posgate up`, on a fresh SQLite store or the PostgreSQL
database given), so the load generator in this process does not share its interpreter. Before starting it,
the bench provisions N terminals (TIDs 9xxxxxxx, fresh TMKs) and M cards at Demo Bank A (generated PANs in
BIN 622999 with a large balance), then N terminal simulators sign in and send sales of 0.01 CNY back to back
for the duration, under the terminal's POS policy (`terminal.policy`). Latency is measured at the
terminal: request written → answer read and MAC-verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from posgate.cards.pan import luhn_check_digit
from posgate.config import Settings
from posgate.fixtures.document import FixtureCard, read_demo_fixture
from posgate.security.keys import generate_key, kcv
from posgate.terminal import TerminalClient, TerminalState, TxnResult, demo_card, play_day
from posgate.terminal.cards import CardProfile, card_profile
from posgate.terminal.journal import SALE
from posgate.terminal.policy import PosPolicy

BENCH_MID = "898440153110001"
BENCH_PIN = "123456"


def bench_pans(count: int) -> list[str]:
    """Luhn-valid PANs in Demo Bank A's BIN, outside the demo fixture's range.

    >>> bench_pans(2)
    ['6229997000000009', '6229997000000017']
    """
    return [(partial := f"622999700000{n:03d}") + luhn_check_digit(partial) for n in range(count)]


def provision(
    settings: Settings, terminals: int, cards: int
) -> tuple[list[TerminalState], list[CardProfile]]:
    """Create the bench's terminals and cards in the store `settings` points at (demo fixture first)."""
    from posgate.bootstrap import open_store
    from posgate.seed import add_cards
    from posgate.store.acquirer import provision_terminal
    from posgate.store.keys import put_key
    from posgate.store.models import SimCard, Terminal

    handle = open_store(settings)
    fixture = read_demo_fixture()
    bank = fixture.bank("Demo Bank A")
    card_docs = [
        FixtureCard(
            pan=pan,
            bank=bank.name,
            profile=f"bench-{i}",
            pin=BENCH_PIN,
            expiry="3012",
            service_code="101",
            balance_fen=10**11,  # 1,000,000,000.00: the most field 54 (n12) can show
        )
        for i, pan in enumerate(bench_pans(cards))
    ]
    states = []
    tmks = {f"9{n:07d}": generate_key() for n in range(1, terminals + 1)}

    def work(session):  # type: ignore[no-untyped-def]
        known = set(session.scalars(select(SimCard.pan_hash)))
        new_cards = [c for c in card_docs if handle.vault.pan_hash(c.pan) not in known]
        add_cards(session, handle.vault, fixture, new_cards)
        for tid, tmk in tmks.items():
            if session.scalar(select(Terminal.id).where(Terminal.tid == tid)) is None:
                provision_terminal(session, handle.vault, tid, BENCH_MID, tmk, kcv(tmk))
            else:  # a store reused from an earlier run: give the terminal a fresh TMK
                put_key(session, handle.vault, "terminal", tid, "TMK", tmk, kcv(tmk))

    handle.store.transact(work)
    handle.store.close()
    for tid, tmk in tmks.items():
        # new terminals: X9.19, the default of `provision_terminal`
        states.append(TerminalState(tid=tid, mid=BENCH_MID, tmk_hex=tmk.hex().upper(), mac_algorithm="x919"))
    return states, [card_profile(c, bank) for c in card_docs]


@dataclass
class BenchReport:
    duration_s: float
    latencies_ms: list[float] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    errors: int = 0

    @property
    def approved(self) -> int:
        return self.codes.get("00", 0)

    @property
    def tps(self) -> float:
        return self.approved / self.duration_s if self.duration_s else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the latencies, in ms."""
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[rank]


class _MeasuredClient(TerminalClient):
    """A terminal simulator that counts every answer it gets (code, latency) once the warm-up is over."""

    def __init__(self, host: str, port: int, state: TerminalState, report: BenchReport, warmup_until: float):
        super().__init__(host, port, state, timeout_s=10)
        self.report, self.warmup_until = report, warmup_until

    async def exchange(self, msg: dict[str, str]) -> TxnResult:
        result = await super().exchange(msg)
        if time.monotonic() >= self.warmup_until and msg["t"] not in ("0800", "0820"):
            codes = self.report.codes
            codes[result.response_code] = codes.get(result.response_code, 0) + 1
            if result.approved and result.mac_ok is not False:
                self.report.latencies_ms.append(result.elapsed_ms)
        return result


async def _sale_loop(
    host: str,
    port: int,
    state: TerminalState,
    cards: list[CardProfile],
    until: float,
    report: BenchReport,
    warmup_until: float,
) -> None:
    """The `sale` mix: 0.01 CNY sales back to back, each on a card drawn at random, under the POS policy
    (a sale without an answer in time is reversed, a `97` signs in again)."""
    rng = random.Random(state.tid)
    async with _MeasuredClient(host, port, state, report, warmup_until) as client:
        policy = PosPolicy(client)
        signed = await policy.ensure_signed_in()
        if signed is not None and not signed.approved:
            raise RuntimeError(f"bench terminal {state.tid} could not sign in: {signed.response_code}")
        while time.monotonic() < until:
            card = rng.choice(cards)
            try:
                outcome = await policy.transact(SALE, lambda: client.sale(card, BENCH_PIN, 1))  # noqa: B023
            except Exception:  # a lost connection: counted, the load goes on
                report.errors += 1
                continue
            if outcome.timeout is not None:  # counted; reversed by the policy
                report.errors += 1


async def _day_loop(
    host: str,
    port: int,
    state: TerminalState,
    cards: list[CardProfile],
    until: float,
    report: BenchReport,
    warmup_until: float,
) -> None:
    """The `day` mix: the terminal simulator's mixed day (every kind, declines, reversals), then settle."""
    rng = random.Random(state.tid)
    async with _MeasuredClient(host, port, state, report, warmup_until) as client:
        while time.monotonic() < until:
            await play_day(client, cards, 25, rng, settle=False)
        await play_day(client, cards, 0, rng, settle=True)


MIXES = {"sale": _sale_loop, "day": _day_loop}


async def generate_load(
    host: str,
    port: int,
    states: list[TerminalState],
    cards: list[CardProfile],
    duration_s: float,
    warmup_s: float,
    mix: str = "sale",
) -> BenchReport:
    start = time.monotonic()
    warmup_until = start + warmup_s
    until = warmup_until + duration_s
    report = BenchReport(duration_s=duration_s)
    loop = MIXES[mix]
    await asyncio.gather(*(loop(host, port, s, cards, until, report, warmup_until) for s in states))
    return report


def _spawn(command: str, env: dict[str, str], ready_prefix: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "posgate", command], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(ready_prefix):
            return proc, line.strip()
    proc.kill()
    raise RuntimeError(f"posgate {command} did not print {ready_prefix!r} within 60 s")


def start_stack(settings: Settings, topology: str = "single") -> tuple[list[subprocess.Popen[str]], str, int]:
    """The stack under test as child processes on the bench's store: `posgate up` (single), or
    `posgate issuer` and `posgate host` (split: two interpreters, two cores). Waits for the ready line."""
    env = dict(os.environ)
    env.update(
        {
            "POSGATE_DATA_DIR": str(settings.data_dir),
            "POSGATE_POS_PORT": "0",
            "POSGATE_CONSOLE_PORT": "0",
            "POSGATE_ISSUER_PORTS": "0,0",
            "POSGATE_LOG_LEVEL": "WARNING",
        }
    )
    # every bench terminal connects from this machine: one source address, as behind a load balancer
    env.setdefault("POSGATE_POS_MAX_CONNECTIONS_PER_SOURCE", "100000")
    env.setdefault("POSGATE_POS_MAX_IN_FLIGHT_PER_SOURCE", "100000")
    if settings.database_url:
        env["POSGATE_DATABASE_URL"] = settings.database_url
    procs = []
    if topology == "split":
        issuer, line = _spawn("issuer", env, "posgate issuers ")
        procs.append(issuer)
        # the simulator's bound ports become the host's routes (bank names in the ready line, name order)
        ports = [part.rsplit("=", 1)[1] for part in line.removeprefix("posgate issuers ").split(",")]
        env["POSGATE_ISSUER_PORTS"] = ",".join(ports)
    proc, line = _spawn("host" if topology == "split" else "up", env, "posgate ready pos=")
    procs.append(proc)
    host, port = line.split("=", 1)[1].rsplit(":", 1)
    return procs, host, int(port)


def stop_stack(procs: list[subprocess.Popen[str]]) -> None:
    for proc in reversed(procs):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_auth_bench(
    terminals: int,
    duration_s: float,
    warmup_s: float,
    cards: int,
    database_url: str | None,
    data_dir: Path | None,
    topology: str = "single",
    mix: str = "sale",
) -> BenchReport:
    workdir = data_dir or Path(tempfile.mkdtemp(prefix="posgate-bench-"))
    with scratch_database(database_url) as url:
        settings = Settings(data_dir=workdir, database_url=url, env="test")
        states, profiles = provision(settings, terminals, cards)
        procs, host, port = start_stack(settings, topology)
        try:
            if mix == "day":  # chip and contactless cards too: the day taps and inserts them
                profiles = [*profiles, demo_card("credit-chip"), demo_card("credit-chip-2")]
            return asyncio.run(generate_load(host, port, states, profiles, duration_s, warmup_s, mix))
        finally:
            stop_stack(procs)


@contextlib.contextmanager
def scratch_database(server_url: str | None) -> Iterator[str | None]:
    """For PostgreSQL, a fresh database on the server `server_url` names, dropped afterwards: the bench
    never writes into an existing store. SQLite (None): a new file in the bench's data directory."""
    if not server_url or not server_url.startswith("postgres"):
        yield server_url
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from posgate.store.db import normalize_url

    admin = create_engine(normalize_url(server_url), isolation_level="AUTOCOMMIT")
    name = f"posgate_bench_{os.getpid()}_{int(time.time())}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(normalize_url(server_url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
