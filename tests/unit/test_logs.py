"""The log formatter: one record is one line whatever a peer sent (control characters escaped), card data
is masked before and after that, and a traceback cannot pass for a record of its own."""

from __future__ import annotations

import logging
import sys

from posgate.logs import MaskingFormatter, escape_controls

FORMAT = "%(levelname)s %(name)s %(message)s"


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad field 41 '1\n2026-01-01 00:00:00,000 INFO forged'")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("posgate.host", logging.INFO, __file__, 1, msg, args, exc_info)


def test_a_tid_with_line_breaks_stays_on_one_escaped_line() -> None:
    line = MaskingFormatter(FORMAT).format(record("0820 echo tid=%s rc=%s", "\r\nFORGE\n", "97"))
    assert line == "INFO posgate.host 0820 echo tid=\\r\\nFORGE\\n rc=97"


def test_every_control_character_class_is_escaped() -> None:
    hostile = "\x00\x07\x1b[2J\x7f\x85\x9b\u2028\u2029\u202e\u2066\ufeff\t"
    assert escape_controls(hostile) == (
        "\\x00\\x07\\x1b[2J\\x7f\\x85\\x9b\\u2028\\u2029\\u202e\\u2066\\ufeff\\t"
    )
    assert escape_controls("plain text, ünïcödé, 中文 ok") == "plain text, ünïcödé, 中文 ok"


def test_a_pan_next_to_a_control_character_is_still_masked() -> None:
    # escaped first, "\x1b" + PAN would read as hex digits running into the PAN and escape the mask
    line = MaskingFormatter(FORMAT).format(record("track %s", "\x1b6229990000000012\x0b6228880000000016"))
    assert "6229990000000012" not in line and "6228880000000016" not in line
    assert line.endswith("track \\x1b622999******0012\\x0b622888******0016")


def test_traceback_lines_are_indented_escaped_and_masked() -> None:
    line = MaskingFormatter(FORMAT).format(record("failed on %s", "6229990000000012", exc=True))
    first, *rest = line.split("\n")
    assert first == "INFO posgate.host failed on 622999******0012"
    assert rest and all(part.startswith("  ") for part in rest)
    assert rest[0] == "  Traceback (most recent call last):"
    assert any(part.startswith("  2026-01-01 00:00:00,000 INFO forged") for part in rest)


def test_a_traceback_cached_by_another_formatter_is_formatted_again() -> None:
    rec = record("boom", exc=True)
    logging.Formatter(FORMAT).format(rec)  # caches rec.exc_text unindented
    assert rec.exc_text and not rec.exc_text.startswith("  ")
    line = MaskingFormatter(FORMAT).format(rec)
    assert all(part.startswith("  ") for part in line.split("\n")[1:])
