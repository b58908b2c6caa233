"""Private files: every file posgate creates is mode 0600 and every folder 0700, whatever the umask of the
shell that started it. Files created by others on posgate's behalf (SQLite's WAL and SHM, temporary files
of libraries) are covered by the process umask 077 that `restrict_umask` sets at start-up.

>>> oct(FILE_MODE), oct(DIR_MODE)
('0o600', '0o700')
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
PRIVATE_UMASK = 0o077


def restrict_umask() -> None:
    """Make whatever this process creates from now on private to its user (umask 077)."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path, own: bool = False) -> Path:
    """Create `path` and its missing parents, each mode 0700. An existing folder keeps its mode unless
    posgate `own`s it (the data directory): then it is set to 0700."""
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:  # created meanwhile by another process
            continue
        os.chmod(folder, DIR_MODE)  # the umask may have taken bits the mode asked for: make it exact
    if own:
        os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make sure `path` exists with mode 0600 (created empty if missing; an existing file is tightened)."""
    path = Path(path)
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def tighten(path: Path) -> None:
    """Set an existing file (or folder) to 0600 (0700); nothing if it does not exist."""
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)


def write_private(path: Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (a temporary name in the same folder, then renamed), mode 0600."""
    path = Path(path)
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.part")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
