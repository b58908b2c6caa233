"""RawScanner: a fast scan of large binary files — the PostgreSQL server's heap and WAL (70 MB and more
after a chaos run) and SQLite's WAL while the stack runs — for the run's cards: clear PANs, track 2 data
and clear PIN blocks, in ASCII, packed BCD and UTF-16 (LE and BE).

Everything else (the data folder, logs, stdout and stderr, the database's rows) is scanned with the
project's scanner, `posgate.tools.card_scan`. That one searches each secret's every encoding with its own
`bytes.find`: about 14 s per 16 MB of random bytes for the run's ~1,000 patterns, 60 s when the file is
mostly zeros, as WAL segments are. This one searches only for the cards' BINs (few, short, literal) and
widens each hit to its digit run, or looks a BCD or PIN-block prefix up in a table: 0.35 s per 16 MB.
Findings name the file, the offset, what and how it was encoded — with the PAN masked.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from psec import pinblock

from posgate.cards.pan import is_luhn_valid, mask_pan

_CODECS = {"ASCII": "ascii", "UTF-16LE": "utf-16-le", "UTF-16BE": "utf-16-be"}
_TEXT_ENCODINGS = tuple(_CODECS)


@dataclass(frozen=True)
class Finding:
    path: str
    offset: int
    what: str  # PAN | track 2 | PIN block | PAN-like
    encoding: str  # ASCII | BCD | UTF-16LE | UTF-16BE | hex
    masked: str

    def __str__(self) -> str:
        return f"{self.path} @{self.offset}: {self.what} ({self.encoding}) {self.masked}"


@dataclass
class ScanReport:
    files: int = 0
    bytes: int = 0
    findings: list[Finding] = field(default_factory=list)


def _bcd(digits: str) -> list[bytes]:
    """The packed-BCD forms of a digit string (odd lengths padded either side with 0 or F)."""
    if len(digits) % 2 == 0:
        return [bytes.fromhex(digits)]
    return [bytes.fromhex(p) for p in (digits + "F", digits + "0", "0" + digits, "F" + digits)]


class RawScanner:
    def __init__(self, pans: Iterable[str], pins: dict[str, str], bins: Iterable[str]) -> None:
        """`pans`: the run's cards; `pins`: PAN → PIN (for their clear format-0 PIN blocks); `bins`: the
        prefixes whose unknown Luhn-valid runs are reported too."""
        self.pans = set(pans)
        self.bins = tuple(bins)
        self.prefixes = set(self.bins) | {pan[:6] for pan in self.pans}
        self.bcd: dict[bytes, str] = {}
        for pan in self.pans:
            for form in _bcd(pan):
                self.bcd[form] = pan
        self.bcd_prefixes = re.compile(b"|".join(re.escape(k) for k in {form[:3] for form in self.bcd}))
        self.pin_blocks: dict[bytes, str] = {
            pinblock.encode_pinblock_iso_0(pin, pan): pan for pan, pin in pins.items()
        }
        self.pin_block_prefixes = {block[:2] for block in self.pin_blocks}
        self.hex_blocks = {
            text: pan
            for block, pan in self.pin_blocks.items()
            for text in (block.hex().upper().encode(), block.hex().encode())
        }
        self.hex_prefixes = {text[:4] for text in self.hex_blocks}

    def scan(self, roots: Iterable[Path]) -> ScanReport:
        report = ScanReport()
        for root in roots:
            paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
            for path in paths:
                if path.is_symlink():
                    continue
                report.files += 1
                report.bytes += self._scan_file(path, report.findings)
        return report

    def _scan_file(self, path: Path, findings: list[Finding]) -> int:
        with path.open("rb") as handle:
            size = path.stat().st_size
            if size == 0:
                return 0
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                findings.extend(self.scan_bytes(bytes(data), str(path)))
        return size

    def scan_bytes(self, data: bytes, where: str) -> list[Finding]:
        found: list[Finding] = []
        for encoding in _TEXT_ENCODINGS:
            found += self._digit_runs(data, where, encoding)
        for match in self.bcd_prefixes.finditer(data):
            start = match.start()
            for form, pan in self.bcd.items():
                if data.startswith(form, start):
                    after = data[start + len(form) : start + len(form) + 1]
                    track = len(pan) % 2 == 0 and after[:1] and after[0] >> 4 == 0xD
                    found.append(Finding(where, start, "track 2" if track else "PAN", "BCD", mask_pan(pan)))
        for start in _all(data, self.pin_block_prefixes):
            block = data[start : start + 8]
            if block in self.pin_blocks:
                found.append(Finding(where, start, "PIN block", "binary", mask_pan(self.pin_blocks[block])))
        for start in _all(data, self.hex_prefixes):
            text = data[start : start + 16]
            if text in self.hex_blocks:
                found.append(Finding(where, start, "PIN block", "hex", mask_pan(self.hex_blocks[text])))
        return found

    def _digit_runs(self, data: bytes, where: str, encoding: str) -> list[Finding]:
        """Digit runs in `encoding` that contain a BIN of interest: found by searching the BINs literally
        (fast), then widened to the whole run around each hit."""
        width = 1 if encoding == "ASCII" else 2
        codec = _CODECS[encoding]
        found, seen = [], set()
        for hit in _all(data, {prefix.encode(codec) for prefix in self.prefixes}):
            start, end = hit, hit
            while start - width >= 0 and _is_digit(data[start - width : start], encoding):
                start -= width
            while end + width <= len(data) and _is_digit(data[end : end + width], encoding):
                end += width
            if start in seen or (end - start) // width < 13:
                continue
            seen.add(start)
            run = data[start:end].decode(codec)
            after = data[end : end + width].decode(codec, errors="replace")
            track = after in ("=", "D", "d")
            known = [pan for pan in self.pans if pan in run]
            for pan in known:
                what = "track 2" if track and run.endswith(pan) else "PAN"
                found.append(Finding(where, start, what, encoding, mask_pan(pan)))
            if known:
                continue
            what = "track 2 (PAN-like)" if track else "PAN-like"
            for candidate in _candidates(run, self.bins):
                found.append(Finding(where, start, what, encoding, mask_pan(candidate)))
        return found


def _candidates(run: str, bins: tuple[str, ...]) -> list[str]:
    """Luhn-valid PANs in a digit run: the run itself when it has 13 to 19 digits; in a longer run, the 16-
    and 19-digit stretches that start with one of `bins`.

    >>> _candidates("6229990000000012", ("622999",)), _candidates("x", ("622999",))
    (['6229990000000012'], [])
    """
    if 13 <= len(run) <= 19:
        return [run] if run.startswith(bins) and is_luhn_valid(run) else []
    return [
        run[i : i + size]
        for i in range(len(run))
        if run.startswith(bins, i)
        for size in (16, 19)
        if i + size <= len(run) and is_luhn_valid(run[i : i + size])
    ]


def _is_digit(char: bytes, encoding: str) -> bool:
    if encoding == "ASCII":
        return 0x30 <= char[0] <= 0x39
    digit, zero = (char[0], char[1]) if encoding == "UTF-16LE" else (char[1], char[0])
    return zero == 0 and 0x30 <= digit <= 0x39


def _all(data: bytes, needles: set[bytes]) -> Iterable[int]:
    for needle in needles:
        start = data.find(needle)
        while start != -1:
            yield start
            start = data.find(needle, start + 1)
