"""Photo files outside the database: `<root>/<sha256[:2]>/<sha256>.<ext>`, content-addressed, written
atomically with mode 0600 (folders 0700) only after validation, and removed again when the unit of work
that references them fails (unless another committed row already references the same content).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from posgate.files import FILE_MODE, private_dir
from posgate.merchants.images import ImageInfo

T = TypeVar("T")


class UploadStore:
    """The folder of uploaded photos."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, sha256: str, ext: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256) or ext not in ("jpg", "png"):
            raise ValueError("not an upload name")
        return self.root / sha256[:2] / f"{sha256}.{ext}"

    def read(self, sha256: str, ext: str) -> bytes:
        return self.path_for(sha256, ext).read_bytes()

    def put(self, data: bytes, info: ImageInfo) -> Path | None:
        """Write the file; returns its path when this call created it, None when it already existed."""
        path = self.path_for(info.sha256, info.ext)
        if path.exists():
            return None
        private_dir(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=".upload.", dir=path.parent)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


class Staging:
    """The files one unit of work created, to take back if it fails."""

    def __init__(self, uploads: UploadStore) -> None:
        self.uploads = uploads
        self.created: list[tuple[Path, str]] = []

    def put(self, data: bytes, info: ImageInfo) -> None:
        path = self.uploads.put(data, info)
        if path is not None:
            self.created.append((path, info.sha256))

    def discard(self, still_referenced: Callable[[str], bool]) -> None:
        for path, sha256 in self.created:
            with contextlib.suppress(Exception):
                if not still_referenced(sha256):
                    path.unlink(missing_ok=True)
        self.created.clear()


def with_files(
    transact: Callable[[Callable[..., T]], T],
    uploads: UploadStore,
    work: Callable[..., T],
    still_referenced: Callable[[str], bool],
) -> T:
    """Run `work(session, staging)` in one unit of work; on any failure remove the files it created."""
    staging = Staging(uploads)
    try:
        return transact(lambda session: work(session, staging))
    except BaseException:
        staging.discard(still_referenced)
        raise
