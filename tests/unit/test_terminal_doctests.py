"""The doctests of the terminal modules run as part of the unit suite."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "name", ["cards", "chip", "journal", "state", "messages", "result", "receipt", "cli"]
)
def test_terminal_doctests(name: str) -> None:
    module = importlib.import_module(f"posgate.terminal.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
