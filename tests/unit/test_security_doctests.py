"""The doctests of the security modules run as part of the unit suite."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["keys", "signin", "pos_mac", "network_mac", "pin", "cvv", "emv", "at_rest"]


@pytest.mark.parametrize("name", MODULES)
def test_security_doctests(name: str) -> None:
    module = importlib.import_module(f"posgate.security.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
