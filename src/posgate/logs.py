"""Logging set-up for the long-running commands: one line per event to stderr and to `posgate.log` in the
data directory. Card data never reaches a log: messages carry masked PANs only, and the formatter scrubs
any PAN-like digits that slip through — in the message and in exception tracebacks alike."""

from __future__ import annotations

import logging
from pathlib import Path

from posgate.errors import mask_card_data
from posgate.files import private_dir, private_file


class MaskingFormatter(logging.Formatter):
    """Formats as usual, then masks PANs and tracks anywhere in the line (tracebacks included)."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_card_data(super().format(record))


def configure_logging(data_dir: Path, level: str = "INFO", console: bool = True) -> None:
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = MaskingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    private_dir(data_dir, own=True)
    log_file = private_file(data_dir / "posgate.log")  # 0600, before the handler opens it for appending
    handlers: list[logging.Handler] = [logging.FileHandler(log_file, encoding="utf-8")]
    if console:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
