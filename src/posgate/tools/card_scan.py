"""Card-data scanner: looks for clear card data in bytes — files (a SQLite store with its WAL and SHM, logs,
uploads, state files), a database read over its connection (PostgreSQL), captured stderr and crash output,
API bodies, metrics. The tests of data protection use it (tests/e2e/test_data_protection.py), and so can
any other test: `scan_bytes`, `scan_path`, `scan_database`, then assert the list of findings is empty.

Two kinds of search:

- **any clear PAN:** a run of 13 to 19 digits — ASCII, UTF-16 LE or UTF-16 BE — that passes the Luhn check,
  starts with a payment card's major industry identifier (2–6, 8, 9: not 1 or 7, which timestamps and other
  ids start with) and stands alone: no letter or digit right before or after it (so hashes in hex, the
  62-digit settlement totals and ids embedded in longer numbers do not count). This finds a PAN of any card.
- **the known cards' secrets** (`CardSecrets`, e.g. every demo card), anywhere, even inside longer digit
  runs (a batch upload record) — each PAN, its track 2 (with `D` or `=`) and the track's data after the
  separator (expiry, service code, PVV and CVV), in ASCII, UTF-16 LE/BE and packed BCD (both nibble
  alignments, so a PAN at an odd offset of a BCD field is found too); each card's PIN block, clear (ISO 9564
  format 0) and encrypted under the keys given (the terminal's PIK, the issuers' ZPKs), as raw bytes and as
  hex text.

A `Finding` says where and what, naming the card only by its masked PAN: the scanner's own output never
holds card data. Plain PINs are not searched for (4–6 digits occur everywhere); their blocks are.

>>> secrets = CardSecrets()
>>> secrets.add_card("6229990000000012")
>>> [f.what for f in scan_bytes(b"log: pan=6229990000000012 ok", "posgate.log", secrets)]
['PAN 622999******0012 (ASCII)', 'Luhn-valid 16-digit number 622999******0012 (ASCII)']
>>> [f.what for f in scan_bytes(bytes.fromhex("0000006229990000000012"), "field 48", secrets)]
['PAN 622999******0012 (BCD)']
>>> scan_bytes(b"masked 622999******0012, rrn 000000000042", "x", secrets)
[]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, select

from posgate.cards.pan import is_luhn_valid, mask_pan

PAN_DIGITS = (13, 19)
CARD_MII = "345689"  # first digits of payment card numbers (ISO/IEC 7812 major industry identifiers)
MASTERCARD_2_SERIES = (222100, 272099)  # the only card IINs starting 2 (an Alipay app id, 2021…, is none)

_ASCII_RUN = re.compile(rb"(?<![0-9A-Za-z])[0-9]{13,19}(?![0-9A-Za-z])")
_UTF16LE_RUN = re.compile(rb"(?<![0-9A-Za-z]\x00)(?:[0-9]\x00){13,19}(?![0-9A-Za-z]\x00)")
_UTF16BE_RUN = re.compile(rb"(?<!\x00[0-9A-Za-z])(?:\x00[0-9]){13,19}(?!\x00[0-9A-Za-z])")


@dataclass(frozen=True)
class Finding:
    """Card data found: where (a file, `table.column`, "stderr" …), what (masked), at which byte offset."""

    where: str
    what: str
    offset: int

    def __str__(self) -> str:
        return f"{self.where} @{self.offset}: {self.what}"


def _bcd(digits: str) -> list[bytes]:
    """Packed BCD forms of a digit (or track) string: at an even nibble offset (the whole string, padded
    with F or 0 if odd) and at an odd one (the inner, byte-aligned part), so that it is found wherever a
    BCD field puts it."""
    text = digits.upper()
    forms = []
    even = text if len(text) % 2 == 0 else text[:-1]
    odd = text[1:] if len(text) % 2 == 1 else text[1:-1]
    for part in (even, odd):
        if len(part) >= 12:
            forms.append(bytes.fromhex(part))
    return forms


def _text_forms(text: str) -> list[tuple[str, bytes]]:
    return [
        ("ASCII", text.encode("ascii")),
        ("UTF-16", text.encode("utf-16-le")),
        ("UTF-16 BE", text.encode("utf-16-be")),
    ]


def clear_pin_block(pin: str, pan: str) -> bytes:
    """ISO 9564 format 0: (0, PIN length, PIN, F padding) XOR (0000, the 12 PAN digits left of the check
    digit).

    >>> clear_pin_block("1234", "4000001234562").hex().upper()
    '041274FFFFEDCBA9'
    """
    pin_field = bytes.fromhex(f"0{len(pin):X}{pin}".ljust(16, "F"))
    pan_field = bytes.fromhex("0000" + pan[-13:-1])
    return bytes(a ^ b for a, b in zip(pin_field, pan_field, strict=True))


@dataclass
class CardSecrets:
    """The byte patterns of known cards' secrets, each with the (masked) label a finding shows."""

    patterns: list[tuple[bytes, str]] = field(default_factory=list)

    def add(self, data: bytes, label: str) -> None:
        if data and (data, label) not in self.patterns:
            self.patterns.append((data, label))

    def add_card(
        self,
        pan: str,
        track2: str | None = None,
        pin: str | None = None,
        pin_keys: Iterable[tuple[str, bytes]] = (),
    ) -> None:
        """A card: its PAN; its track 2 (field 35 form, `D` separator); its PIN's blocks, clear and under
        each (name, key) of `pin_keys`."""
        masked = mask_pan(pan)
        for form, data in _text_forms(pan):
            self.add(data, f"PAN {masked} ({form})")
        for data in _bcd(pan):
            self.add(data, f"PAN {masked} (BCD)")
        if track2:
            for separator in ("D", "="):
                track = track2.replace("D", separator)
                for form, data in _text_forms(track):
                    self.add(data, f"track 2 of {masked} ({form})")
                after = track[track.index(separator) :]
                for form, data in _text_forms(after):
                    self.add(data, f"track 2 data of {masked} after the separator ({form})")
            for data in _bcd(track2):
                self.add(data, f"track 2 of {masked} (BCD)")
        if pin:
            from posgate.security.pin import encode_pin_block

            blocks = [("clear", clear_pin_block(pin, pan))]
            blocks += [(f"under {name}", encode_pin_block(pin, pan, key)) for name, key in pin_keys]
            for how, block in blocks:
                label = f"PIN block of {masked} ({how})"
                self.add(block, label)
                for form, data in _text_forms(block.hex().upper()) + _text_forms(block.hex()):
                    self.add(data, f"{label}, hex {form}")

    @classmethod
    def demo(cls, piks: Iterable[bytes] = ()) -> CardSecrets:
        """Every card of the demo fixture: PAN, track 2, PIN blocks clear, under each terminal PIK given
        and under its bank's ZPK."""
        from posgate.fixtures.document import read_demo_fixture
        from posgate.terminal import demo_card

        fixture = read_demo_fixture()
        secrets = cls()
        pik_keys = [(f"PIK {i}", key) for i, key in enumerate(piks, 1)]
        for doc in fixture.cards:
            zpk = bytes.fromhex(fixture.bank(doc.bank).zpk)
            card = demo_card(doc.pan)
            secrets.add_card(doc.pan, card.track2, doc.pin, [*pik_keys, (f"ZPK of {doc.bank}", zpk)])
        return secrets


def _runs(data: bytes) -> Iterator[tuple[int, str, str]]:
    for form, pattern, width in (("ASCII", _ASCII_RUN, 1), ("UTF-16", _UTF16LE_RUN, 2)):
        for match in pattern.finditer(data):
            yield match.start(), form, match.group()[::width].decode("ascii")
    for match in _UTF16BE_RUN.finditer(data):
        yield match.start(), "UTF-16 BE", match.group()[1::2].decode("ascii")


def _card_like(digits: str) -> bool:
    """Whether a run of digits starts like a payment card number (its IIN is in a card range)."""
    low, high = MASTERCARD_2_SERIES
    return digits[0] in CARD_MII or (digits[0] == "2" and low <= int(digits[:6]) <= high)


def scan_bytes(data: bytes, where: str, secrets: CardSecrets | None = None) -> list[Finding]:
    """Every known card secret in `data`, then every stand-alone Luhn-valid card-like number."""
    findings = []
    if secrets is not None:
        for pattern, label in secrets.patterns:
            at = data.find(pattern)
            if at >= 0:
                findings.append(Finding(where, label, at))
    for offset, form, digits in _runs(data):
        if _card_like(digits) and is_luhn_valid(digits):
            findings.append(
                Finding(where, f"Luhn-valid {len(digits)}-digit number {mask_pan(digits)} ({form})", offset)
            )
    return findings


def scan_path(path: Path, secrets: CardSecrets | None = None) -> list[Finding]:
    """A file, or every file under a folder (symbolic links are not followed)."""
    path = Path(path)
    files = (
        [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    )
    findings = []
    for file in files:
        findings += scan_bytes(file.read_bytes(), str(file), secrets)
    return findings


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8")


def scan_database(engine: Engine, secrets: CardSecrets | None = None) -> list[Finding]:
    """Every value of every table, read over the connection (what a dump of the database holds): text as
    UTF-8, binary columns as their bytes. Works on PostgreSQL and SQLite alike; for SQLite, also scan the
    files (`scan_path`), which keep deleted rows and the WAL."""
    metadata = MetaData()
    metadata.reflect(engine)
    findings = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for number, row in enumerate(connection.execute(select(table)), 1):
                for column, value in zip(table.columns.keys(), row, strict=True):
                    if value is not None:
                        where = f"{table.name}.{column} (row {number})"
                        findings += scan_bytes(_as_bytes(value), where, secrets)
    return findings
