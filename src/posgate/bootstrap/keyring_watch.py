"""Master keyring watch: a running process (host, issuer simulator, console) reads `master.key` again when
it changes, so a master key version added by `posgate keys rotate-master` seals everything this process
writes within `master_key_reload_s`, with no restart. A ciphertext of a version the process does not hold
yet makes the vault read the file at once (`CardVault.refresh`); this watch makes sure new writes move to
the new version too. A file that cannot be read (half-copied, malformed) is logged and the keys in use are
kept."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from posgate.errors import SecurityError
from posgate.security.at_rest import CardVault
from posgate.security.keyring import read_keyring

log = logging.getLogger("posgate.keys")


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class KeyringWatch:
    """Polls the keyring file's inode, size and modification time every `interval_s`."""

    def __init__(self, path: Path, vault: CardVault, interval_s: float) -> None:
        self.path, self.vault, self.interval_s = Path(path), vault, interval_s
        self._seen = _signature(self.path)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="keyring-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def check(self) -> bool:
        """Reload the keyring if the file changed; True when it did."""
        seen = _signature(self.path)
        if seen is None or seen == self._seen:
            return False
        try:
            keyring = read_keyring(self.path)
        except SecurityError as exc:
            log.error("master keyring not reloaded: %s", exc)
            return False
        self._seen = seen
        before = self.vault.keyring
        if keyring.keys == before.keys and keyring.hash_key == before.hash_key:
            return False
        self.vault.load(keyring)
        log.warning(
            "master keyring reloaded: versions %s, sealing with version %d (%s)",
            keyring.versions,
            keyring.current,
            keyring.fingerprint(keyring.current),
        )
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.check()
            except Exception:  # keep watching whatever one look does
                log.exception("master keyring check failed")
