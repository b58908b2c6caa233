"""The per-kind properties of `txnset.Kind` read the kind's row."""

from posgate.txnset import Kind
from posgate.txnset.table import ROWS


def test_needs_original_is_whether_the_row_has_an_original_rule() -> None:
    assert Kind.VOID.needs_original
    assert Kind.REFUND.needs_original
    assert not Kind.SALE.needs_original
    assert not Kind.SIGN_IN.needs_original
    for row in ROWS:
        assert row.kind.needs_original is (row.original is not None)


def test_financial_is_whether_the_row_is_recorded() -> None:
    assert Kind.SALE.financial
    assert not Kind.ECHO.financial
