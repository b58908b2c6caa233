"""Finding 4 of issue 9: the database and the log were mode 0644. Every file posgate creates is 0600 and
every folder 0700 — the data directory, the SQLite store with its WAL and SHM (which SQLite creates
itself), the log, master.key, uploads, terminal state files, clearing and bank files — whatever the umask
of the shell that started it."""

from __future__ import annotations

import datetime as dt
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from posgate.merchants.images import ImageInfo
from posgate.merchants.uploads import UploadStore

pytestmark = pytest.mark.default_risk_rules  # the host's own default risk rules

POSGATE = [sys.executable, "-m", "posgate"]
LOOSE_UMASK = 0o022  # a usual login shell's


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        POSGATE + args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        umask=LOOSE_UMASK,
        env={k: v for k, v in os.environ.items() if k != "POSGATE_CONFIG"},
    )


def loose_modes(*roots: Path) -> list[str]:
    """Every file not 0600 and every folder not 0700 under `roots` (the roots included)."""
    found = []
    for root in roots:
        for path in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            want = 0o700 if path.is_dir() else 0o600
            if mode != want:
                found.append(f"{path.relative_to(root.parent)} {mode:o}")
    return found


@pytest.mark.slow
def test_every_file_and_folder_posgate_creates_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [
            *POSGATE,
            "up",
            "--data-dir",
            str(data),
            "--pos-port",
            "0",
            "--issuer-ports",
            "0,0",
            "--console-port",
            "0",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        umask=LOOSE_UMASK,
    )
    try:
        assert proc.stdout is not None
        port = ""
        for line in proc.stdout:
            if line.startswith("posgate ready pos="):
                port = line.strip().rsplit(":", 1)[1]
                break
        assert port, "no ready line"
        state = tmp_path / "terminals" / "t.json"
        sale = run(["terminal", "sale", "12.34", "--port", port, "--state-file", str(state)], tmp_path)
        assert sale.returncode == 0, sale.stdout + sale.stderr
        # the WAL and SHM exist while the store is open: SQLite made them
        assert (data / "posgate.sqlite-wal").exists() and (data / "posgate.sqlite-shm").exists()
        assert loose_modes(data, state.parent) == []
        out = tmp_path / "clearing" / "bank-a.csv"
        today = dt.date.today().isoformat()
        command = ["issuer", "clearing-file", "--date", today, "--bank", "Demo Bank A", "--out", str(out)]
        done = run([*command, "--data-dir", str(data)], tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert loose_modes(data, state.parent, out.parent) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert (data / "posgate.log").stat().st_size > 0
    assert loose_modes(data, state.parent, out.parent) == []


def test_uploaded_photos_and_their_folders_are_private(tmp_path: Path) -> None:
    old = os.umask(LOOSE_UMASK)
    try:
        uploads = UploadStore(tmp_path / "uploads")
        path = uploads.put(
            b"\x89PNG...",
            ImageInfo(mime="image/png", ext="png", size=10, width=1, height=1, sha256="ab" * 32),
        )
    finally:
        os.umask(old)
    assert path is not None and path.read_bytes() == b"\x89PNG..."
    assert loose_modes(tmp_path / "uploads") == []
