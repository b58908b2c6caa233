"""Master key rotation while the hosts run (`posgate keys rotate-master`, `posgate keys reencrypt`).

1. **Add** a master key version: the keyring in `master.key` gets a new random key, which seals from now
   on (the file is replaced atomically, mode 0600). Every running process on that file reads it within
   `master_key_reload_s`, and at once when it meets a value sealed under a version it does not hold yet.
2. **Wait** until the running processes have loaded it (`wait_s`, by default two reload intervals and a
   second), so that nothing is sealed under the old version any more.
3. **Re-encrypt** every sealed value not under the new version, in short batches (`store.rekey`), while the
   hosts keep taking traffic: they read values under either version meanwhile.
4. **Verify** with a census that decrypts every sealed value: none is left under an older version, and
   none fails to open (else the rotation stops before retiring anything).
5. **Retire** the older versions: the keyring is written again with the new version only (and the PAN
   look-up hash key, which does not change). From then on the old key opens nothing.

Each step is audited (`master_key_added`, `master_key_rotated`, actor `operator`) with key fingerprints,
never key material. Steps 3–5 alone are `posgate keys reencrypt` (a rotation that was interrupted, or the
second half on machines that each hold a copy of the file: add with `--add-only`, copy the file to every
machine, then re-encrypt).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from posgate.errors import SecurityError
from posgate.security.at_rest import CardVault
from posgate.security.keyring import Keyring, read_keyring, write_keyring
from posgate.store.audit import audit
from posgate.store.base import utcnow
from posgate.store.rekey import SEALED_COLUMNS, Batch, SealedColumn, reseal_batch
from posgate.store.runtime import Store

Progress = Callable[[str], None]


class RotationError(SecurityError):
    """The rotation cannot finish safely (values no key opens, values still under an old version)."""


@dataclass
class Census:
    """Per column: values read, values sealed again, values left under an older version, unreadable."""

    seen: dict[str, int] = field(default_factory=dict)
    resealed: dict[str, int] = field(default_factory=dict)
    older: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)

    def add(self, spec: SealedColumn, batch: Batch) -> None:
        for name, value in (
            ("seen", batch.seen),
            ("resealed", batch.resealed),
            ("older", batch.older),
            ("unreadable", batch.unreadable),
        ):
            counts = getattr(self, name)
            counts[spec.name] = counts.get(spec.name, 0) + value

    @property
    def left(self) -> int:
        return sum(self.older.values()) + sum(self.unreadable.values())


@dataclass(frozen=True)
class RotationReport:
    added: int | None
    current: int
    retired: list[int]
    resealed: dict[str, int]
    seen: dict[str, int]
    seconds: float


def add_version(path: Path, store: Store, vault: CardVault, now: dt.datetime | None = None) -> Keyring:
    """Step 1: a new master key version in the keyring file; this process's vault uses it at once."""
    keyring = read_keyring(path).with_new_version(os.urandom(32))
    write_keyring(path, keyring)
    vault.load(keyring)
    version = keyring.current
    store.transact(
        lambda s: audit(
            s,
            "operator",
            "master_key_added",
            "master_key",
            f"v{version}",
            now,
            fingerprint=keyring.fingerprint(version),
            versions=keyring.versions,
        )
    )
    return keyring


def sweep(store: Store, vault: CardVault, batch_size: int, write: bool) -> Census:
    """Steps 3 and 4: one pass over every sealed column, batch by batch (each its own unit of work)."""
    census = Census()
    for spec in SEALED_COLUMNS:
        census.add(spec, Batch(last_id=None))  # every column is reported, even an empty one
        after = 0
        while True:
            batch = store.transact(
                lambda s, spec=spec, after=after: reseal_batch(s, vault, spec, after, batch_size, write)
            )
            if batch.last_id is None:
                break
            census.add(spec, batch)
            after = batch.last_id
    return census


def reencrypt(
    path: Path,
    store: Store,
    vault: CardVault,
    batch_size: int = 500,
    retire: bool = True,
    wait_s: float = 0.0,
    progress: Progress = lambda _line: None,
    max_passes: int = 5,
) -> tuple[Census, list[int]]:
    """Steps 3–5: re-encrypt until a census finds nothing under an older version (and, before retiring,
    once more after `wait_s`, for a process that was slow to load the new version), then retire them."""
    vault.load(read_keyring(path))
    older = [v for v in vault.keyring.versions if v != vault.current_version]
    total = Census()
    waited = not (retire and older and wait_s)
    for _ in range(max_passes):
        done = sweep(store, vault, batch_size, write=True)
        for name, seen in done.seen.items():
            total.seen[name] = seen
            total.resealed[name] = total.resealed.get(name, 0) + done.resealed.get(name, 0)
        progress(
            f"re-encrypted under version {vault.current_version}: "
            + ", ".join(f"{name} {total.resealed[name]}/{total.seen[name]}" for name in total.seen)
        )
        census = sweep(store, vault, batch_size, write=False)
        if sum(census.unreadable.values()):
            raise RotationError(
                "values no master key version opens: "
                + ", ".join(f"{name} {n}" for name, n in census.unreadable.items() if n)
                + "; nothing retired"
            )
        if census.left == 0 and waited:
            break
        if census.left == 0:
            time.sleep(wait_s)
            waited = True
    else:
        raise RotationError(
            "values are still sealed under an older version after every pass; nothing retired"
        )
    if not retire or not older:
        return total, []
    keyring = vault.keyring.retired()
    write_keyring(path, keyring)
    vault.load(keyring)
    progress(
        f"retired master key version(s) {', '.join(map(str, older))}: the keyring holds version "
        f"{keyring.current} ({keyring.fingerprint(keyring.current)}) only"
    )
    return total, older


def rotate(
    path: Path,
    store: Store,
    vault: CardVault,
    wait_s: float,
    batch_size: int = 500,
    add: bool = True,
    retire: bool = True,
    progress: Progress = lambda _line: None,
) -> RotationReport:
    """Steps 1–5 (`add=False`: 3–5, a resumed rotation)."""
    started = time.monotonic()
    added = None
    if add:
        keyring = add_version(path, store, vault)
        added = keyring.current
        progress(
            f"master key version {added} ({keyring.fingerprint(added)}) added to {path}; "
            f"waiting {wait_s:g} s for running processes to load it"
        )
        time.sleep(wait_s)
    census, retired = reencrypt(path, store, vault, batch_size, retire, wait_s, progress)
    current = vault.current_version
    report = RotationReport(added, current, retired, census.resealed, census.seen, time.monotonic() - started)
    store.transact(
        lambda s: audit(
            s,
            "operator",
            "master_key_rotated",
            "master_key",
            f"v{current}",
            utcnow(),
            fingerprint=vault.keyring.fingerprint(current),
            retired=retired,
            resealed=census.resealed,
        )
    )
    return report
