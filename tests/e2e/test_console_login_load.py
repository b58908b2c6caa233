"""Issue 9, finding 6: a login flood on the console must not slow the POS port that `posgate up` serves
from the same process, nor grow its memory by one Argon2 buffer (19 MiB) per concurrent login.

`posgate up` runs in its own process (host, issuer simulator, console); 40 threads sign in to the console
without pause (right passwords: every attempt that is admitted is hashed) while the terminal simulator
times sign-in + sale. Before the fix (hashes on as many threads as requests): median 1.8 s in the black-box
report, and the process grew by hundreds of MiB."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from posgate.terminal import TerminalClient, demo_card, demo_terminal_state

# not marked `default_risk_rules`: its sales hammer one card within seconds, so it runs the list rules
# (tests/conftest.py)
pytestmark = pytest.mark.slow

CARD = demo_card("6229990000000012")
USERS = ("operator", "reviewer", "risk", "finance", "admin")
FLOOD_THREADS = 40
ROUNDS = 12
# generous for a shared 2-core machine (and relative to the quiet median, which load on the machine raises);
# the old code: 2.2 s under load against 0.15 s quiet, and 652 MiB more (see docs/security.md)
MEDIAN_BOUND_S = 0.6
QUIET_FACTOR = 4
GROWTH_BOUND_MIB = 120  # one or two Argon2 buffers and noise, not forty


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


async def _start_up(tmp_path: Path) -> tuple[asyncio.subprocess.Process, str, tuple[str, int]]:
    env = {k: v for k, v in os.environ.items() if k != "POSGATE_CONFIG"}
    env.update({"POSGATE_ENV": "test", "POSGATE_SIGN_IN_LIMIT": "10000", "POSGATE_LOG_LEVEL": "WARNING"})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "posgate", "up", "--data-dir", str(tmp_path / "data")),
        *("--pos-port", "0", "--console-port", "0", "--issuer-ports", "0,0"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    console = ""
    while True:
        line = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
        assert line, "posgate up exited"
        if line.startswith("posgate console "):
            console = line.split(" ", 2)[2].strip().rstrip("/")
        if line.startswith("posgate ready pos="):
            host, port = line.strip().split("=", 1)[1].rsplit(":", 1)
            return process, console, (host, int(port))


def _flood(base: str, stop: threading.Event, answers: Counter[int], lock: threading.Lock, n: int) -> None:
    with httpx.Client(base_url=base, timeout=60) as client:
        while not stop.is_set():
            user = USERS[n % len(USERS)]
            try:
                status = client.post("/api/auth/login", json={"username": user, "password": "posgate-demo"})
                code = status.status_code
            except httpx.HTTPError:
                code = 0
            with lock:
                answers[code] += 1


async def _rounds(terminal: TerminalClient, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        assert (await terminal.sign_in()).approved
        sale = await terminal.sale(CARD, "123456", 100)
        assert sale.response_code == "00", sale
        times.append(time.perf_counter() - started)
    return times


async def test_a_login_flood_does_not_slow_pos_sales_nor_grow_memory(tmp_path: Path) -> None:
    process, console, pos = await _start_up(tmp_path)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        terminal = TerminalClient(*pos, demo_terminal_state(), timeout_s=30)
        async with terminal:
            quiet = await _rounds(terminal, ROUNDS)
            rss_before = _status_kib(process.pid, "VmRSS")
            answers: Counter[int] = Counter()
            lock = threading.Lock()
            threads = [
                threading.Thread(target=_flood, args=(console, stop, answers, lock, n), daemon=True)
                for n in range(FLOOD_THREADS)
            ]
            for thread in threads:
                thread.start()
            await asyncio.sleep(2.0)  # the flood at full strength
            loaded = await _rounds(terminal, ROUNDS)
            peak = _status_kib(process.pid, "VmHWM")
            stop.set()
            for thread in threads:
                await asyncio.to_thread(thread.join)
        quiet_median, loaded_median = statistics.median(quiet), statistics.median(loaded)
        growth_mib = (peak - rss_before) / 1024
        print(
            f"sign-in + sale median: quiet {quiet_median:.3f} s, under {FLOOD_THREADS} logins"
            f" {loaded_median:.3f} s; memory growth {growth_mib:.0f} MiB; console answers {dict(answers)}"
        )
        assert answers[200] > 0, answers  # the flood did sign in: hashes were computed throughout
        assert loaded_median < max(MEDIAN_BOUND_S, QUIET_FACTOR * quiet_median), (quiet_median, loaded_median)
        assert growth_mib < GROWTH_BOUND_MIB, growth_mib
    finally:
        stop.set()
        process.terminate()
        await process.wait()
