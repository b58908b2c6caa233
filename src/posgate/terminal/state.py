"""What a terminal remembers between runs: its identity, master key, working keys, batch, STAN and the record
needed to reverse its last reversible transaction.

The state file is JSON, written atomically (a temporary file in the same folder, then `os.replace`) with
mode 0600, because it holds the terminal's keys (test keys in the simulator). It never holds card data: the
reversal record (`LastTransaction`) keeps the message's codes, STAN, amount, batch and RRN — never the PAN,
the track or the PIN block. `save` and `load` are the only I/O here; everything else is plain data.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from posgate.errors import ConfigError
from posgate.fixtures.document import read_demo_fixture

STAN_MAX = 999_999
DEMO_TID = "10000001"
STATE_FILE_MODE = 0o600


@dataclass
class LastTransaction:
    """Enough of a sent transaction to reverse it (pos-8583.md: a reversal carries the original's 3, 4, 11,
    22, 25, 41, 42, 49 and 60). `response_code` is None while no response has been seen."""

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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LastTransaction:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class TerminalState:
    """A terminal's identity, keys (clear hex: the simulator's own keys) and counters.

    `stan` is the last STAN used (0 before the first message); `next_stan()` advances it.
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
    last: LastTransaction | None = None

    def __post_init__(self) -> None:
        if isinstance(self.last, dict):
            self.last = LastTransaction.from_dict(self.last)

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
        path.parent.mkdir(parents=True, exist_ok=True)
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
