"""The doctests of the terminal modules run as part of the unit suite."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "name",
    [
        "posgate.terminal.cards",
        "posgate.terminal.chip",
        "posgate.terminal.journal",
        "posgate.terminal.state",
        "posgate.terminal.messages",
        "posgate.terminal.result",
        "posgate.terminal.receipt",
        "posgate.cli.terminal",
    ],
)
def test_terminal_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
