"""The CSV files settlement exchanges (payout instructions, bank confirmations, issuer clearing files): a
header row, one row per item, and a last line `CHECKSUM,<count>,<sum>,<sha256>` — the number of rows, the
sum of the amount column (fen) and the SHA-256 (hex) of every byte before the checksum line. UTF-8, `\\n`
line ends, RFC 4180 quoting.

>>> text = render(("id", "amount_fen"), [(1, 250), (2, 100)], "amount_fen")
>>> text.splitlines()[-1]
'CHECKSUM,2,350,b19abb17b8eccdbbac4494e5d51a7029cc8e94218e95d3d44f7801d41b8bab29'
>>> parse(text, ("id", "amount_fen"), "amount_fen")
[{'id': '1', 'amount_fen': '250'}, {'id': '2', 'amount_fen': '100'}]
>>> parse(text.replace("250", "251"), ("id", "amount_fen"), "amount_fen")
Traceback (most recent call last):
posgate.settlement.errors.FileChecksumError: checksum line: the SHA-256 does not match the content
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from posgate.files import write_private
from posgate.settlement.errors import FileChecksumError, FileFormatError

CHECKSUM = "CHECKSUM"


def _line(values: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def checksum_line(body: str, count: int, total_fen: int) -> str:
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return f"{CHECKSUM},{count},{total_fen},{digest}\n"


def render(header: Sequence[str], rows: Iterable[Sequence[Any]], amount_column: str) -> str:
    """The whole file as text."""
    position = list(header).index(amount_column)
    lines = [_line(header)]
    count = total = 0
    for row in rows:
        lines.append(_line(row))
        count += 1
        total += int(row[position])
    body = "".join(lines)
    return body + checksum_line(body, count, total)


def write(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], amount_column: str) -> Path:
    """Write the file atomically (a temporary name, then renamed), mode 0600."""
    return write_private(path, render(header, rows, amount_column).encode("utf-8"))


def _split(text: str) -> tuple[str, str]:
    if not text.endswith("\n"):
        text += "\n"
    body_end = text.rstrip("\n").rfind("\n") + 1
    return text[:body_end], text[body_end:].strip()


def verify(text: str, amount_column: str) -> list[dict[str, str]]:
    """The rows of a file whose checksum line matches its content (any header with `amount_column`)."""
    body, last = _split(text)
    parts = last.split(",")
    if len(parts) != 4 or parts[0] != CHECKSUM:
        raise FileFormatError("the last line must be CHECKSUM,<count>,<sum>,<sha256>")
    try:
        count, total = int(parts[1]), int(parts[2])
    except ValueError:
        raise FileFormatError(f"checksum line: count and sum must be integers, got {last!r}") from None
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    if digest != parts[3].lower():
        raise FileChecksumError("checksum line: the SHA-256 does not match the content")
    reader = csv.DictReader(io.StringIO(body, newline=""))
    if reader.fieldnames is None or amount_column not in reader.fieldnames:
        raise FileFormatError(f"line 1: the header must name the column {amount_column!r}")
    rows = []
    seen_total = 0
    for number, row in enumerate(reader, start=2):
        if None in row or any(value is None for value in row.values()):
            raise FileFormatError(f"line {number}: {len(reader.fieldnames)} columns expected")
        try:
            seen_total += int(row[amount_column])
        except ValueError:
            raise FileFormatError(f"line {number}: {amount_column} must be an integer (fen)") from None
        rows.append(row)
    if len(rows) != count:
        raise FileChecksumError(f"checksum line: {len(rows)} rows in the file, {count} in the checksum line")
    if seen_total != total:
        raise FileChecksumError(f"checksum line: sum {seen_total} in the rows, {total} in the checksum line")
    return rows


def parse(text: str, header: Sequence[str], amount_column: str) -> list[dict[str, str]]:
    """`verify`, and the header must be exactly `header`."""
    first = text.split("\n", 1)[0].strip()
    if first != ",".join(header):
        raise FileFormatError(f"line 1: header must be {','.join(header)!r}, got {first!r}")
    return verify(text, amount_column)


def read(path: Path, header: Sequence[str], amount_column: str) -> list[dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: {exc}") from None
    return parse(text, header, amount_column)
