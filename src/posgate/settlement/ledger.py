"""The chart of accounts and the journal entries of clearing and settlement. Pure: entries are values,
checked balanced when built; `ledger_store` writes and reads them.

Chart of accounts (signed fen: + debit, − credit; the balance of an account is the sum of its lines):

| account | type | grows by |
|---|---|---|
| `issuer_receivable:<bank>` | asset | what the issuer (through the network) owes us for our sales |
| `settlement_cash` | asset | (credit) money we sent merchants |
| `suspense` | asset/liability | lines we could not attribute (unknown MID or issuer) |
| `merchant_payable:<MID>` | liability | (credit) what we owe the merchant |
| `fee_income:mdr` | income | (credit) the merchant discount (MDR) |
| `fee_income:d0_surcharge` | income | (credit) the surcharge of same-day payouts |
| `interchange_expense` | expense | (debit) the issuer's interchange on our merchants' sales |
| `network_fee_expense` | expense | (debit) the network's fee, acquirer side |
| `provider_receivable:<provider>` | asset | what a wallet provider (WeChat Pay, Alipay, …) owes us |
| `wallet_fee_expense` | expense | (debit) the wallet provider's fee on our merchants' wallet payments |

A cleared sale or completion of A (MDR m, interchange i, network fee n, acquirer side):

    Dr issuer_receivable:<bank>   A − i − n
    Dr interchange_expense        i
    Dr network_fee_expense        n
    Cr merchant_payable:<MID>     A − m
    Cr fee_income:mdr             m

so the merchant is owed A − m, our net fee income is m − i − n, and the issuer owes A − i − n. A refund of R
moves money back without fees (the MDR is not refunded, nor the interchange or network fee returned):
Dr merchant_payable R / Cr issuer_receivable R. Both are one formula of the signed clearing values
(`clearing_lines`); an unwind (a void or reversal after its original cleared) is the original's lines
negated. A wallet payment of A (wallet MDR m, the provider's fee p) — `wallet_lines`:

    Dr provider_receivable:<provider>   A − p
    Dr wallet_fee_expense               p
    Cr merchant_payable:<MID>           A − m
    Cr fee_income:mdr                   m

and a wallet refund is the same with every value negated (the provider gives its fee of the refunded part
back, and so do we: `settlement.wallet_clearing`). A payout: Dr merchant_payable amount / Cr settlement_cash
net / Cr fee_income:d0_surcharge.

>>> lines = clearing_lines(10000, 50, 35, 3, merchant_payable("M1"), issuer_receivable("Bank A"))
>>> lines  # doctest: +NORMALIZE_WHITESPACE
(('issuer_receivable:Bank A', 9962), ('interchange_expense', 35), ('network_fee_expense', 3),
 ('merchant_payable:M1', -9950), ('fee_income:mdr', -50))
>>> sum(amount_fen for _, amount_fen in lines)
0
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from posgate.settlement.errors import UnbalancedEntry

MERCHANT_PAYABLE = "merchant_payable"
ISSUER_RECEIVABLE = "issuer_receivable"
FEE_INCOME_MDR = "fee_income:mdr"
FEE_INCOME_D0 = "fee_income:d0_surcharge"
INTERCHANGE_EXPENSE = "interchange_expense"
NETWORK_FEE_EXPENSE = "network_fee_expense"
SETTLEMENT_CASH = "settlement_cash"
SUSPENSE = "suspense"
PROVIDER_RECEIVABLE = "provider_receivable"
WALLET_FEE_EXPENSE = "wallet_fee_expense"

_TYPES = {
    MERCHANT_PAYABLE: "liability",
    ISSUER_RECEIVABLE: "asset",
    "fee_income": "income",
    INTERCHANGE_EXPENSE: "expense",
    NETWORK_FEE_EXPENSE: "expense",
    SETTLEMENT_CASH: "asset",
    SUSPENSE: "suspense",
    PROVIDER_RECEIVABLE: "asset",
    WALLET_FEE_EXPENSE: "expense",
}


def merchant_payable(mid: str) -> str:
    return f"{MERCHANT_PAYABLE}:{mid}"


def issuer_receivable(bank: str) -> str:
    return f"{ISSUER_RECEIVABLE}:{bank}"


def provider_receivable(provider: str) -> str:
    return f"{PROVIDER_RECEIVABLE}:{provider}"


def account_type(code: str) -> str:
    """asset | liability | income | expense | suspense, from the account code.

    >>> account_type("merchant_payable:898440153110001"), account_type("fee_income:mdr")
    ('liability', 'income')
    """
    head = code.split(":", 1)[0]
    try:
        return _TYPES[code] if code in _TYPES else _TYPES[head]
    except KeyError:
        raise ValueError(f"{code!r} is not an account of the chart") from None


#: One side of an entry: (account code, signed fen: + debit, − credit). A plain tuple: clearing builds
#: millions of them.
Line = tuple[str, int]


@dataclass(slots=True)
class Entry:
    """A journal entry; `key` is its business key (unique in the store: posting twice is a no-op). Checked
    balanced when built; a value — not frozen only because frozen dataclasses are three times slower to
    build, and clearing builds one per transaction."""

    key: str
    kind: str
    value_date: dt.date
    lines: tuple[Line, ...]
    transaction_id: int | None = None
    payout_id: int | None = None
    memo: str | None = None

    def __post_init__(self) -> None:
        if len(self.lines) < 2:
            raise UnbalancedEntry(f"entry {self.key}: needs at least two lines")
        total = 0
        for account, amount_fen in self.lines:
            if type(amount_fen) is not int or amount_fen == 0:
                raise UnbalancedEntry(f"entry {self.key}: line on {account} must be non-zero fen")
            total += amount_fen
        if total != 0:
            raise UnbalancedEntry(f"entry {self.key}: debits and credits differ by {total} fen")


def _lines(*pairs: Line) -> tuple[Line, ...]:
    return tuple(pair for pair in pairs if pair[1])


def clearing_lines(
    amount_fen: int,
    mdr_fen: int,
    interchange_fen: int,
    network_fen: int,
    merchant_account: str,
    issuer_account: str,
) -> tuple[Line, ...]:
    """The lines of a clearing entry from its signed values (merchant's view: a sale's `amount_fen` > 0, a
    refund's < 0 with no fees, an unwind's every value negated)."""
    return _lines(
        (issuer_account, amount_fen - interchange_fen - network_fen),
        (INTERCHANGE_EXPENSE, interchange_fen),
        (NETWORK_FEE_EXPENSE, network_fen),
        (merchant_account, mdr_fen - amount_fen),
        (FEE_INCOME_MDR, -mdr_fen),
    )


def wallet_lines(
    amount_fen: int, mdr_fen: int, provider_fee_fen: int, merchant_account: str, provider_account: str
) -> tuple[Line, ...]:
    """The lines of a wallet payment's clearing entry from its signed values (a refund's every value < 0).

    >>> payable, receivable = merchant_payable("M1"), provider_receivable("wechat")
    >>> wallet_lines(10000, 38, 60, payable, receivable)  # doctest: +NORMALIZE_WHITESPACE
    (('provider_receivable:wechat', 9940), ('wallet_fee_expense', 60), ('merchant_payable:M1', -9962),
     ('fee_income:mdr', -38))
    """
    return _lines(
        (provider_account, amount_fen - provider_fee_fen),
        (WALLET_FEE_EXPENSE, provider_fee_fen),
        (merchant_account, mdr_fen - amount_fen),
        (FEE_INCOME_MDR, -mdr_fen),
    )


def payout_entry(
    payout_id: int, mid: str, value_date: dt.date, amount_fen: int, surcharge_fen: int, memo: str
) -> Entry:
    """A confirmed payout: the merchant's payable pays the bank transfer and the surcharge.

    >>> payout_entry(7, "M1", dt.date(2026, 1, 2), 1000, 5, "d0").lines
    (('merchant_payable:M1', 1000), ('settlement_cash', -995), ('fee_income:d0_surcharge', -5))
    """
    return Entry(
        key=f"payout:{payout_id}",
        kind="payout",
        value_date=value_date,
        lines=_lines(
            (merchant_payable(mid), amount_fen),
            (SETTLEMENT_CASH, surcharge_fen - amount_fen),
            (FEE_INCOME_D0, -surcharge_fen),
        ),
        payout_id=payout_id,
        memo=memo,
    )
