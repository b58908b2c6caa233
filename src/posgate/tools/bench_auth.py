"""`posgate bench auth`: a load generator against the stack, run as child processes.

The stack under test runs as its own processes (`posgate up`, or `posgate issuer` + `posgate host`, on a
fresh SQLite store or a scratch database on the PostgreSQL server given), so the load generator in this
process does not share their interpreter. Before starting it, the bench provisions N terminals (TIDs
9xxxxxxx, fresh TMKs) and M cards at Demo Bank A (generated PANs in BIN 622999 with a large balance; by
default enough that no card is used more than `SALES_PER_CARD` times, so the default risk rules see normal
traffic). Then N terminal simulators sign in and send 0.01 CNY sales under the terminal's POS policy
(`terminal.policy`): back to back (closed loop), or at a fixed arrival rate (`rate`, open loop: a free
terminal takes the next arrival; latency counts from the arrival's scheduled time, so queueing shows), on
one connection per terminal or one per sale (`connections`).

While the load runs the bench prints progress on standard error and watches every process: CPU seconds over
the measured window and peak RSS (`Watch`); with `profile_dir`, py-spy records a flame graph of each stack
process over the measured window. The figures are a `bench_report.BenchReport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from posgate.cards.pan import luhn_check_digit
from posgate.config import Settings
from posgate.fixtures.document import FixtureCard, read_demo_fixture
from posgate.security.keys import generate_key, kcv
from posgate.terminal import TerminalClient, TerminalState, TxnResult, demo_card, play_day
from posgate.terminal.cards import CardProfile, card_profile
from posgate.terminal.journal import SALE
from posgate.terminal.policy import PosPolicy
from posgate.tools.bench_report import (
    BenchReport,
    ProcessFigures,
    gauge_value,
    host_means_ms,
    process_cpu_s,
    process_peak_rss_mb,
)

BENCH_MID = "898440153110001"
BENCH_PIN = "123456"


def bench_pans(count: int) -> list[str]:
    """Luhn-valid PANs in Demo Bank A's BIN, outside the demo fixture's range.

    >>> bench_pans(2)
    ['6229997000000009', '6229997000000017']
    """
    return [(partial := f"6229997{n:08d}") + luhn_check_digit(partial) for n in range(count)]


def provision(
    settings: Settings, terminals: int, cards: int
) -> tuple[list[TerminalState], list[CardProfile]]:
    """Create the bench's terminals and cards in the store `settings` points at (demo fixture first)."""
    from posgate.bootstrap.seed import add_cards
    from posgate.bootstrap.store import open_store
    from posgate.store.acquirer import provision_terminal
    from posgate.store.keys import put_key
    from posgate.store.models import Terminal
    from posgate.store.models_simulator import SimCard

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


class CardDeck:
    """The bench's cards dealt round-robin across every terminal, so each card is used as rarely as the
    card count allows: with enough cards the traffic stays under the default rules' velocity limits
    (`card-merchant-velocity`: 5 approved sales of a card at one merchant within 10 minutes give `65`)."""

    def __init__(self, cards: list[CardProfile]) -> None:
        self.cards, self.dealt = cards, 0

    def next(self) -> CardProfile:
        card = self.cards[self.dealt % len(self.cards)]
        self.dealt += 1
        return card


class _MeasuredClient(TerminalClient):
    """A terminal simulator that counts every financial answer it gets once the warm-up is over (the
    `day` mix: every kind of transaction counts)."""

    def __init__(self, host: str, port: int, state: TerminalState, report: BenchReport, warmup_until: float):
        super().__init__(host, port, state, timeout_s=10)
        self.report, self.warmup_until = report, warmup_until

    async def exchange(self, msg: dict[str, str]) -> TxnResult:
        result = await super().exchange(msg)
        if time.monotonic() >= self.warmup_until and msg["t"] not in ("0800", "0820"):
            self.report.sent += 1
            self.report.record(result.response_code, result.elapsed_ms, result.approved)
        return result


@dataclass
class Load:
    """One run's load: where the stack listens, what the terminals send and how, and its clock."""

    host: str
    port: int
    deck: CardDeck
    report: BenchReport
    warmup_until: float
    until: float
    connections: str = "persistent"  # or "per-transaction": connect, one sale, close


async def _signed_in(client: TerminalClient) -> PosPolicy:
    policy = PosPolicy(client)
    signed = await policy.ensure_signed_in()
    if signed is not None and not signed.approved:
        raise RuntimeError(f"bench terminal {client.state.tid} could not sign in: {signed.response_code}")
    return policy


async def _one_sale(load: Load, client: TerminalClient, policy: PosPolicy, scheduled: float | None) -> None:
    """One 0.01 CNY sale under the POS policy (a sale without an answer in time is reversed, a `97` signs
    in again), counted when it was sent after the warm-up began to end (so the rate is the window's
    throughput, whatever the backlog). Latency: from `scheduled` (open loop: a backlog's wait counts) or from
    the start of the sale (closed loop) to the MAC-checked answer."""
    card = load.deck.next()
    sent_at = time.monotonic()
    started = sent_at if scheduled is None else scheduled
    counted = sent_at >= load.warmup_until
    try:
        if load.connections == "per-transaction":
            await client.connect()
        try:
            outcome = await policy.transact(SALE, lambda: client.sale(card, BENCH_PIN, 1))
        finally:
            if load.connections == "per-transaction":
                await client.close()
    except Exception:  # a lost connection: counted, the load goes on
        if counted:
            load.report.sent += 1
            load.report.errors += 1
        return
    if not counted:
        return
    load.report.sent += 1
    if outcome.result is None:  # no answer in time: counted as an error, reversed by the policy
        load.report.errors += 1
        return
    latency_ms = (time.monotonic() - started) * 1000
    load.report.record(
        outcome.result.response_code, latency_ms, outcome.approved and not outcome.reversal_reason
    )


async def _closed_loop_terminal(load: Load, state: TerminalState) -> None:
    """The `sale` mix, closed loop: sales back to back for the duration."""
    client = _BenchClient(load.host, load.port, state)
    await client.connect()
    try:
        policy = await _signed_in(client)
        if load.connections == "per-transaction":
            await client.close()
        while time.monotonic() < load.until:
            await _one_sale(load, client, policy, None)
    finally:
        await client.close()


async def _open_loop_terminal(
    load: Load, state: TerminalState, arrivals: asyncio.Queue[float | None]
) -> None:
    """The `sale` mix, open loop: the terminal takes the next scheduled arrival when it is free."""
    client = _BenchClient(load.host, load.port, state)
    await client.connect()
    try:
        policy = await _signed_in(client)
        if load.connections == "per-transaction":
            await client.close()
        while (scheduled := await arrivals.get()) is not None:
            if time.monotonic() >= load.until:  # the window is over: what is still queued was never sent
                load.report.unsent += 1
                continue
            await _one_sale(load, client, policy, scheduled)
    finally:
        await client.close()


async def _schedule_arrivals(
    rate: float,
    start: float,
    until: float,
    arrivals: asyncio.Queue[float | None],
    workers: int,
    report: BenchReport,
) -> None:
    """Arrivals at `rate` per second from `start` to `until`, each queued at its scheduled time (late ones
    at once, with the time they were due: latency counts from then, so queueing shows)."""
    n = 0
    while (due := start + n / rate) < until:
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        arrivals.put_nowait(due)
        n += 1
        report.scheduled = n
    for _ in range(workers):
        arrivals.put_nowait(None)


class _BenchClient(TerminalClient):
    def __init__(self, host: str, port: int, state: TerminalState) -> None:
        super().__init__(host, port, state, timeout_s=10)


async def _day_loop(load: Load, state: TerminalState, cards: list[CardProfile]) -> None:
    """The `day` mix: the terminal simulator's mixed day (every kind, declines, reversals), then settle."""
    rng = random.Random(state.tid)
    async with _MeasuredClient(load.host, load.port, state, load.report, load.warmup_until) as client:
        while time.monotonic() < load.until:
            # the bench's own mix, as before (its budget would restart every 25 steps anyway)
            await play_day(client, cards, 25, rng, settle=False, mind_risk_rules=False)
        await play_day(client, cards, 0, rng, settle=True, mind_risk_rules=False)


@dataclass
class Watch:
    """What the bench watches while the load runs: the stack's processes (CPU seconds over the measured
    window, peak RSS), optionally PostgreSQL's, and a progress line on standard error."""

    processes: list[ProcessFigures]
    progress: bool = True
    every_s: float = 2.0
    postgres: bool = False
    ops_url: str | None = None  # the host's operations port: /metrics read at both ends of the window

    async def run(self, load: Load) -> None:
        own = ProcessFigures("load generator (bench)", os.getpid())
        watched = [*self.processes, own]
        await _sleep_until(load.warmup_until)
        load.report.load_before = os.getloadavg()
        start = {p.pid: _cpu(p.pid) for p in watched}
        postgres_start = _postgres_cpu_s() if self.postgres else None
        metrics_start = await _scrape(self.ops_url)
        last_approved, last_t = 0, time.monotonic()
        while (now := time.monotonic()) < load.until:
            await asyncio.sleep(min(self.every_s, max(0.0, load.until - now)))
            if self.progress and time.monotonic() < load.until:
                t = time.monotonic()
                done = t - load.warmup_until
                rate = (load.report.approved - last_approved) / (t - last_t)
                last_approved, last_t = load.report.approved, t
                print(
                    f"bench: {done:5.1f}/{load.until - load.warmup_until:g} s,"
                    f" {load.report.approved} approved ({rate:.0f}/s now), {load.report.errors} errors,"
                    f" other codes {sum(n for c, n in load.report.codes.items() if c != '00')}",
                    file=sys.stderr,
                    flush=True,
                )
        for p in watched:
            p.cpu_s = _cpu(p.pid) - start[p.pid]
            p.peak_rss_mb = _peak_rss(p.pid)
        load.report.processes = watched
        if postgres_start is not None and (postgres_end := _postgres_cpu_s()) is not None:
            server = ProcessFigures("postgresql (every server process on the machine)", 0)
            server.cpu_s = postgres_end - postgres_start
            load.report.processes.append(server)
        load.report.load_after = os.getloadavg()
        metrics_end = await _scrape(self.ops_url)
        if metrics_start is not None and metrics_end is not None:
            load.report.host_means_ms = host_means_ms(metrics_start, metrics_end)
            load.report.host_connections_open = gauge_value(metrics_end, "posgate_pos_connections_open")


async def _scrape(ops_url: str | None) -> str | None:
    """The host's /metrics now (None without an operations port or when it does not answer)."""
    if ops_url is None:
        return None
    import httpx

    try:
        async with httpx.AsyncClient(timeout=5) as http:
            answer = await http.get(ops_url + "metrics")
        return answer.text if answer.status_code == 200 else None
    except httpx.HTTPError:
        return None


async def open_idle_connections(host: str, port: int, count: int) -> list[asyncio.StreamWriter]:
    """`count` TCP connections to the POS port that never send a byte (terminals between transactions), for
    the host's memory with many connections; opened 100 at a time."""
    writers: list[asyncio.StreamWriter] = []
    for start in range(0, count, 100):
        batch = [asyncio.open_connection(host, port) for _ in range(min(100, count - start))]
        writers.extend(writer for _, writer in await asyncio.gather(*batch))
    return writers


async def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def _cpu(pid: int) -> float:
    try:
        return process_cpu_s(pid)
    except OSError:
        return 0.0


def _peak_rss(pid: int) -> float:
    try:
        return process_peak_rss_mb(pid)
    except OSError:
        return 0.0


def _postgres_cpu_s() -> float | None:
    """CPU seconds of every process named `postgres` on the machine (None when there is none): the server
    is shared, so this is an upper bound of what the bench cost it."""
    total, found = 0.0, False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            total += process_cpu_s(int(entry.name))
            found = True
        except OSError:
            continue
    return total if found else None


async def generate_load(
    host: str,
    port: int,
    states: list[TerminalState],
    cards: list[CardProfile],
    duration_s: float,
    warmup_s: float,
    mix: str = "sale",
    rate: float | None = None,
    connections: str = "persistent",
    watch: Watch | None = None,
) -> BenchReport:
    """Run the load for `warmup_s` + `duration_s`; closed loop (each terminal back to back) unless `rate`
    (arrivals per second, open loop: a free terminal takes the next arrival)."""
    start = time.monotonic()
    warmup_until = start + warmup_s
    report = BenchReport(duration_s=duration_s)
    load = Load(host, port, CardDeck(cards), report, warmup_until, warmup_until + duration_s, connections)
    watcher = asyncio.create_task((watch or Watch([], progress=False)).run(load))
    if mix == "day":
        tasks = [_day_loop(load, s, cards) for s in states]
    elif rate is None:
        tasks = [_closed_loop_terminal(load, s) for s in states]
    else:
        arrivals: asyncio.Queue[float | None] = asyncio.Queue()
        tasks = [_open_loop_terminal(load, s, arrivals) for s in states]
        tasks.append(_schedule_arrivals(rate, start, load.until, arrivals, len(states), report))
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        watcher.cancel()
        raise
    await watcher
    return report


def _spawn(command: str, env: dict[str, str], ready_prefix: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start `posgate <command>`; the lines it printed up to and including its ready line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "posgate", command], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
        if line.startswith(ready_prefix):
            return proc, lines
    proc.kill()
    raise RuntimeError(f"posgate {command} did not print {ready_prefix!r} within 60 s")


def start_stack(
    settings: Settings, topology: str = "single", extra_env: dict[str, str] | None = None
) -> tuple[list[StackProcess], str, int]:
    """The stack under test as child processes on the bench's store: `posgate up` (single), or
    `posgate issuer` and `posgate host` (split: two interpreters, two cores). Waits for the ready line.
    The host's operations port is on any free port (`StackProcess.ops_url`)."""
    env = dict(os.environ)
    env.update(
        {
            "POSGATE_DATA_DIR": str(settings.data_dir),
            "POSGATE_POS_PORT": "0",
            "POSGATE_CONSOLE_PORT": "0",
            "POSGATE_OPS_PORT": "0",
            "POSGATE_WALLET_SIM_PORTS": "0,0,0",  # `posgate up` starts the wallet simulators too
            "POSGATE_ISSUER_PORTS": "0,0",
            "POSGATE_LOG_LEVEL": "WARNING",
            "POSGATE_RISK_RULES": settings.risk_rules,
        }
    )
    # every bench terminal connects from this machine: one source address, as behind a load balancer
    env.setdefault("POSGATE_POS_MAX_CONNECTIONS", "100000")
    env.setdefault("POSGATE_POS_MAX_CONNECTIONS_PER_SOURCE", "100000")
    env.setdefault("POSGATE_POS_MAX_IN_FLIGHT_PER_SOURCE", "100000")
    if settings.database_url:
        env["POSGATE_DATABASE_URL"] = settings.database_url
    env.update(extra_env or {})
    procs = []
    if topology == "split":
        issuer, lines = _spawn("issuer", env, "posgate issuers ")
        procs.append(StackProcess("posgate issuer", issuer))
        line = lines[-1]
        # the simulator's bound ports become the host's routes (bank names in the ready line, name order)
        ports = [part.rsplit("=", 1)[1] for part in line.removeprefix("posgate issuers ").split(",")]
        env["POSGATE_ISSUER_PORTS"] = ",".join(ports)
    command = "host" if topology == "split" else "up"
    proc, lines = _spawn(command, env, "posgate ready pos=")
    ops = [line.removeprefix("posgate ops ") for line in lines if line.startswith("posgate ops ")]
    procs.append(StackProcess(f"posgate {command}", proc, ops[0] if ops else None))
    host, port = lines[-1].split("=", 1)[1].rsplit(":", 1)
    return procs, host, int(port)


@dataclass
class StackProcess:
    role: str
    proc: subprocess.Popen[str]
    ops_url: str | None = None  # the host's operations port, `http://HOST:PORT/`


def stop_stack(procs: list[StackProcess]) -> None:
    for stack_process in reversed(procs):
        proc = stack_process.proc
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class BenchOptions:
    """The parameters of one `posgate bench auth` run (all of them are in its JSON, but the database URL)."""

    terminals: int = 16
    duration_s: float = 20
    warmup_s: float = 3
    cards: int = 0  # 0: enough for the load (`cards_for`)
    database_url: str | None = None
    data_dir: Path | None = None
    topology: str = "single"
    mix: str = "sale"
    rate: float | None = None
    connections: str = "persistent"
    risk_rules: str | None = None  # None: the setting (POSGATE_RISK_RULES, default `default`)
    profile_dir: Path | None = None
    progress: bool = True
    idle_connections: int = 0  # extra terminal connections opened first and held, silent, for the run


#: At most this many sales per card at the bench's one merchant within 10 minutes: the default rules
#: decline the 6th (`card-merchant-velocity`, 5 approved in 10 minutes → `65`).
SALES_PER_CARD = 4
#: Cards provisioned for a closed-loop run when `--cards` is not given: 20,000 cards x 4 sales cover
#: 80,000 sales, e.g. 3,000/s for 25 s.
DEFAULT_CLOSED_LOOP_CARDS = 20_000


def cards_for(options: BenchOptions) -> int:
    """The card count: `--cards`, or enough for `SALES_PER_CARD` sales each over the whole run.

    >>> cards_for(BenchOptions(rate=500, duration_s=20, warmup_s=3))
    2875
    >>> cards_for(BenchOptions())
    20000
    """
    if options.cards:
        return options.cards
    if options.rate is None:
        return DEFAULT_CLOSED_LOOP_CARDS
    return max(100, math.ceil(options.rate * (options.duration_s + options.warmup_s) / SALES_PER_CARD))


def _start_profilers(
    procs: list[StackProcess], directory: Path, duration_s: float
) -> list[subprocess.Popen[bytes]]:
    """py-spy attached to each stack process for the measured window (needs ptrace rights: root, or
    kernel.yama.ptrace_scope = 0), writing `<directory>/<role>.svg` flame graphs."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise RuntimeError("--profile needs py-spy: pip install 'posgate[profile]'")
    directory.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(p.proc.pid),
                "--duration",
                str(math.ceil(duration_s)),
                "--rate",
                "100",
                "--nonblocking",
                "--format",
                "flamegraph",
                "--output",
                str(directory / f"{p.role.replace(' ', '-')}.svg"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in procs
    ]


async def _profiled(
    load: asyncio.Future[BenchReport] | Any, procs: list[StackProcess], options: BenchOptions
) -> BenchReport:
    assert options.profile_dir is not None
    await asyncio.sleep(options.warmup_s)
    profilers = _start_profilers(procs, options.profile_dir, options.duration_s)
    report = await load
    for profiler in profilers:
        await asyncio.to_thread(profiler.wait, 60)
    return report


def run_auth_bench(options: BenchOptions) -> tuple[BenchReport, dict[str, Any]]:
    """Provision, start the stack, run the load, stop the stack: the report and the run's parameters."""
    workdir = options.data_dir or Path(tempfile.mkdtemp(prefix="posgate-bench-"))
    card_count = cards_for(options)
    with scratch_database(options.database_url) as url:
        overrides = {"risk_rules": options.risk_rules} if options.risk_rules else {}
        settings = Settings(data_dir=workdir, database_url=url, env="test", **overrides)
        if options.progress:
            print(
                f"bench: provisioning {options.terminals} terminals and {card_count} cards …",
                file=sys.stderr,
                flush=True,
            )
        states, profiles = provision(settings, options.terminals, card_count)
        procs, host, port = start_stack(settings, options.topology)
        parameters: dict[str, Any] = {
            "terminals": options.terminals,
            "store": "postgresql" if url else "sqlite",
            "workers": 1,
            "rules": settings.risk_rules.strip() != "off",
            "rule_set": settings.risk_rules.strip(),
            "mode": "closed" if options.rate is None else "open",
            "rate": options.rate,
            "connections": options.connections,
            "topology": options.topology,
            "mix": options.mix,
            "cards": card_count,
            "warmup_s": options.warmup_s,
            "idle_connections": options.idle_connections,
        }
        if options.profile_dir is not None:
            parameters["profiles"] = [
                str(options.profile_dir / f"{p.role.replace(' ', '-')}.svg") for p in procs
            ]
        try:
            if options.mix == "day":  # chip and contactless cards too: the day taps and inserts them
                profiles = [*profiles, demo_card("credit-chip"), demo_card("credit-chip-2")]
            if options.progress:
                print(
                    f"bench: load for {options.warmup_s:g} s warm-up + {options.duration_s:g} s",
                    file=sys.stderr,
                    flush=True,
                )
            watch = Watch(
                [ProcessFigures(p.role, p.proc.pid) for p in procs],
                progress=options.progress,
                postgres=url is not None,
                ops_url=procs[-1].ops_url,
            )

            async def main() -> BenchReport:
                idle = await open_idle_connections(host, port, options.idle_connections)
                try:
                    return await measured()
                finally:
                    for writer in idle:
                        writer.close()

            async def measured() -> BenchReport:
                load = generate_load(
                    host,
                    port,
                    states,
                    profiles,
                    options.duration_s,
                    options.warmup_s,
                    options.mix,
                    options.rate,
                    options.connections,
                    watch,
                )
                if options.profile_dir is None:
                    return await load
                return await _profiled(asyncio.ensure_future(load), procs, options)

            report = asyncio.run(main())
        finally:
            stop_stack(procs)
    return report, parameters


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
