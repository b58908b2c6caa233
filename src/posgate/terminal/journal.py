"""The terminal's journal of approved transactions in the open batch (pure): settlement totals (field 48 of
the 0500) and the batch upload records (field 48 of the 0320s).

Each `JournalEntry` keeps the message codes, amount, STAN, batch, RRN, authorization code and date of one
approved transaction, the masked PAN, and the PAN sealed with AES-256-GCM under the terminal's own journal
key: HKDF-SHA256 of the TMK with info `posgate terminal journal` (a real terminal keeps it in secure memory).
The TID is the associated data, so a sealed PAN only opens in its own terminal's journal. Never the track,
CVV, PIN or PIN block.

Totals (pos-8583.md "Settlement", the wire contract with the host):
- debit = approved, not reversed sales and completions (a later void does not take a sale out: the void
  counts in credit);
- credit = approved, not reversed voids (of sales and of completions) and refunds;
- pre-authorizations and their voids are journalled (a completion needs them) but never counted.
All demo cards are domestic (UnionPay BINs), so the foreign half of field 48 is zeros.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from posgate.errors import DecodeError, EncodeError, SecurityError
from posgate.txnset import Kind, Side, kinds_where

JOURNAL_KEY_INFO = b"posgate terminal journal"
NONCE_LENGTH = 12

SALE = Kind.SALE
VOID = Kind.VOID
REFUND = Kind.REFUND
PREAUTH = Kind.PREAUTH
PREAUTH_VOID = Kind.PREAUTH_VOID
COMPLETION = Kind.COMPLETION
COMPLETION_VOID = Kind.COMPLETION_VOID
BALANCE = Kind.BALANCE
#: the kinds the journal holds: the transaction set's card transactions that change an account
KINDS = kinds_where(lambda row: row.card and row.amount)
DEBIT_KINDS = frozenset(kinds_where(lambda row: row.totals is Side.DEBIT))
CREDIT_KINDS = frozenset(kinds_where(lambda row: row.totals is Side.CREDIT))

#: Entry modes (field 22's first two digits) whose records go up as IC records (60.3 = 203).
CHIP_ENTRY_PREFIXES = ("05", "07")
RECORDS_PER_UPLOAD = 8
CARD_ORGANIZATION_CUP = "00"
COUNT_MAX = 999
AMOUNT_MAX_FEN = 999_999_999_999

#: Settlement code digits of the 0510's field 48 (positions 31 and 62, 1-based).
CODE_REQUEST = "0"
CODE_BALANCED = "1"
CODE_UNBALANCED = "2"


def journal_key(tmk: bytes) -> bytes:
    """The journal's AES-256 key: HKDF-SHA256(TMK, no salt, info `posgate terminal journal`)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=JOURNAL_KEY_INFO).derive(bytes(tmk))


def seal_pan(key: bytes, pan: str, tid: str) -> str:
    """The PAN encrypted for the journal: hex of nonce(12) ‖ ciphertext ‖ tag(16), TID as associated data."""
    nonce = os.urandom(NONCE_LENGTH)
    return (nonce + AESGCM(key).encrypt(nonce, pan.encode("ascii"), tid.encode("ascii"))).hex()


def open_pan(key: bytes, sealed: str, tid: str) -> str:
    """The PAN of a journal entry; `SecurityError` (naming nothing secret) if it does not decrypt."""
    try:
        raw = bytes.fromhex(sealed)
        pan = AESGCM(key).decrypt(raw[:NONCE_LENGTH], raw[NONCE_LENGTH:], tid.encode("ascii"))
    except (ValueError, InvalidTag):
        raise SecurityError(
            "journal: a sealed PAN does not decrypt under this terminal's key (TMK changed?)"
        ) from None
    return pan.decode("ascii")


def card_key(pan: str) -> str:
    """The state file's key for per-card data (the ATC): SHA-256 of the PAN, first 16 hex characters.

    >>> card_key("6228880000000016")
    'bb4c45e0572b4619'
    """
    return hashlib.sha256(pan.encode("ascii")).hexdigest()[:16]


@dataclass
class JournalEntry:
    """One approved transaction of the terminal. `date` is MMDD (the host's field 13, else the terminal's);
    `original_rrn` is the RRN a void, refund or completion refers to. `voided`, `completed` and
    `refunded_fen` track what later transactions did to this one; `reversed` is set by an approved 0400."""

    kind: str
    mti: str
    processing_code: str
    condition_code: str
    entry_mode: str
    stan: str
    batch: str
    amount_fen: int
    rrn: str | None
    auth_code: str | None
    date: str
    masked_pan: str
    pan_sealed: str
    original_rrn: str | None = None
    reversed: bool = False
    voided: bool = False
    completed: bool = False
    refunded_fen: int = 0

    def __repr__(self) -> str:
        return (
            f"JournalEntry({self.kind} STAN {self.stan} batch {self.batch} {self.amount_fen} fen "
            f"{self.masked_pan} RRN {self.rrn}{' reversed' if self.reversed else ''})"
        )

    @property
    def chip_read(self) -> bool:
        """Read from the chip (contact or contactless): uploaded as an IC record."""
        return self.entry_mode[:2] in CHIP_ENTRY_PREFIXES

    @property
    def in_totals(self) -> bool:
        return not self.reversed and (self.kind in DEBIT_KINDS or self.kind in CREDIT_KINDS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JournalEntry:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class BatchTotals:
    """The domestic totals of a batch (the foreign ones are zero in the simulator)."""

    debit_fen: int = 0
    debit_count: int = 0
    credit_fen: int = 0
    credit_count: int = 0

    def field48(self) -> str:
        """Field 48 of the 0500: domestic debit n12 + count n3 + credit n12 + count n3 + code `0`, then the
        same 31 digits (zeros) for foreign cards.

        >>> BatchTotals(12345, 2, 500, 1).field48()
        '00000001234500200000000050000100000000000000000000000000000000'
        """
        for name, value, limit in (
            ("debit amount", self.debit_fen, AMOUNT_MAX_FEN),
            ("debit count", self.debit_count, COUNT_MAX),
            ("credit amount", self.credit_fen, AMOUNT_MAX_FEN),
            ("credit count", self.credit_count, COUNT_MAX),
        ):
            if not 0 <= value <= limit:
                raise EncodeError(
                    f"field 48: {name} {value} does not fit (0 to {limit}): settle sooner", field=48
                )
        domestic = (
            f"{self.debit_fen:012d}{self.debit_count:03d}{self.credit_fen:012d}{self.credit_count:03d}"
            + CODE_REQUEST
        )
        return domestic + "0" * 30 + CODE_REQUEST


def batch_totals(entries: Iterable[JournalEntry]) -> BatchTotals:
    """Debit and credit totals of the entries (see the module docstring for what counts)."""
    debit_fen = debit_count = credit_fen = credit_count = 0
    for entry in entries:
        if not entry.in_totals:
            continue
        if entry.kind in DEBIT_KINDS:
            debit_fen += entry.amount_fen
            debit_count += 1
        else:
            credit_fen += entry.amount_fen
            credit_count += 1
    return BatchTotals(debit_fen, debit_count, credit_fen, credit_count)


def settlement_codes(field48: str | None) -> tuple[str, str]:
    """The domestic and foreign settlement codes of a 0510's field 48 (positions 31 and 62, 1-based).

    >>> settlement_codes("0" * 30 + "1" + "0" * 30 + "1"), settlement_codes("0" * 30 + "2")
    (('1', '1'), ('2', ''))
    """
    if not field48 or len(field48) < 31:
        raise DecodeError("field 48: the 0510 carries no settlement code at position 31", field=48)
    return field48[30], field48[61] if len(field48) >= 62 else ""


def is_balanced(codes: tuple[str, str]) -> bool:
    """Balanced when the domestic code is `1` and the foreign one is `1` (or absent / untouched `0`)."""
    domestic, foreign = codes
    return domestic == CODE_BALANCED and foreign in (CODE_BALANCED, CODE_REQUEST, "")


def upload_record(stan: str, pan: str, amount_fen: int) -> str:
    """One 40-digit batch upload record: card organization `00`, STAN n6, PAN n20 (zero-padded left),
    amount n12.

    >>> upload_record("000012", "6229990000000012", 1234)
    '0000001200006229990000000012000000001234'
    """
    if not (len(pan) <= 20 and pan.isascii() and pan.isdigit()):
        raise EncodeError("field 48: PAN must be at most 20 digits", field=48)
    return f"{CARD_ORGANIZATION_CUP}{stan}{pan:0>20}{amount_fen:012d}"


@dataclass(frozen=True)
class UploadGroup:
    """Up to 8 records of one kind (magstripe-read or chip-read) for one 0320."""

    chip: bool
    records: tuple[str, ...]

    def field48(self) -> str:
        """n2 record count, then the records."""
        return f"{len(self.records):02d}" + "".join(self.records)

    def __repr__(self) -> str:
        return f"UploadGroup(chip={self.chip}, records={len(self.records)})"


def upload_groups(
    entries: Sequence[JournalEntry], key: bytes, tid: str, per_message: int = RECORDS_PER_UPLOAD
) -> list[UploadGroup]:
    """Every entry counted in the totals as upload records: magstripe-read first, then chip-read, in
    journal order, in groups of at most `per_message`."""
    groups: list[UploadGroup] = []
    for chip in (False, True):
        records = [
            upload_record(entry.stan, open_pan(key, entry.pan_sealed, tid), entry.amount_fen)
            for entry in entries
            if entry.in_totals and entry.chip_read == chip
        ]
        for start in range(0, len(records), per_message):
            groups.append(UploadGroup(chip, tuple(records[start : start + per_message])))
    return groups
