"""Money for people: integer fen shown as CNY with two decimals, by integer arithmetic (never a float)."""

from __future__ import annotations


def yuan(fen: int | None, grouping: bool = True) -> str:
    """Integer fen as a CNY amount string; "" for None.

    >>> yuan(1234567), yuan(5), yuan(-150), yuan(None), yuan(120000, grouping=False)
    ('12,345.67', '0.05', '-1.50', '', '1200.00')
    """
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}" if grouping else f"{sign}{whole}.{cents:02d}"
