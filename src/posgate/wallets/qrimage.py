"""QR images of a payload with `segno`: PNG bytes, SVG text, and text for a terminal screen.

The payload is always encoded in byte mode as UTF-8 (a Chinese merchant name must not be put in the Kanji
mode, which readers decode as Shift JIS), error correction M, never a Micro QR.

>>> text = terminal_text("000201")
>>> len(text.splitlines()) > 5 and set(text) <= {"█", "▀", "▄", " ", "\\n"}
True
"""

from __future__ import annotations

import io

import segno


def make(payload: str) -> segno.QRCode:
    return segno.make(payload, error="m", mode="byte", encoding="utf-8", micro=False, boost_error=False)


def png(payload: str, scale: int = 6, border: int = 4) -> bytes:
    """The QR as a PNG image (dark modules on white)."""
    out = io.BytesIO()
    make(payload).save(out, kind="png", scale=scale, border=border)
    return out.getvalue()


def svg(payload: str, scale: int = 4, border: int = 4) -> str:
    """The QR as an SVG document (UTF-8 text)."""
    out = io.BytesIO()
    make(payload).save(out, kind="svg", scale=scale, border=border, xmldecl=False)
    return out.getvalue().decode("utf-8")


def terminal_text(payload: str, border: int = 2, invert: bool = False) -> str:
    """The QR as half-block characters, two module rows per text row, no colour codes: shown on a screen
    with light text on a dark background, pass `invert=True` so that dark modules stay dark."""
    rows = [list(row) for row in make(payload).matrix_iter(scale=1, border=border)]
    if len(rows) % 2:
        rows.append([0] * len(rows[0]))
    lines = []
    for top, bottom in zip(rows[0::2], rows[1::2], strict=True):
        chars = []
        for upper, lower in zip(top, bottom, strict=True):
            upper, lower = (not upper, not lower) if invert else (bool(upper), bool(lower))
            chars.append("█" if upper and lower else "▀" if upper else "▄" if lower else " ")
        lines.append("".join(chars))
    return "\n".join(lines) + "\n"
