"""One chaos run: provision, start the stack as processes, load it with terminals while a seeded schedule
of faults is injected, heal, wait out the recovery window, stop, clear, check the invariants, scan.

The fault schedule (which fault, when, for how long) is drawn from the seed up front, so a seed replays the
same schedule; how it interleaves with the terminals' traffic is up to the machine.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, MetaData, create_engine, select, text

from posgate.config import Settings
from posgate.fixtures.document import read_demo_fixture
from posgate.store.db import make_engine
from posgate.tools.card_scan import CardSecrets, Finding, scan_bytes, scan_path
from tests.chaos import invariants
from tests.chaos.invariants import Check
from tests.chaos.load import BANKS, PIN, ChaosTerminal, LoadReport, provision
from tests.chaos.pg import OwnPostgres
from tests.chaos.proxy import Mode
from tests.chaos.scan import RawScanner
from tests.chaos.stack import Stack

KILLS = {
    "split": ("kill_host", "kill_issuer", "freeze_host"),
    "two-hosts": ("kill_host", "kill_host2", "kill_issuer", "freeze_host", "freeze_host2"),
    "single": ("kill_up", "freeze_up"),
}
LINK_FAULTS = ("link_delay", "link_drop", "link_cut")


def fault_kinds(store: str, topology: str) -> tuple[str, ...]:
    kinds = KILLS[topology] + (LINK_FAULTS if topology != "single" else ())
    return kinds + (("kill_pg",) if store == "postgresql" else ())


@dataclass
class RunConfig:
    store: str = "postgresql"  # postgresql (a server of the run's own) | sqlite
    topology: str = "split"  # split | two-hosts | single (tests/chaos/stack.py)
    rounds: int = 6
    seed: int = 1
    terminals: int = 6
    cards: int = 40
    gap_s: tuple[float, float] = (1.0, 3.0)  # load between two faults
    recovery_s: float = 30.0  # how long the stack may take to resolve what is in doubt
    double_fault_p: float = 0.0  # chance that a round injects two faults at once

    @property
    def name(self) -> str:
        return f"{self.store}/{self.topology}"


@dataclass
class Fault:
    kind: str
    down_s: float  # how long the process stays dead or the link stays faulty
    delay_s: float = 0.0  # link_delay: how late every chunk is
    bank: int | None = None  # link faults: one bank's link (index), None for both


def schedule(config: RunConfig) -> list[tuple[float, list[Fault]]]:
    """(load before, faults) per round. Every kind appears once in the first rounds, then at random."""
    rng = random.Random(config.seed)
    kinds = list(fault_kinds(config.store, config.topology))
    rng.shuffle(kinds)
    plan = []
    for i in range(config.rounds):
        first = kinds[i] if i < len(kinds) else rng.choice(kinds)
        chosen = [first]
        if len(kinds) > 1 and rng.random() < config.double_fault_p:
            chosen.append(rng.choice([k for k in kinds if k != first]))
        faults = []
        for kind in chosen:
            bank = rng.choice([None, 0, 1])
            if kind.startswith("kill_"):
                faults.append(Fault(kind, rng.uniform(0.1, 1.5)))
            elif kind.startswith("freeze_"):  # shorter or longer than in_doubt_after_s 3 s, a terminal 4 s
                faults.append(Fault(kind, rng.uniform(2.0, 6.0)))
            elif kind == "link_delay":
                faults.append(Fault(kind, rng.uniform(1.5, 4.0), delay_s=rng.uniform(0.5, 2.5), bank=bank))
            elif kind == "link_drop":
                faults.append(Fault(kind, rng.uniform(1.0, 3.0), bank=bank))
            else:
                faults.append(Fault(kind, rng.uniform(0.3, 2.0), bank=bank))
        plan.append((rng.uniform(*config.gap_s), faults))
    return plan


@dataclass
class ScanSummary:
    """What the data-protection scan looked at and found (findings name cards masked only)."""

    places: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    findings: list[str] = field(default_factory=list)

    ignored: list[str] = field(default_factory=list)

    def add(self, place: object, findings: list[Finding] | list[str], files: int = 0, size: int = 0) -> None:
        path = Path(str(place))
        if path.exists() and not files:
            listed = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            files, size = len(listed), sum(p.stat().st_size for p in listed if not p.is_symlink())
        self.places.append(str(place))
        self.files += files
        self.bytes += size
        self.findings += [str(f) for f in findings]


@dataclass
class RunReport:
    config: RunConfig
    run_dir: Path
    faults: Counter[str] = field(default_factory=Counter)
    load: LoadReport = field(default_factory=LoadReport)
    checks: list[Check] = field(default_factory=list)
    scan: ScanSummary = field(default_factory=ScanSummary)
    clearing: list[str] = field(default_factory=list)
    quiescent_after_s: float | None = None
    stop_codes: dict[str, int | None] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    def mark(self, phase: str, since: float) -> float:
        """Time `phase` as ending now (started at `since`); returns now."""
        now = time.monotonic()
        self.phases[phase] = now - since
        return now

    @property
    def violations(self) -> int:
        return sum(len(c.violations) for c in self.checks)

    @property
    def ok(self) -> bool:
        return self.violations == 0 and not self.scan.findings

    def text(self) -> str:
        c, load = self.config, self.load
        faults = ", ".join(f"{k} ×{n}" for k, n in sorted(self.faults.items()))
        declined = sum(n for code, n in load.codes.items() if code != "00")
        quiet = (
            f"quiescent after {self.quiescent_after_s:.1f} s"
            if self.quiescent_after_s is not None
            else f"NOT quiescent after {c.recovery_s:g} s"
        )
        lines = [
            f"chaos run {c.name}: seed {c.seed}, {c.rounds} rounds, {c.terminals} terminals, {c.cards} cards,"
            f" {self.seconds:.0f} s — {'PASSED' if self.ok else 'FAILED'}",
            f"  run folder: {self.run_dir}",
            f"  phases: {', '.join(f'{k} {v:.1f} s' for k, v in self.phases.items())}",
            f"  faults injected: {sum(self.faults.values())} ({faults})",
            f"  load: {len(load.sales)} sales — {load.approved} approved, {declined} declined"
            f" ({', '.join(f'{k}×{n}' for k, n in sorted(load.codes.items()) if k != '00') or 'none'}),"
            f" {load.unknown} without an answer; {load.reversals_sent} reversals sent"
            f" ({load.reversals_approved} answered 00); {load.reconnects} connects, {load.sign_ins} sign-ins",
            f"  terminal errors: {dict(load.errors) or 'none'}",
            f"  recovery: {quiet}; stop exit codes {self.stop_codes}",
            *(f"  {line}" for line in self.clearing),
            f"  invariants: {len(self.checks)} checks, {sum(ch.checked for ch in self.checks)} items checked,"
            f" {self.violations} violations",
            *(check.line() for check in self.checks),
            f"  data protection: {self.scan.files} files ({self.scan.bytes / 1e6:.1f} MB) and the database's"
            f" rows scanned in {len(self.scan.places)} passes, {len(self.scan.findings)} findings"
            f" ({len(self.scan.ignored)} MID look-alikes in SQLite index pages set aside)",
            *(f"      - {finding}" for finding in self.scan.findings[:10]),
        ]
        return "\n".join(lines)


def _all_rows(engine: Engine, sql: str) -> list:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return list(conn.execute(text(sql)))


class ChaosRun:
    def __init__(self, config: RunConfig, run_dir: Path) -> None:
        self.config, self.run_dir = config, run_dir
        self.report = RunReport(config, run_dir)
        self.pg: OwnPostgres | None = None
        self.stack: Stack | None = None
        self.rng = random.Random(config.seed + 1)

    async def run(self) -> RunReport:
        began = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        data_dir = self.run_dir / "data"
        try:
            try:
                await self._run(data_dir, await self._database())
            finally:  # whatever failed: no process of the run outlives it
                if self.stack is not None:
                    self.report.stop_codes = await self.stack.stop()
                if self.pg is not None:
                    self.pg.stop()
            scan_began = time.monotonic()
            self._scan()
            self.report.mark("scan", scan_began)
            if self.pg is not None and not self.report.ok:  # keep the evidence: the server goes next
                self.pg.dump("chaos", self.run_dir / "chaos.sql")
        finally:
            if self.pg is not None:
                self.pg.destroy()
        self.report.seconds = time.monotonic() - began
        return self.report

    async def _database(self) -> str | None:
        """The run's own PostgreSQL server and database (None: SQLite in the data folder)."""
        if self.config.store != "postgresql":
            return None
        self.pg = OwnPostgres(self.run_dir / "postgresql.log")
        await asyncio.to_thread(self.pg.start)
        admin = create_engine(self.pg.server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE chaos"))
        admin.dispose()
        return self.pg.url("chaos")

    async def _run(self, data_dir: Path, url: str | None) -> None:
        config, report = self.config, self.report
        since = time.monotonic()
        settings = Settings(data_dir=data_dir, database_url=url, env="test")
        states, cards = await asyncio.to_thread(provision, settings, config.terminals, config.cards)
        self.cards = cards
        engine = make_engine(settings.resolved_database_url, pool_size=2)
        accounts_before = invariants.account_snapshot(engine)
        engine.dispose()
        self.stack = stack = Stack(self.run_dir, data_dir, url, config.topology)
        await stack.start()
        since = report.mark("start", since)

        stop = asyncio.Event()
        terminals = [
            ChaosTerminal(
                "127.0.0.1",
                stack.pos_ports[i % len(stack.pos_ports) :] + stack.pos_ports[: i % len(stack.pos_ports)],
                state,
                cards,
                reverses=i % 2 == 0,
                rng=random.Random(f"{config.seed}:{state.tid}"),
                report=report.load,
                timeout_s=4.0,
            )
            for i, state in enumerate(states)
        ]
        load = [asyncio.create_task(t.run(stop)) for t in terminals]
        try:
            for gap_s, faults in schedule(config):
                await asyncio.sleep(gap_s)
                await asyncio.gather(*(self._inject(fault) for fault in faults))
                report.faults.update(f.kind for f in faults)
                await self._revive()
            await asyncio.sleep(1.0)  # some load on the healed stack
        finally:
            stop.set()
            await asyncio.gather(*load, return_exceptions=True)
        deadline = time.monotonic() + 20
        await asyncio.gather(*(t.finish(deadline) for t in terminals))
        since = report.mark("load and faults", since)

        engine = make_engine(settings.resolved_database_url, pool_size=2)
        try:
            started = time.monotonic()
            while time.monotonic() - started < config.recovery_s:
                await self._revive()
                if await asyncio.to_thread(invariants.quiescent, engine):
                    report.quiescent_after_s = time.monotonic() - started
                    break
                await asyncio.sleep(0.5)
            since = report.mark("recovery", since)
            merchants = await asyncio.to_thread(_all_rows, engine, "select mid from merchants")
            self.mids = {row[0] for row in merchants}
            self._scan_live_store(data_dir)
            since = report.mark("live scan", since)
            report.stop_codes = await stack.stop()
            self.stack = None
            report.clearing = await asyncio.to_thread(invariants.clear_every_date, engine, data_dir)
            report.checks = await asyncio.to_thread(
                invariants.check_all, engine, data_dir, report.load.sales, accounts_before
            )
            report.checks.append(self._survival_check(stack))
            since = report.mark("stop, clearing, checks", since)
            self._scan_database(engine)
            report.mark("database scan", since)
        finally:
            engine.dispose()

    async def _inject(self, fault: Fault) -> None:
        stack = self.stack
        assert stack is not None
        if fault.kind == "kill_pg":
            assert self.pg is not None
            self.pg.kill()
            await asyncio.sleep(fault.down_s)
            await asyncio.to_thread(self.pg.restart)
            return
        if fault.kind.startswith("freeze_"):
            await stack.services[fault.kind.removeprefix("freeze_")].freeze(fault.down_s)
            return
        if fault.kind.startswith("kill_"):
            service = stack.services[fault.kind.removeprefix("kill_")]
            service.kill9()
            await asyncio.sleep(fault.down_s)
            await service.start()
            return
        proxies = stack.proxies if fault.bank is None else [stack.proxies[fault.bank]]
        mode = {"link_delay": Mode.DELAY, "link_drop": Mode.DROP, "link_cut": Mode.CUT}[fault.kind]
        for proxy in proxies:
            await proxy.set_mode(mode, fault.delay_s)
        await asyncio.sleep(fault.down_s)
        for proxy in proxies:
            await proxy.set_mode(Mode.PASS)

    async def _revive(self) -> None:
        """Bring back whatever died without being killed (counted by the survival check)."""
        if self.pg is not None and not self.pg.running:
            await asyncio.to_thread(self.pg.restart)
        if self.stack is not None:
            await self.stack.ensure_running()

    def _survival_check(self, stack: Stack) -> Check:
        """No service exited without being killed, and each stopped cleanly on SIGTERM at the end."""
        check = Check("no process died unasked")
        for service in stack.services.values():
            check.checked += service.incarnation
            check.violations.extend(f"{service.name} died: {exit}" for exit in service.unexpected_exits)
        for name, code in self.report.stop_codes.items():
            if code != 0:
                check.fail(f"{name} did not stop cleanly on SIGTERM (exit {code})")
        return check

    def _real(self, findings: list[Finding]) -> list[Finding]:
        """The findings less the scanner's known false positive on SQLite files: an index on `mid` stores
        each entry as the 15-digit MID then the row id, a one-byte integer for ids up to 127 — for ids 48
        to 57 an ASCII digit, so one entry in ten reads as a Luhn-valid 16-digit number (MID + 1 digit).
        Those are set aside (`ignored`, reported), anything else stays a finding."""
        kept = []
        for finding in findings:
            path = Path(finding.where)
            if "Luhn-valid 16-digit" in finding.what and path.is_file():
                with path.open("rb") as handle:
                    handle.seek(finding.offset)
                    digits = handle.read(16).decode("ascii", "replace")
                if digits[:15] in self.mids:
                    self.report.scan.ignored.append(f"{finding} — MID {digits[:15]} + row id byte")
                    continue
            kept.append(finding)
        return kept

    @functools.cached_property
    def secrets(self) -> CardSecrets:
        """What must not be found at rest: every demo card's and every run card's PAN, track 2 and PIN
        block (clear, and under its bank's ZPK — what the host sends the issuer)."""
        secrets = CardSecrets.demo()
        fixture = read_demo_fixture()
        for card in self.cards:
            bank = next(name for name, prefix in BANKS.items() if card.pan.startswith(prefix))
            zpk = bytes.fromhex(fixture.bank(bank).zpk)
            secrets.add_card(card.pan, card.track2, PIN, [(f"ZPK of {bank}", zpk)])
        return secrets

    def _raw_scanner(self) -> RawScanner:
        fixture = read_demo_fixture()
        pins = {card.pan: PIN for card in self.cards} | {c.pan: c.pin for c in fixture.cards}
        return RawScanner(pins.keys(), pins, BANKS.values())

    def _scan_live_store(self, data_dir: Path) -> None:
        """SQLite's WAL and SHM while the stack still runs: they exist only until it stops (the rest of
        the data folder is scanned afterwards). A WAL is mostly zeros, card_scan's worst case (15 s for
        4 MB here): the raw scan reads it."""
        raw = self._raw_scanner().scan(sorted(data_dir.glob("*.sqlite-*")))
        self.report.scan.add("the live WAL and SHM", [str(f) for f in raw.findings], raw.files, raw.bytes)

    def _scan_database(self, engine: Engine) -> None:
        """Every value of every table, read over the connection (what a dump holds; PostgreSQL may keep a
        long value compressed on disk, out of the raw scan's sight). One scan per column, its values
        joined (`card_scan.scan_database` scans value by value: over a minute for a run's rows)."""
        metadata = MetaData()
        metadata.reflect(engine)
        findings: list[Finding] = []
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                for column in table.columns:
                    values = connection.execute(select(column).where(column.is_not(None))).scalars()
                    blob = b"\n".join(v if isinstance(v, bytes) else str(v).encode() for v in values)
                    findings += scan_bytes(blob, f"{table.name}.{column.name}", self.secrets)
        self.report.scan.add("the database's rows", findings)

    def _scan(self) -> None:
        """Everything the run left: the data folder (store, log, clearing files), every process's stdout
        and stderr (crash output included), and the PostgreSQL server's own files — heap and WAL, 70 MB
        and more, scanned with the fast BIN-anchored `RawScanner` — and its log."""
        secrets = self.secrets
        self.report.scan.add(self.run_dir, self._real(scan_path(self.run_dir, secrets)))
        if self.pg is not None:
            raw = self._raw_scanner().scan([self.pg.data])
            self.report.scan.add(self.pg.data, [str(f) for f in raw.findings], raw.files, raw.bytes)
