"""The POS transaction set, one document every layer reads: the kinds, their states and one row per kind
(`table.ROWS`). Pure data and enums — no I/O — importable from the host, the terminal and issuer
simulators, settlement and the store alike."""

from posgate.txnset.enums import Clearing, IssuerEffect, IssuerKind, Kind, Side, TxnState
from posgate.txnset.table import (
    NETWORK_MANAGEMENT_MTIS,
    ROWS,
    KindRow,
    OriginalRule,
    issuer_kind_of,
    kind_of,
    kinds_where,
    row_of,
)

__all__ = [
    "NETWORK_MANAGEMENT_MTIS",
    "ROWS",
    "Clearing",
    "IssuerEffect",
    "IssuerKind",
    "Kind",
    "KindRow",
    "OriginalRule",
    "Side",
    "TxnState",
    "issuer_kind_of",
    "kind_of",
    "kinds_where",
    "row_of",
]
