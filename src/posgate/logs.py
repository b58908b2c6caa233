"""Logging set-up for the long-running commands: one line per event to stderr and to `posgate.log` in the
data directory.

Card data never reaches a log: messages carry masked PANs only, and the formatter scrubs any PAN-like digits
that slip through — in the message and in exception tracebacks alike.

Nothing a peer sends can forge a log line: the formatter escapes every control character (CR, LF, ESC, NUL,
C1 controls, Unicode line and paragraph separators, bidirectional overrides) in the message, so each record
is exactly one line that starts with its own time stamp; the lines of a traceback that follows it are
indented by two spaces and escaped the same way. This is done once, here, for every value from the wire,
the console or anywhere else, so a log call never needs to escape its arguments. Masking runs before the
escaping, so an escape sequence next to a PAN (`\x1b6229…`) cannot hide it from the mask.

With `log_format = "json"` each record is one JSON object per line instead (`time`, `level`, `logger`,
`message`, and `exception` with the traceback), masked the same way; JSON's own escaping (ASCII only)
keeps it to one line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path

from posgate.errors import mask_card_data
from posgate.files import private_dir, private_file

#: C0 controls, DEL, C1 controls, the Unicode line/paragraph separators, the bidirectional marks, embeddings,
#: overrides and isolates (which reorder what a terminal shows), and the byte-order mark.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTINUATION = "  "


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    r"""`text` with every control character written as a Python-style escape: one printable line.

    >>> print(escape_controls("tid=1\r\n2026-01-01 INFO forged"))
    tid=1\r\n2026-01-01 INFO forged
    >>> print(escape_controls("\x1b[2J\x00\x85\u2028\u202e\t ok"))
    \x1b[2J\x00\x85\u2028\u202e\t ok
    """
    if _CONTROLS.search(text) is None:
        return text
    return _CONTROLS.sub(_escape_one, text)


def _indented(block: str) -> str:
    """A traceback or stack as continuation lines: each line escaped and indented, so none can pass for
    a record of its own."""
    return "\n".join(_CONTINUATION + escape_controls(line) for line in block.splitlines())


class MaskingFormatter(logging.Formatter):
    """Formats a record as one escaped line with PANs and tracks masked; a traceback follows as indented,
    masked, escaped lines."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = escape_controls(mask_card_data(self.formatMessage(record)))
        # the traceback is formatted here rather than taken from `record.exc_text`: another handler's
        # formatter may have cached it unmasked and unescaped
        if record.exc_info:
            line += "\n" + _indented(mask_card_data(self.formatException(record.exc_info)))
        elif record.exc_text:
            line += "\n" + _indented(mask_card_data(record.exc_text))
        if record.stack_info:
            line += "\n" + _indented(mask_card_data(self.formatStack(record.stack_info)))
        return line


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line, PANs and tracks masked.

    >>> pan = ("6229990000000012",)
    >>> record = logging.LogRecord("posgate.host", logging.INFO, "", 0, "sale pan=%s", pan, None)
    >>> line = json.loads(JsonFormatter().format(record))
    >>> line["level"], line["logger"], line["message"]
    ('INFO', 'posgate.host', 'sale pan=622999******0012')
    """

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, str] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_card_data(record.getMessage()),
        }
        if record.exc_info:
            document["exception"] = mask_card_data(self.formatException(record.exc_info))
        elif record.exc_text:
            document["exception"] = mask_card_data(record.exc_text)
        if record.stack_info:
            document["stack"] = mask_card_data(self.formatStack(record.stack_info))
        return json.dumps(document, ensure_ascii=True)


def configure_logging(data_dir: Path, level: str = "INFO", console: bool = True, fmt: str = "text") -> None:
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter: logging.Formatter = (
        JsonFormatter()
        if fmt == "json"
        else MaskingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    private_dir(data_dir, own=True)
    log_file = private_file(data_dir / "posgate.log")  # 0600, before the handler opens it for appending
    handlers: list[logging.Handler] = [logging.FileHandler(log_file, encoding="utf-8")]
    if console:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
