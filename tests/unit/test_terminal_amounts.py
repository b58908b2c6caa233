"""`posgate terminal sale AMOUNT`: yuan to integer fen by string arithmetic."""

from __future__ import annotations

import pytest

from posgate.cli.terminal import parse_amount_fen


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("12.34", 1234),
        ("0.01", 1),
        ("12", 1200),
        ("12.3", 1230),
        ("0.10", 10),
        (" 7 ", 700),
        ("9999999999.99", 999_999_999_999),
    ],
)
def test_parse_amount_fen(text: str, fen: int) -> None:
    assert parse_amount_fen(text) == fen


@pytest.mark.parametrize(
    "text", ["1.234", "abc", "-1", "+1", "0", "0.00", "", "12.", ".5", "1e3", "1,00", "10000000000", "١٢"]
)
def test_parse_amount_fen_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_amount_fen(text)
