"""Transactions on an original (pure): which journal entry a void, refund, completion or their voids act on,
what bars them, and what an approval — or its reversal — does to the original.

The rules are one `OnOriginalRule` per kind (`ON_ORIGINAL`); `book` journals an approved transaction and
marks its original, `unbook` gives back what an approved reversal undoes. They change the `TerminalState`
they are given (its journal) and never touch the network.
"""

from __future__ import annotations

from dataclasses import dataclass

from posgate.terminal.cards import CardProfile
from posgate.terminal.errors import UnknownOriginal
from posgate.terminal.journal import (
    COMPLETION,
    COMPLETION_VOID,
    PREAUTH_VOID,
    REFUND,
    VOID,
    JournalEntry,
    open_pan,
    seal_pan,
)
from posgate.terminal.messages import TXN_TYPES, Message, Original
from posgate.terminal.result import TxnResult
from posgate.terminal.state import LastTransaction, TerminalState
from posgate.txnset import Kind, TxnState, row_of

__all__ = [
    "ON_ORIGINAL",
    "OnOriginalRule",
    "book",
    "by_reference",
    "check_original",
    "find",
    "original_of",
    "unbook",
]


@dataclass(frozen=True)
class OnOriginalRule:
    """What a transaction on an original needs of it, beyond its row in the transaction set (which gives the
    original's kind and what an approval does to it: `of`, `mark`). `barred_before_card` /
    `barred_after_card`: the marks on the original that bar the transaction, each with its message, checked
    in this order around the card check; `missing`: the message when the journal does not hold the original
    (and the caller gave no references); `given_date_wins`: a given original date replaces the journal's.
    Messages are templates of `{rrn}`."""

    kind: Kind
    missing: str
    barred_before_card: tuple[tuple[str, str], ...] = ()
    barred_after_card: tuple[tuple[str, str], ...] = ()
    given_date_wins: bool = False

    @property
    def of(self) -> Kind:
        """The original's kind in the journal (the first the transaction set allows)."""
        rule = row_of(self.kind).original
        assert rule is not None
        return rule.kinds[0]

    @property
    def mark(self) -> str:
        """The journal entry's field an approval marks: `refunded_fen` (adds to it) or a flag."""
        rule = row_of(self.kind).original
        assert rule is not None
        if rule.adds_refunded:
            return "refunded_fen"
        return "completed" if rule.effect and rule.effect[1] is TxnState.COMPLETED else "voided"


def _is(name: str, *marks: str, already: bool = False) -> tuple[tuple[str, str], ...]:
    """Bars for `marks` (flags of a journal entry) with the message "the <name> with RRN … is [already] …"."""
    return tuple((mark, f"the {name} with RRN {{rrn}} is {'already ' * already}{mark}") for mark in marks)


ON_ORIGINAL: dict[str, OnOriginalRule] = {
    VOID: OnOriginalRule(
        kind=VOID,
        missing="no sale with RRN {rrn} in the journal to void",
        barred_before_card=_is("sale", "reversed", "voided", already=True),
        barred_after_card=(
            ("refunded_fen", "the sale with RRN {rrn} is partly refunded: it cannot be voided"),
        ),
    ),
    REFUND: OnOriginalRule(
        kind=REFUND,
        missing="no sale with RRN {rrn} in the journal: give the original date (MMDD) to refund it",
        barred_after_card=_is("sale", "reversed", "voided"),
        given_date_wins=True,
    ),
    PREAUTH_VOID: OnOriginalRule(
        kind=PREAUTH_VOID,
        missing="no preauth with RRN {rrn} in the journal to void",
        barred_before_card=_is("preauth", "reversed", "voided", already=True),
        barred_after_card=(
            ("completed", "the pre-authorization with RRN {rrn} is completed: void the completion"),
        ),
    ),
    COMPLETION: OnOriginalRule(
        kind=COMPLETION,
        missing="no pre-authorization with RRN {rrn} in the journal: give its authorization code and date",
        barred_after_card=_is("pre-authorization", "reversed", "voided", "completed"),
    ),
    COMPLETION_VOID: OnOriginalRule(
        kind=COMPLETION_VOID,
        missing="no completion with RRN {rrn} in the journal to void",
        barred_before_card=_is("completion", "reversed", "voided", already=True),
    ),
}


def find(state: TerminalState, rrn: str, kind: str) -> JournalEntry | None:
    """The newest journal entry of `kind` with this RRN."""
    for entry in reversed(state.journal):
        if entry.rrn == rrn and entry.kind == kind:
            return entry
    return None


def _check_marks(entry: JournalEntry, barred: tuple[tuple[str, str], ...]) -> None:
    for mark, message in barred:
        if getattr(entry, mark):
            raise UnknownOriginal(message.format(rrn=entry.rrn))


def check_original(state: TerminalState, entry: JournalEntry, card: CardProfile, kind: str) -> None:
    """Raise `UnknownOriginal` when a mark on the original bars `kind` or the card is not its card."""
    rule = ON_ORIGINAL[kind]
    _check_marks(entry, rule.barred_before_card)
    if open_pan(state.journal_key, entry.pan_sealed, state.tid) != card.pan:
        raise UnknownOriginal(f"the card read is not the original's ({entry.masked_pan})")
    _check_marks(entry, rule.barred_after_card)


def by_reference(kind: str, rrn: str, auth_code: str | None, original_date: str | None) -> Original:
    """An original the journal does not hold (one of an earlier batch), from the references the caller
    gives: only for a kind whose 61 carries the date (refund, completion), with zeros for batch and STAN."""
    txn = TXN_TYPES[kind]
    given = original_date is not None and (auth_code is not None or not txn.original_auth_code)
    if txn.original_date != "required" or not given:
        raise UnknownOriginal(ON_ORIGINAL[kind].missing.format(rrn=rrn))
    return Original(rrn, "000000", "000000", auth_code, original_date)


def original_of(entry: JournalEntry, date: str | None = None) -> Original:
    """The journal entry as an original; `date` replaces its date when given."""
    return Original(
        entry.rrn or "", entry.batch, entry.stan, entry.auth_code, entry.date if date is None else date
    )


def book(
    state: TerminalState,
    kind: str,
    msg: Message,
    card: CardProfile,
    result: TxnResult,
    original: JournalEntry | None,
    today_mmdd: str,
) -> None:
    """Journal an approved transaction and mark what it did to its original. `today_mmdd`: the entry's
    date when the response carries no field 13."""
    date = result.fields.get("13") or today_mmdd
    state.journal.append(
        JournalEntry(
            kind=kind,
            mti=msg["t"],
            processing_code=msg["3"],
            condition_code=msg["25"],
            entry_mode=msg["22"],
            stan=msg["11"],
            batch=state.batch,
            amount_fen=int(msg["4"]),
            rrn=result.rrn,
            auth_code=result.auth_code,
            date=date,
            masked_pan=card.masked_pan,
            pan_sealed=seal_pan(state.journal_key, card.pan, state.tid),
            original_rrn=msg.get("37"),
        )
    )
    if original is None:
        return
    _mark(original, ON_ORIGINAL[kind].mark, int(msg["4"]), on=True)


def unbook(state: TerminalState, last: LastTransaction) -> None:
    """An approved reversal: mark the reversed entry, and undo what it did to its original."""
    for entry in reversed(state.journal):
        if (entry.stan, entry.batch, entry.mti, entry.kind) == (
            last.stan,
            last.batch,
            last.mti,
            last.kind,
        ):
            if entry.reversed:
                return
            entry.reversed = True
            break
    else:
        return
    rule = ON_ORIGINAL.get(entry.kind)
    if rule is None or not entry.original_rrn or not TXN_TYPES[entry.kind].reversible:
        return
    original = find(state, entry.original_rrn, rule.of)
    if original is not None:
        _mark(original, rule.mark, entry.amount_fen, on=False)


def _mark(original: JournalEntry, mark: str, amount_fen: int, on: bool) -> None:
    """Mark (or, for a reversal, unmark) what a transaction did to its original."""
    if mark == "refunded_fen":
        original.refunded_fen += amount_fen if on else 0  # a refund is not reversible: nothing to give back
    elif mark == "completed":
        original.completed = on
    else:
        original.voided = on
