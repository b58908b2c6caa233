"""The chip side of a demo card and the terminal's half of an online EMV transaction (pure).

The simulator stands in for the card: a `ChipCard` holds the card's AC master key, derived from the issuer's
IMK-AC exactly as the demo fixture's issuer derives it (demo-fixture.md: EMV option A, PSN `01`). For each
online transaction the terminal gathers its data objects, the "card" computes the ARQC (EMV common session key
from the ATC, ISO 9797-1 algorithm 3 over 9F02 ‖ 9F03 ‖ 9F1A ‖ 95 ‖ 5F2A ‖ 9A ‖ 9C ‖ 9F37 ‖ 82 ‖ 9F36 ‖ CVR,
`posgate.security.emv.arqc_data`) and the terminal sends field 55 with the tags below, in this order:

| tag | what | value |
|---|---|---|
| 9F26 | application cryptogram (ARQC) | computed |
| 9F27 | cryptogram information data | `80` (ARQC) |
| 9F10 | issuer application data | `07 01 01` + CVR `03 A0 00 00` (key index 01, CVN 01) |
| 9F37 | unpredictable number | 4 random bytes, a parameter here |
| 9F36 | ATC | 2 bytes, advanced by the caller per card |
| 95 | TVR | `0000000000` |
| 9A | transaction date | YYMMDD (BCD) |
| 9C | transaction type | `00` purchase (sale, pre-authorization), `30` balance inquiry, `20` refund |
| 9F02 | amount, authorized | n12 BCD, fen (zero for a balance inquiry) |
| 5F2A · 9F1A | currency · country | `0156` · `0156` |
| 82 | AIP | `7C00` |
| 9F03 | amount, other | zero |
| 9F33 | terminal capabilities | `E0E1C8` |
| 9F34 | CVM results | `420300` online PIN; `1F0302` no CVM when no PIN was entered |
| 84 | dedicated file name (AID) | `A000000333010101` (UnionPay) |

9C follows EMV (the first two digits of the ISO 8583:1987 processing code of the *kind* of transaction):
a pre-authorization is a purchase of goods (`00`); balance is `30`. Only sales, balance inquiries and
pre-authorizations carry a cryptogram (voids, refunds, completions do not read the chip online).

The issuer answers with field 55 tag 91 = ARPC(8) ‖ ARC(2), ARPC = method 1 over the ARQC the terminal sent
with ARC = the ASCII bytes of field 39; `arpc_verdict` checks it.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass, field

from posgate.cards.tlv import decode_tlv, encode_tlv
from posgate.errors import DecodeError, EncodeError, SecurityError
from posgate.security.emv import arqc_data, generate_arpc, generate_arqc, icc_master_key, session_key
from posgate.txnset.table import ICC_BALANCE, ICC_PURCHASE

TXN_TYPE_PURCHASE = ICC_PURCHASE
TXN_TYPE_BALANCE = ICC_BALANCE
TXN_TYPE_REFUND = "20"

ARQC_TAG = "9F26"
ARPC_TAG = "91"
CID_ARQC = bytes.fromhex("80")
#: 9F10: length 07, derivation key index 01, cryptogram version 01, CVR (its first byte the CVR length 03).
ISSUER_APPLICATION_DATA = bytes.fromhex("07010103A00000")
TVR_NONE = bytes(5)
AIP = bytes.fromhex("7C00")
CNY = bytes.fromhex("0156")
CHINA = bytes.fromhex("0156")
TERMINAL_CAPABILITIES = bytes.fromhex("E0E1C8")
CVM_ONLINE_PIN = bytes.fromhex("420300")
CVM_NONE = bytes.fromhex("1F0302")
AID_UNIONPAY = bytes.fromhex("A000000333010101")
ATC_MAX = 0xFFFF
AMOUNT_MAX_FEN = 999_999_999_999

#: Field 55's tags in the order the terminal writes them (demo-fixture.md's required list).
REQUEST_TAGS = (
    "9F26",
    "9F27",
    "9F10",
    "9F37",
    "9F36",
    "95",
    "9A",
    "9C",
    "9F02",
    "5F2A",
    "82",
    "9F1A",
    "9F03",
    "9F33",
    "9F34",
    "84",
)


@dataclass(frozen=True)
class ChipCard:
    """The chip of a card: its PAN sequence number and AC master key. `repr()` never shows the key."""

    psn: str
    icc_master_key: bytes = field(repr=False)

    @classmethod
    def from_issuer(cls, imk_ac: bytes, pan: str, psn: str) -> ChipCard:
        """The chip the issuer personalized: ICC master key = option A of `imk_ac`, the PAN and the PSN.

        >>> imk_ac = bytes.fromhex("9E15204313F7318ACB79B90BD986AD29")
        >>> card = ChipCard.from_issuer(imk_ac, "6228880000000016", "01")
        >>> card.icc_master_key.hex().upper(), card
        ('4989137A45E30D10E5A1A7209EECD51A', ChipCard(psn='01'))
        """
        return cls(psn=psn, icc_master_key=icc_master_key(imk_ac, pan, psn))

    def session_key(self, atc: int) -> bytes:
        """The AC session key of the transaction with this ATC."""
        return session_key(self.icc_master_key, _atc_bytes(atc))


@dataclass(frozen=True)
class IccRequest:
    """What the terminal sent in field 55 (tags as bytes), and what it needs to check the issuer's ARPC."""

    tags: dict[str, bytes] = field(repr=False)
    arqc: bytes = field(repr=False)
    session_key: bytes = field(repr=False)
    atc: int

    def field55(self) -> str:
        """Field 55 as a Message carries it: BER-TLV in `REQUEST_TAGS` order, uppercase hex."""
        return encode_tlv({tag: self.tags[tag] for tag in REQUEST_TAGS}).hex().upper()


def _atc_bytes(atc: int) -> bytes:
    if isinstance(atc, bool) or not isinstance(atc, int) or not 0 <= atc <= ATC_MAX:
        raise SecurityError(f"ATC must be 0 to {ATC_MAX}, got {atc!r}")
    return atc.to_bytes(2, "big")


def transaction_tags(
    *,
    amount_fen: int,
    txn_date: dt.date,
    txn_type: str,
    unpredictable_number: bytes,
    atc: int,
    pin_entered: bool = True,
    tvr: bytes = TVR_NONE,
) -> dict[str, bytes]:
    """Every field 55 tag except the cryptogram (9F26).

    >>> tags = transaction_tags(amount_fen=8800, txn_date=dt.date(2026, 11, 26), txn_type="00",
    ...                         unpredictable_number=bytes.fromhex("11223344"), atc=1)
    >>> arqc_data(tags).hex().upper()
    '00000000880000000000000001560000000000015626112600112233447C00000103A00000'
    """
    if (
        isinstance(amount_fen, bool)
        or not isinstance(amount_fen, int)
        or not 0 <= amount_fen <= AMOUNT_MAX_FEN
    ):
        raise EncodeError(f"field 55: amount must be 0 to {AMOUNT_MAX_FEN} fen, got {amount_fen!r}", field=55)
    if len(txn_type) != 2 or not txn_type.isdigit():
        raise EncodeError(f"field 55: transaction type (9C) must be 2 digits, got {txn_type!r}", field=55)
    if len(unpredictable_number) != 4:
        raise EncodeError("field 55: the unpredictable number (9F37) must be 4 bytes", field=55)
    if len(tvr) != 5:
        raise EncodeError("field 55: the TVR (95) must be 5 bytes", field=55)
    return {
        "9F27": CID_ARQC,
        "9F10": ISSUER_APPLICATION_DATA,
        "9F37": bytes(unpredictable_number),
        "9F36": _atc_bytes(atc),
        "95": bytes(tvr),
        "9A": bytes.fromhex(txn_date.strftime("%y%m%d")),
        "9C": bytes.fromhex(txn_type),
        "9F02": bytes.fromhex(f"{amount_fen:012d}"),
        "5F2A": CNY,
        "82": AIP,
        "9F1A": CHINA,
        "9F03": bytes(6),
        "9F33": TERMINAL_CAPABILITIES,
        "9F34": CVM_ONLINE_PIN if pin_entered else CVM_NONE,
        "84": AID_UNIONPAY,
    }


def icc_request(card: ChipCard, tags: dict[str, bytes], tamper: bool = False) -> IccRequest:
    """The card's ARQC over the transaction's data objects (`transaction_tags`), and the field 55 tags that
    carry it; the session key comes from the ATC in tag 9F36.

    `tamper=True` flips the lowest bit of the ARQC's last byte after computing it (to test the issuer's `05`);
    the ARPC is then checked against the ARQC actually sent.

    >>> imk_ac = bytes.fromhex("9E15204313F7318ACB79B90BD986AD29")
    >>> card = ChipCard.from_issuer(imk_ac, "6228880000000016", "01")
    >>> tags = transaction_tags(amount_fen=8800, txn_date=dt.date(2026, 11, 26), txn_type="00",
    ...                         unpredictable_number=bytes.fromhex("11223344"), atc=1)
    >>> request = icc_request(card, tags)
    >>> request.arqc.hex().upper(), request.tags["9F26"] == request.arqc, request.atc
    ('A40C02DEFB441C8A', True, 1)
    """
    atc = int.from_bytes(tags["9F36"], "big")
    sk = card.session_key(atc)
    arqc = generate_arqc(sk, arqc_data(tags))
    if tamper:
        arqc = arqc[:-1] + bytes([arqc[-1] ^ 0x01])
    return IccRequest(tags={ARQC_TAG: arqc, **tags}, arqc=arqc, session_key=sk, atc=atc)


def arpc_verdict(request: IccRequest, field55_hex: str | None, response_code: str) -> bool | None:
    """Whether the response's ARPC authenticates the issuer: None when field 55 or its tag 91 is absent;
    False when tag 91 is malformed, its ARC is not the ASCII of field 39, or the ARPC does not verify."""
    if not field55_hex:
        return None
    try:
        tags = decode_tlv(bytes.fromhex(field55_hex))
    except (DecodeError, ValueError):
        return False
    value = tags.get(ARPC_TAG)
    if value is None:
        return None
    if len(value) != 10:
        return False
    arpc, arc = value[:8], value[8:]
    if arc != response_code.encode("ascii", "replace"):
        return False
    try:
        expected = generate_arpc(request.session_key, request.arqc, arc)
    except SecurityError:
        return False
    return hmac.compare_digest(expected, arpc)
