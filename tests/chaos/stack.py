"""The stack under test as real OS processes the harness can SIGKILL and start again.

`split`: `posgate issuer` and `posgate host` on one store (the host reaches each simulated bank through a
`FaultProxy`); `two-hosts`: the same with a second `posgate host` node (`host2`) on the same store, the
terminals shared between the two (a node that survives resolves what a killed one left in doubt);
`single`: `posgate up` (host, issuers and console in one process, no proxy). Every port is
fixed for the whole run (free ports chosen at the start) so terminals and links find a restarted process
where the old one was. Each incarnation's stdout and stderr go to files of their own in the run folder —
the crash output the data-protection scan reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.chaos.pg import free_port
from tests.chaos.proxy import FaultProxy

#: Short timers, so a fault and its recovery both fit in seconds.
CHAOS_ENV = {
    "POSGATE_ENV": "test",
    "POSGATE_LOG_LEVEL": "INFO",
    "POSGATE_ISSUER_TIMEOUT_S": "1.0",
    "POSGATE_ISSUER_CONNECT_TIMEOUT_S": "1.0",
    "POSGATE_ECHO_INTERVAL_S": "1.0",
    "POSGATE_RECONNECT_MAX_S": "0.5",
    "POSGATE_SAF_RETRY_S": "0.5",
    "POSGATE_IN_DOUBT_AFTER_S": "3.0",  # the least allowed: issuer_timeout_s + 2
    "POSGATE_RECOVERY_INTERVAL_S": "1.0",
    "POSGATE_OPS_PORT": "0",  # two host nodes, and other runs on the machine: never the fixed default
    # faults make bursts of declines (91, 98) at each terminal within seconds, which the default risk rules
    # would refuse as card testing (59); chaos is about money and faults, not risk: the list rules only
    "POSGATE_RISK_RULES": "lists",
    "PYTHONFAULTHANDLER": "1",  # a fatal error dumps its traceback to stderr (scanned too)
}


class Service:
    """One `posgate <command>` process, started again after each kill."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], run_dir: Path, ready: str) -> None:
        self.name, self.args, self.env, self.run_dir, self.ready = name, args, env, run_dir, ready
        self.proc: subprocess.Popen[bytes] | None = None
        self.incarnation = 0
        self.kills = 0
        self.freezes = 0
        self.failed_starts = 0
        self.unexpected_exits: list[str] = []

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self, suffix: str) -> Path:
        return self.run_dir / f"{self.name}-{self.incarnation}.{suffix}"

    async def start(self, timeout_s: float = 90) -> None:
        """Spawn until the ready line appears (a start can fail while the database is down: try again)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.incarnation += 1
            out, err = self.output("out"), self.output("err")
            with out.open("wb") as stdout, err.open("wb") as stderr:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "posgate", *self.args],
                    env=self.env,
                    cwd=self.run_dir,
                    stdout=stdout,
                    stderr=stderr,
                    stdin=subprocess.DEVNULL,
                )
            while self.proc.poll() is None and time.monotonic() < deadline:
                if self.ready.encode() in out.read_bytes():
                    return
                await asyncio.sleep(0.05)
            if self.proc.poll() is None:
                self.kill9()
                raise RuntimeError(f"{self.name} printed no {self.ready!r} within {timeout_s:g} s: see {err}")
            self.failed_starts += 1
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{self.name} keeps exiting at start: see {err}")
            await asyncio.sleep(0.3)

    def kill9(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    async def freeze(self, seconds: float) -> None:
        """SIGSTOP, then SIGCONT after `seconds`: a process that stalls (a VM paused, a swap storm) and
        then carries on where it was, its connections still open."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.proc.send_signal(signal.SIGCONT)
        self.freezes += 1

    def note_exit(self) -> bool:
        """True (and remembered) when the process died without being killed by the harness."""
        if self.proc is None or self.proc.poll() is None:
            return False
        self.unexpected_exits.append(f"{self.output('err').name}: exit {self.proc.returncode}")
        return True

    async def stop(self, timeout_s: float = 20) -> int | None:
        """SIGTERM and wait: the exit code, or None when it had to be killed."""
        if not self.alive:
            return self.proc.returncode if self.proc is not None else None
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            self.kill9()
            return None
        return self.proc.returncode


def service_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSGATE_")}
    env.update(CHAOS_ENV)
    env["POSGATE_DATA_DIR"] = str(data_dir)
    if database_url:
        env["POSGATE_DATABASE_URL"] = database_url
    return env


class Stack:
    """The processes (and proxies) of one run."""

    def __init__(self, run_dir: Path, data_dir: Path, database_url: str | None, topology: str) -> None:
        self.topology = topology
        env = service_env(data_dir, database_url)
        nodes = 2 if topology == "two-hosts" else 1
        self.pos_ports = [free_port() for _ in range(nodes)]
        self.issuer_ports = [free_port(), free_port()]  # Demo Bank A, Demo Bank B (name order)
        self.proxies: list[FaultProxy] = []
        self.services: dict[str, Service] = {}
        issuers = ",".join(map(str, self.issuer_ports))
        if topology == "single":
            up = ["up", "--pos-port", str(self.pos_ports[0]), "--issuer-ports", issuers]
            self.services["up"] = Service(
                "up",
                [*up, "--console-port", "0"],
                env,
                run_dir,
                "posgate ready pos=",
            )
            return
        self.proxies = [FaultProxy("127.0.0.1", port) for port in self.issuer_ports]
        self.services["issuer"] = Service(
            "issuer", ["issuer", "--issuer-ports", issuers], env, run_dir, "posgate issuers "
        )
        for n, port in enumerate(self.pos_ports, start=1):
            name = "host" if n == 1 else f"host{n}"
            self.services[name] = Service(
                name,
                ["host", "--pos-port", str(port), "--issuer-ports", "{proxies}"],
                env,
                run_dir,
                "posgate ready pos=",
            )

    async def start(self) -> None:
        if self.proxies:
            ports = ",".join([str(await proxy.start()) for proxy in self.proxies])
            for service in self.services.values():
                service.args = [a.replace("{proxies}", ports) for a in service.args]
        for service in self.services.values():  # the issuer first: the host signs on to it
            await service.start()

    async def ensure_running(self) -> list[str]:
        """Start whatever died on its own since the last look; what it found."""
        found = []
        for service in self.services.values():
            if service.note_exit():
                found.append(service.unexpected_exits[-1])
                await service.start()
        return found

    async def stop(self) -> dict[str, int | None]:
        codes = {}
        for name in reversed(list(self.services)):
            codes[name] = await self.services[name].stop()
        for proxy in self.proxies:
            await proxy.stop()
        return codes
