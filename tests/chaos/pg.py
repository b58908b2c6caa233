"""OwnPostgres: a PostgreSQL 15 server of the harness's own — initdb in a temporary folder, a free loopback
port, no Unix socket — that it can SIGKILL and start again (crash recovery from the WAL). Never the shared
server on 5432. Run as the `postgres` user when the harness runs as root (initdb refuses root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("POSGATE_CHAOS_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def available() -> str | None:
    """None when a server can be run here, else why not."""
    if not (PG_BIN / "initdb").is_file() or not (PG_BIN / "postgres").is_file():
        return f"no PostgreSQL binaries in {PG_BIN} (set POSGATE_CHAOS_PG_BIN)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run initdb as"
    return None


class OwnPostgres:
    """`start()` once (initdb + server), then `kill()` / `restart()` as often as wanted, `destroy()` at the
    end. The server's own log goes to `log_path` (scanned for card data with everything else)."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        # not under pytest's tmp_path: that is mode 0700 for root, and the server runs as `postgres`
        self.root = Path(tempfile.mkdtemp(prefix="posgate-chaos-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self._user: dict[str, object] = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    @property
    def server_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        subprocess.run(
            [PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            **self._user,  # type: ignore[arg-type]
        )
        self._launch()

    def _launch(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                PG_BIN / "postgres",
                "-D",
                self.data,
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=200",
                # a process kill loses nothing the kernel has: fsync only matters for power loss
                "-c",
                "fsync=off",
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own process group: the postmaster and every backend die together
            cwd=self.root,
            **self._user,  # type: ignore[arg-type]
        )
        log.close()
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = subprocess.run(
                [PG_BIN / "pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-q"], check=False
            )
            if result.returncode == 0:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited with {self.proc.returncode}: see {self.log_path}")
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL not ready on port {self.port} within {timeout_s:g} s")

    def dump(self, database: str, out: Path) -> None:
        """`pg_dump` of `database` to `out` (started again for it when stopped)."""
        if not self.running:
            self._launch()
        with out.open("wb") as file:
            subprocess.run(
                [PG_BIN / "pg_dump", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", database],
                stdout=file,
                check=False,
            )
        self.stop()

    def kill(self) -> None:
        """SIGKILL the postmaster and all its backends at once (a crashed server or machine)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def restart(self) -> None:
        self._launch()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
