"""The doctests of the cards modules run as part of the unit suite."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["pan", "track2", "tlv"])
def test_cards_doctests(name: str) -> None:
    module = importlib.import_module(f"posgate.cards.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
