"""What a terminal remembers between runs: its identity, master key, MAC algorithm, working keys, batch, STAN,
the record needed to reverse its last reversible transaction, the journal of the open batch and each chip's
ATC.

The MAC algorithm (`mac_algorithm`: `cup_ecb` or `x919`) is set at provisioning and written into the
simulator profile; a state file without it is a terminal of before X9.19 support, so it means `cup_ecb` (the
demo fixture's terminal keeps CUP ECB).

The state file is JSON, written atomically (a temporary file in the same folder, then `os.replace`) with
mode 0600, because it holds the terminal's keys (test keys in the simulator). It never holds clear card
data: the reversal record (`LastTransaction`) keeps the message's codes, STAN, amount, batch and RRNs; the
journal (`journal.JournalEntry`) keeps the masked PAN and the PAN sealed under a key derived from the TMK;
the ATCs are keyed by a SHA-256 of the PAN (`journal.card_key`). Never the track, the PIN or the PIN block.
`save` and `load` are the only I/O here; everything else is plain data.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from posgate.errors import ConfigError, SecurityError
from posgate.files import private_dir
from posgate.fixtures.document import read_demo_fixture
from posgate.security.pos_mac import MacAlgorithm
from posgate.terminal.journal import PREAUTH, JournalEntry, card_key, journal_key

STAN_MAX = 999_999
BATCH_MAX = 999_999
ATC_MAX = 0xFFFF
DEMO_TID = "10000001"
STATE_FILE_MODE = 0o600


@dataclass
class LastTransaction:
    """Enough of a sent transaction to reverse it (pos-8583.md: a reversal carries the original's 3, 4, 11,
    22, 25, 41, 42, 49 and 60, and its 37, 38 and 61 when it had them). `rrn` and `auth_code` are the
    response's; `original_rrn`, `original_auth_code` and `field61` are the request's 37, 38 and 61.
    `response_code` is None while no response has been seen."""

    mti: str
    processing_code: str
    stan: str
    amount_fen: int
    entry_mode: str  # field 22
    condition_code: str  # field 25
    field60: str
    batch: str
    currency: str = "156"
    rrn: str | None = None
    auth_code: str | None = None
    response_code: str | None = None
    kind: str = "sale"
    original_rrn: str | None = None
    original_auth_code: str | None = None
    field61: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LastTransaction:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class TerminalState:
    """A terminal's identity, keys (clear hex: the simulator's own keys) and counters.

    `stan` is the last STAN used (0 before the first message); `next_stan()` advances it. `journal` holds the
    approved transactions of the open batch (and pre-authorizations still open from earlier batches);
    `atc` the last ATC of each chip card this terminal has read, by `journal.card_key(pan)`.
    """

    tid: str
    mid: str
    tmk_hex: str
    nii: str = "0003"
    batch: str = "000001"
    stan: int = 0
    pik_hex: str | None = field(default=None, repr=False)
    mak_hex: str | None = field(default=None, repr=False)
    tdk_hex: str | None = field(default=None, repr=False)
    mac_algorithm: str = MacAlgorithm.CUP_ECB.value
    last: LastTransaction | None = None
    journal: list[JournalEntry] = field(default_factory=list)
    atc: dict[str, int] = field(default_factory=dict)
    location: str | None = None  # where the terminal is, `lat,lon`: sent in field 59 of financial requests

    def __post_init__(self) -> None:
        try:
            MacAlgorithm.parse(self.mac_algorithm)
        except (SecurityError, TypeError) as exc:
            raise ConfigError(f"terminal state: {exc}") from None
        if isinstance(self.last, dict):
            self.last = LastTransaction.from_dict(self.last)
        self.journal = [
            JournalEntry.from_dict(entry) if isinstance(entry, dict) else entry for entry in self.journal
        ]

    def next_atc(self, pan: str) -> int:
        """Advance and return the ATC of the chip card with this PAN: 1, 2, … 65535, then 1 again.

        >>> state = TerminalState("10000001", "898440153110001", "00" * 16)
        >>> state.next_atc("6228880000000016"), state.next_atc("6228880000000016"), state.atc
        (1, 2, {'bb4c45e0572b4619': 2})
        """
        key = card_key(pan)
        self.atc[key] = self.atc.get(key, 0) % ATC_MAX + 1
        return self.atc[key]

    def close_batch(self) -> str:
        """After settlement: advance the batch (000001 … 999999, then 000001 again), drop the closed batch's
        journal (pre-authorizations still open are kept: a completion needs them) and the reversal record.
        Returns the new batch.

        >>> state = TerminalState("10000001", "898440153110001", "00" * 16, batch="999999")
        >>> state.close_batch(), state.close_batch()
        ('000001', '000002')
        """
        self.batch = f"{int(self.batch) % BATCH_MAX + 1:06d}"
        self.journal = [
            entry
            for entry in self.journal
            if entry.kind == PREAUTH and not (entry.reversed or entry.voided or entry.completed)
        ]
        self.last = None
        return self.batch

    @property
    def journal_key(self) -> bytes:
        """The key that seals the journal's PANs (HKDF of the TMK): the terminal's own secure memory."""
        return journal_key(self.tmk)

    def next_stan(self) -> str:
        """Advance and return the STAN as 6 digits: 000001 … 999999, then 000001 again.

        >>> state = TerminalState("10000001", "898440153110001", "00" * 16, stan=999_998)
        >>> state.next_stan(), state.next_stan(), state.next_stan()
        ('999999', '000001', '000002')
        """
        self.stan = self.stan % STAN_MAX + 1
        return f"{self.stan:06d}"

    @property
    def signed_in(self) -> bool:
        return self.pik_hex is not None and self.mak_hex is not None

    @property
    def tmk(self) -> bytes:
        return bytes.fromhex(self.tmk_hex)

    @property
    def pik(self) -> bytes | None:
        return bytes.fromhex(self.pik_hex) if self.pik_hex else None

    @property
    def mac(self) -> MacAlgorithm:
        """The MAC algorithm the host expects from this terminal."""
        return MacAlgorithm.parse(self.mac_algorithm)

    @property
    def mak(self) -> bytes | None:
        return bytes.fromhex(self.mak_hex) if self.mak_hex else None

    def clear_keys(self) -> None:
        """Forget the working keys (sign-out, or the host asked for a new sign-in)."""
        self.pik_hex = self.mak_hex = self.tdk_hex = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TerminalState:
        known = {f.name for f in fields(cls)}
        missing = {"tid", "mid", "tmk_hex"} - data.keys()
        if missing:
            raise ConfigError(f"terminal state: missing {', '.join(sorted(missing))}")
        return cls(**{key: value for key, value in data.items() if key in known})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TerminalState:
        """Read a state file; `ConfigError` naming the file if it is not a terminal state."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read terminal state {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"terminal state {path}: expected a JSON object")
        try:
            return cls.from_dict(data)
        except TypeError as exc:
            raise ConfigError(f"terminal state {path}: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state atomically with mode 0600 (creating the folder if needed)."""
        path = Path(path)
        private_dir(path.parent)
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, STATE_FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as tmp:
                tmp.write(text)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise


def demo_terminal_state(tid: str = DEMO_TID) -> TerminalState:
    """A fresh (not signed-in) state of a demo fixture terminal, by default TID 10000001.

    >>> state = demo_terminal_state()
    >>> state.tid, state.mid, state.nii, state.signed_in
    ('10000001', '898440153110001', '0003', False)
    """
    for terminal in read_demo_fixture().terminals:
        if terminal.tid == tid:
            return TerminalState(tid=terminal.tid, mid=terminal.mid, tmk_hex=terminal.tmk, nii=terminal.nii)
    raise ConfigError(f"no demo terminal with TID {tid!r}")
