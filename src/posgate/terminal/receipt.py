"""The customer receipt the simulator prints (pure text, 32 columns like a thermal printer).

Only the masked PAN appears; amounts are integer fen shown as CNY `12.34`; `now` is the terminal's local time,
passed in (receipts are one of the few places where local time belongs).
"""

from __future__ import annotations

from datetime import datetime

from posgate.money import yuan
from posgate.terminal.result import TxnResult
from posgate.txnset import ROWS

WIDTH = 32
_LABEL = 10

# from the transaction set: the label of each kind the client sent; a response without one is named by its
# MTI and processing code (the first kind of that shape that prints a slip), else by its MTI alone
_KIND_NAMES: dict[str, str] = {row.kind: row.receipt_label for row in ROWS if row.card and row.receipt_label}
_KINDS: dict[tuple[str, str], str] = {}
for _row in ROWS:
    if _row.slip and _row.processing_code and _row.receipt_label:
        _KINDS.setdefault((_row.response_mti, _row.processing_code), _row.receipt_label)
_KINDS_BY_MTI = {
    row.response_mti: row.receipt_label for row in ROWS if not row.card and row.mti and row.receipt_label
}


def transaction_kind(result: TxnResult) -> str:
    """What the receipt calls the transaction: from the kind the client sent, else from the response MTI and
    processing code."""
    if result.kind in _KIND_NAMES and result.mti not in _KINDS_BY_MTI:
        return _KIND_NAMES[result.kind]
    kind = _KINDS.get((result.mti, result.fields.get("3", "")))
    return kind or _KINDS_BY_MTI.get(result.mti, f"MTI {result.mti}")


def _line(label: str, value: str) -> str:
    return f"{label:<{_LABEL}}{value}"


def format_receipt(result: TxnResult, merchant_name: str, tid: str, mid: str, now: datetime) -> str:
    """The receipt of one transaction.

    >>> from posgate.terminal.result import result_from_message
    >>> fields = {"t": "0210", "3": "000000", "4": "000000001234", "11": "000007", "37": "123456789012",
    ...           "38": "A1B2C3", "39": "00"}
    >>> result = result_from_message(fields, mac_ok=True, masked_pan="622999******0012")
    >>> print(format_receipt(result, "Demo Supermarket", "10000001", "898440153110001",
    ...                      datetime(2025, 11, 26, 10, 30, 5)))
    ================================
            Demo Supermarket
    ================================
    MERCHANT  898440153110001
    TERMINAL  10000001
    CARD      622999******0012
    TYPE      SALE
    DATE      2025-11-26 10:30:05
    STAN      000007
    RRN       123456789012
    AUTH CODE A1B2C3
    AMOUNT    CNY 12.34
    --------------------------------
    APPROVED  00 approved
    ================================
    """
    lines = ["=" * WIDTH, merchant_name[:WIDTH].center(WIDTH).rstrip(), "=" * WIDTH]
    lines.append(_line("MERCHANT", mid))
    lines.append(_line("TERMINAL", tid))
    if result.masked_pan:
        lines.append(_line("CARD", result.masked_pan))
    lines.append(_line("TYPE", transaction_kind(result)))
    lines.append(_line("DATE", now.strftime("%Y-%m-%d %H:%M:%S")))
    if result.stan:
        lines.append(_line("STAN", result.stan))
    if result.rrn:
        lines.append(_line("RRN", result.rrn))
    if result.auth_code:
        lines.append(_line("AUTH CODE", result.auth_code))
    if result.amount_fen is not None:
        lines.append(_line("AMOUNT", f"CNY {yuan(result.amount_fen, grouping=False)}"))
    if result.balance_fen is not None and result.approved:
        lines.append(_line("BALANCE", f"CNY {yuan(result.balance_fen, grouping=False)}"))
    lines.append("-" * WIDTH)
    verdict = "APPROVED" if result.approved else "DECLINED"
    lines.append(_line(verdict, f"{result.response_code} {result.response_text}"))
    if result.mac_ok is False:
        lines.append("MAC CHECK FAILED - REVERSE IT")
    if result.arpc_ok is False:
        lines.append("ARPC CHECK FAILED - REVERSE IT")
    lines.append("=" * WIDTH)
    return "\n".join(lines)
