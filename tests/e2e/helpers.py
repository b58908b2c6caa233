"""Helpers for the end-to-end tests: polling a condition, reading a card's available amount."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from posgate.terminal import CardProfile, TerminalClient


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 8.0, every_s: float = 0.1
) -> bool:
    """Poll `check` until it is true or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(every_s)
    return await check()


async def available_fen(terminal: TerminalClient, card: CardProfile) -> int | None:
    result = await terminal.balance(card, card.default_pin)
    assert result.response_code == "00", result.summary()
    return result.balance_fen
