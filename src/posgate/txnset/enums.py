"""The transaction set's vocabularies: what a POS request is (`Kind`), the states a recorded transaction
moves through (`TxnState`), what the network side calls a request (`IssuerKind`) and what an approval does
to the cardholder's account (`IssuerEffect`), the settlement-totals side (`Side`) and the clearing
treatment (`Clearing`). Pure: imported by every layer, like `posgate.money`.

`Kind` and `TxnState` are `StrEnum`s whose values are what the store's `kind` and `state` columns hold, so
a member compares equal to the column's string.
"""

from __future__ import annotations

from enum import Enum, StrEnum


class Kind(StrEnum):
    """What a POS request is, from its MTI, processing code, condition code and 60.3."""

    SIGN_IN = "sign-in"
    SIGN_OUT = "sign-out"
    ECHO = "echo"
    BALANCE = "balance"
    SALE = "sale"
    VOID = "void"
    REFUND = "refund"
    PREAUTH = "preauth"
    PREAUTH_VOID = "preauth_void"
    COMPLETION = "completion"
    COMPLETION_VOID = "completion_void"
    REVERSAL = "reversal"
    SETTLEMENT = "settlement"
    BATCH_UPLOAD = "batch_upload"
    UNSUPPORTED = "unsupported"

    @property
    def financial(self) -> bool:
        """Recorded as a transaction (and duplicate-checked)."""
        from posgate.txnset.table import row_of

        return row_of(self).recorded

    @property
    def needs_original(self) -> bool:
        """Refers to an original transaction (fields 37 and 61)."""
        from posgate.txnset.table import row_of

        return row_of(self).original is not None


class TxnState(StrEnum):
    """A recorded transaction's state (`transactions.state`)."""

    PENDING = "pending"  # recorded, not answered yet
    APPROVED = "approved"
    DECLINED = "declined"
    TIMED_OUT = "timed_out"  # no answer from the issuer in time: its reversal is queued
    REVERSED = "reversed"
    VOIDED = "voided"  # a void (or completion void) of it was approved
    COMPLETED = "completed"  # a pre-authorization whose completion was approved
    CANCELLED = "cancelled"  # a pre-authorization whose void was approved


class IssuerKind(Enum):
    """What a network request asks the issuer to do (the issuer simulator's view)."""

    SALE = "sale"  # 000000: debit the amount
    BALANCE = "balance"  # 310000: no effect, report the available amount
    PREAUTH = "preauth"  # 030000: hold the amount
    COMPLETION = "completion"  # 000000 with field 25 = 06: debit, releasing the pre-authorization's hold
    PREAUTH_VOID = "preauth void"  # 0100 200000: release a pre-authorization's hold
    CREDIT = "credit"  # 200000: void of a sale, refund: give the amount back


class IssuerEffect(Enum):
    """What an approved request does to the account (stored in `SimAuthorization.effect`)."""

    NONE = "none"
    DEBIT = "debit"  # spend `amount`
    HOLD = "hold"  # hold `amount`
    CREDIT = "credit"  # un-spend `amount`
    COMPLETE = "complete"  # release `released_fen` held, spend `amount`
    RELEASE = "release"  # release `released_fen` held


class Side(StrEnum):
    """Which settlement total (field 48 of the 0500) an approved transaction counts in."""

    DEBIT = "debit"
    CREDIT = "credit"


class Clearing(StrEnum):
    """How clearing treats a transaction of the kind."""

    CLEARED = "cleared"  # cleared on its own: a sale, a completion (with fees), a refund (negative, no fees)
    CANCELS = "cancels"  # changes what an earlier transaction clears: a void, a completion void, a reversal
