"""The POS transaction set as one table: a `KindRow` per `Kind`, read by every layer that needs to know
what a kind is — the host's classification, field checks, original rules, response and outcome; the
terminal simulator's builders, journal, original rules and receipt; settlement totals, clearing and the
test factory; the issuer simulator's classification and account effect. Pure data (pos-8583.md
"Messages", network-8583.md). Adding a kind is adding a row here and the host steps it needs
(docs/architecture.md, "How to add a transaction kind").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from posgate.txnset.enums import Clearing, IssuerEffect, IssuerKind, Kind, Side, TxnState

AmountRule = Literal["equal", "up_to_115_percent", "what_is_left"]
OriginalDate = Literal["no", "optional", "required"]
AuthCodeUse = Literal["no", "sent", "checked"]

#: field 55's 9C (transaction type) for a chip read that sends a cryptogram
ICC_PURCHASE, ICC_BALANCE = "00", "30"


@dataclass(frozen=True)
class OriginalRule:
    """How a kind that refers to an original (fields 37 and 61) finds and checks it."""

    kinds: tuple[Kind, ...]  # the original's kind(s)
    same_terminal: bool  # the original must come from this terminal
    same_batch: bool  # … and from the open batch, not yet settled
    auth_code: AuthCodeUse  # field 38, the original's authorization code: not sent, sent, or sent and checked
    date: OriginalDate  # whether the terminal's 61 carries the original's date (MMDD)
    amount: AmountRule  # field 4 against the original's amount
    not_if_refunded: bool = False  # refused when the original is partly refunded (refund the rest)
    effect: tuple[TxnState, TxnState] | None = None  # an approval moves the original from → to
    adds_refunded: bool = False  # an approval adds field 4 to the original's refunded amount


@dataclass(frozen=True)
class KindRow:
    """One kind of POS request: its wire shape, the host's checks, its effects and its back office."""

    kind: Kind
    mti: str  # the request MTI ("" for UNSUPPORTED)
    processing_code: str | None = None  # field 3 the host classifies on (None: any)
    condition_code: str | None = None  # field 25 the terminal sends
    condition_decides: bool = False  # the host classifies on field 25 too
    type_code: str | None = None  # 60.1 the terminal sends
    nmcs: tuple[str, ...] = ()  # 60.3 network management codes (0800/0820)
    required: tuple[str, ...] = ()  # fields the host requires (CheckFields: else 30)
    echoed: tuple[str, ...] = ()  # request fields the response carries back
    not_stored: tuple[str, ...] = ()  # echoed fields with card data: never kept in the stored answer
    recorded: bool = False  # a transaction row (duplicate-checked by its unique key)
    card: bool = False  # carries card data (2 or 35)
    amount: bool = False  # field 4 must be positive and within the ceiling
    field32: bool = False  # the response carries the acquirer id (32)
    original: OriginalRule | None = None
    reversible: bool = False  # a 0400 may reverse it
    totals: Side | None = None  # its side of the settlement totals while approved
    clearing: Clearing | None = None
    clearing_sign: int = 0  # +1 cleared as a debit to the cardholder, -1 as a credit
    slip: bool = False  # approved: the terminal prints a slip (the response carries 63 = CUP)
    receipt_label: str | None = None
    issuer_kind: IssuerKind | None = None  # what the network request asks the issuer
    issuer_effect: IssuerEffect = IssuerEffect.NONE
    icc_type: str | None = None  # 9C of field 55 on a chip read (None: no field 55)
    pin: bool = False  # may carry a PIN block (52)

    @property
    def response_mti(self) -> str:
        """
        >>> row_of(Kind.REFUND).response_mti
        '0230'
        """
        return f"{int(self.mti) + 10:04d}"

    @property
    def reversal_restores(self) -> TxnState | None:
        """The state an approved reversal of this kind takes its original from (back to approved)."""
        return self.original.effect[1] if self.original and self.original.effect else None


_CARD_REQUIRED = ("3", "11", "22", "25", "41", "42", "49", "60")
_NETWORK = ("11", "41", "60")
_NETWORK_ECHO = ("11", "41", "42", "60")
_ECHO_FIN = ("3", "4", "11", "25", "41", "42", "49", "60")

# fmt: off
ROWS: tuple[KindRow, ...] = (
    KindRow(Kind.SIGN_IN, "0800", nmcs=("003", "004"), required=_NETWORK, echoed=_NETWORK_ECHO,
            receipt_label="SIGN-IN"),
    KindRow(Kind.SIGN_OUT, "0820", nmcs=("002",), required=_NETWORK, echoed=_NETWORK_ECHO),
    KindRow(Kind.ECHO, "0820", nmcs=("301",), required=_NETWORK, echoed=_NETWORK_ECHO,
            receipt_label="NETWORK TEST"),
    KindRow(
        Kind.BALANCE, "0200", "310000", "00", type_code="01",
        required=_CARD_REQUIRED, echoed=("3", "11", "25", "41", "42", "49", "60"),
        recorded=True, card=True, field32=True, slip=True, receipt_label="BALANCE INQUIRY",
        issuer_kind=IssuerKind.BALANCE, icc_type=ICC_BALANCE, pin=True,
    ),
    KindRow(
        Kind.SALE, "0200", "000000", "00", condition_decides=True, type_code="22",
        required=("3", "4", "11", "22", "25", "41", "42", "49", "60"), echoed=_ECHO_FIN,
        recorded=True, card=True, amount=True, field32=True, reversible=True, totals=Side.DEBIT,
        clearing=Clearing.CLEARED, clearing_sign=1, slip=True, receipt_label="SALE",
        issuer_kind=IssuerKind.SALE, issuer_effect=IssuerEffect.DEBIT, icc_type=ICC_PURCHASE, pin=True,
    ),
    KindRow(
        Kind.VOID, "0200", "200000", "00", condition_decides=True, type_code="23",
        required=("3", "4", "11", "22", "25", "37", "41", "42", "49", "60", "61"), echoed=(*_ECHO_FIN, "61"),
        recorded=True, card=True, amount=True, field32=True,
        original=OriginalRule((Kind.SALE,), same_terminal=True, same_batch=True, auth_code="sent", date="no",
                              amount="equal", not_if_refunded=True,
                              effect=(TxnState.APPROVED, TxnState.VOIDED)),
        reversible=True, totals=Side.CREDIT, clearing=Clearing.CANCELS, slip=True, receipt_label="VOID",
        issuer_kind=IssuerKind.CREDIT, issuer_effect=IssuerEffect.CREDIT, pin=True,
    ),
    KindRow(
        Kind.REFUND, "0220", "200000", "00", type_code="25",
        required=("3", "4", "11", "22", "25", "37", "41", "42", "49", "60", "61"), echoed=(*_ECHO_FIN, "61"),
        recorded=True, card=True, amount=True, field32=True,
        original=OriginalRule((Kind.SALE, Kind.COMPLETION), same_terminal=False, same_batch=False,
                              auth_code="no", date="required", amount="what_is_left", adds_refunded=True),
        totals=Side.CREDIT, clearing=Clearing.CLEARED, clearing_sign=-1, slip=True, receipt_label="REFUND",
        issuer_kind=IssuerKind.CREDIT, issuer_effect=IssuerEffect.CREDIT,
    ),
    KindRow(
        Kind.PREAUTH, "0100", "030000", "06", type_code="10",
        required=("3", "4", "11", "22", "25", "41", "42", "49", "60"), echoed=_ECHO_FIN,
        recorded=True, card=True, amount=True, field32=True, reversible=True, slip=True,
        receipt_label="PRE-AUTHORIZATION", issuer_kind=IssuerKind.PREAUTH, issuer_effect=IssuerEffect.HOLD,
        icc_type=ICC_PURCHASE, pin=True,
    ),
    KindRow(
        Kind.PREAUTH_VOID, "0100", "200000", "06", type_code="11",
        required=("3", "4", "11", "22", "25", "37", "38", "41", "42", "49", "60"), echoed=(*_ECHO_FIN, "61"),
        recorded=True, card=True, amount=True, field32=True,
        original=OriginalRule((Kind.PREAUTH,), same_terminal=True, same_batch=False, auth_code="checked",
                              date="optional", amount="equal",
                              effect=(TxnState.APPROVED, TxnState.CANCELLED)),
        reversible=True, receipt_label="PRE-AUTH VOID",
        issuer_kind=IssuerKind.PREAUTH_VOID, issuer_effect=IssuerEffect.RELEASE, pin=True,
    ),
    KindRow(
        Kind.COMPLETION, "0200", "000000", "06", condition_decides=True, type_code="20",
        required=("3", "4", "11", "22", "25", "37", "38", "41", "42", "49", "60", "61"),
        echoed=(*_ECHO_FIN, "61"),
        recorded=True, card=True, amount=True, field32=True,
        original=OriginalRule((Kind.PREAUTH,), same_terminal=False, same_batch=False, auth_code="checked",
                              date="required", amount="up_to_115_percent",
                              effect=(TxnState.APPROVED, TxnState.COMPLETED)),
        reversible=True, totals=Side.DEBIT, clearing=Clearing.CLEARED, clearing_sign=1, slip=True,
        receipt_label="PRE-AUTH COMPLETION",
        issuer_kind=IssuerKind.COMPLETION, issuer_effect=IssuerEffect.COMPLETE,
    ),
    KindRow(
        Kind.COMPLETION_VOID, "0200", "200000", "06", condition_decides=True, type_code="21",
        required=("3", "4", "11", "22", "25", "37", "41", "42", "49", "60", "61"), echoed=(*_ECHO_FIN, "61"),
        recorded=True, card=True, amount=True, field32=True,
        original=OriginalRule((Kind.COMPLETION,), same_terminal=True, same_batch=True, auth_code="sent",
                              date="no", amount="equal", effect=(TxnState.APPROVED, TxnState.VOIDED)),
        reversible=True, totals=Side.CREDIT, clearing=Clearing.CANCELS, receipt_label="COMPLETION VOID",
        issuer_kind=IssuerKind.CREDIT, issuer_effect=IssuerEffect.CREDIT, pin=True,
    ),
    KindRow(
        Kind.REVERSAL, "0400", required=("3", "11", "25", "39", "41", "42", "60"),
        echoed=("3", "4", "11", "25", "41", "42", "49", "60"), recorded=True, field32=True,
        clearing=Clearing.CANCELS, receipt_label="REVERSAL",
    ),
    KindRow(
        Kind.SETTLEMENT, "0500", required=("11", "41", "42", "48", "60"),
        echoed=("11", "41", "42", "49", "60"),
        recorded=True, receipt_label="SETTLEMENT",
    ),
    KindRow(
        Kind.BATCH_UPLOAD, "0320", required=("11", "41", "42", "48", "60"),
        echoed=("11", "41", "42", "48", "60"),
        not_stored=("48",), recorded=True,
    ),
    KindRow(Kind.UNSUPPORTED, "", echoed=("3", "4", "11", "41", "42", "49", "60")),
)
# fmt: on

_BY_KIND: dict[Kind, KindRow] = {row.kind: row for row in ROWS}


def row_of(kind: Kind) -> KindRow:
    """The row of a kind.

    >>> row_of(Kind.SALE).processing_code, row_of(Kind.SALE).totals
    ('000000', <Side.DEBIT: 'debit'>)
    """
    return _BY_KIND[kind]


def kinds_where(predicate: Callable[[KindRow], object]) -> tuple[Kind, ...]:
    """The kinds whose row satisfies `predicate`, in table order.

    >>> kinds_where(lambda row: row.totals is Side.DEBIT)
    (<Kind.SALE: 'sale'>, <Kind.COMPLETION: 'completion'>)
    """
    return tuple(row.kind for row in ROWS if predicate(row))


# (MTI, processing code, condition code) → kind; None = any
_BY_SHAPE: dict[tuple[str, str | None, str | None], Kind] = {
    (row.mti, row.processing_code, row.condition_code if row.condition_decides else None): row.kind
    for row in ROWS
    if row.mti and not row.nmcs
}
_BY_NMC: dict[tuple[str, str], Kind] = {(row.mti, nmc): row.kind for row in ROWS for nmc in row.nmcs}
NETWORK_MANAGEMENT_MTIS = tuple(sorted({row.mti for row in ROWS if row.nmcs}))


def kind_of(mti: str, processing_code: str | None, condition_code: str | None, nmc: str = "") -> Kind:
    """What a POS request is: network management by MTI and 60.3, the rest by MTI, 3 and (where it
    decides) 25.

    >>> kind_of("0200", "000000", "06"), kind_of("0220", "200000", "00"), kind_of("0820", None, None, "301")
    (<Kind.COMPLETION: 'completion'>, <Kind.REFUND: 'refund'>, <Kind.ECHO: 'echo'>)
    >>> kind_of("0200", "400000", "00")
    <Kind.UNSUPPORTED: 'unsupported'>
    """
    if mti in NETWORK_MANAGEMENT_MTIS:
        return _BY_NMC.get((mti, nmc), Kind.UNSUPPORTED)
    for key in ((mti, processing_code, condition_code), (mti, processing_code, None), (mti, None, None)):
        if key in _BY_SHAPE:
            return _BY_SHAPE[key]
    return Kind.UNSUPPORTED


PREAUTH_CONDITION_CODE = "06"
# (network MTI, transaction type = 3's first two digits) → (kind, kind when 25 = 06); the account types
# are ignored, and a 0220 advice is classified like the 0200 it stands for
_ISSUER_KINDS: dict[tuple[str, str], tuple[IssuerKind, IssuerKind]] = {
    ("0100", "03"): (IssuerKind.PREAUTH, IssuerKind.PREAUTH),
    ("0100", "20"): (IssuerKind.PREAUTH_VOID, IssuerKind.PREAUTH_VOID),
    ("0100", "31"): (IssuerKind.BALANCE, IssuerKind.BALANCE),
    ("0200", "00"): (IssuerKind.SALE, IssuerKind.COMPLETION),
    ("0200", "20"): (IssuerKind.CREDIT, IssuerKind.CREDIT),
    ("0200", "31"): (IssuerKind.BALANCE, IssuerKind.BALANCE),
    ("0220", "00"): (IssuerKind.SALE, IssuerKind.COMPLETION),
    ("0220", "20"): (IssuerKind.CREDIT, IssuerKind.CREDIT),
}


def issuer_kind_of(mti: str, processing_code: str, condition_code: str | None = None) -> IssuerKind | None:
    """What a network request asks the issuer, or None when the network dialect does not offer it.

    >>> issuer_kind_of("0200", "000000", "06"), issuer_kind_of("0220", "200000")
    (<IssuerKind.COMPLETION: 'completion'>, <IssuerKind.CREDIT: 'credit'>)
    """
    kinds = _ISSUER_KINDS.get((mti, processing_code[:2]))
    if kinds is None:
        return None
    return kinds[1] if condition_code == PREAUTH_CONDITION_CODE else kinds[0]
