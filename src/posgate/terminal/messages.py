"""The terminal's requests as pyiso8583 dicts (pure): sign-in, sign-out, echo, the financial transactions,
reversal, settlement and batch upload.

Every builder follows shared/spec/pos-8583.md ("Messages" and "Field layout") and the terminal–host wire
contract, and returns a plain dict with the MTI under "t" and every field as a string (binary fields as
uppercase hex); the codec encodes it and the client adds field 64 (the MAC) when the MTI needs one (every
financial, settlement and batch upload request). Builders take the STAN as a parameter,
so the caller decides when the counter advances. Frame constants (TPDU, header) live here too.

The financial transactions, one row each of `TXN_TYPES` (read from the transaction set, `posgate.txnset`),
all built by `financial_request` (`sale_request` is its shorthand for a sale):

| kind | MTI | 3 | 25 | 60.1 | original data | PIN | 55 on chip |
|---|---|---|---|---|---|---|---|
| balance | 0200 | 310000 | 00 | 01 | | yes | yes |
| sale | 0200 | 000000 | 00 | 22 | | yes | yes |
| void (of a sale) | 0200 | 200000 | 00 | 23 | 37, 38, 61 = batch + STAN | optional | no |
| refund | 0220 | 200000 | 00 | 25 | 37, 61 = batch + STAN + MMDD | no | no |
| preauth | 0100 | 030000 | 06 | 10 | | yes | yes |
| preauth_void | 0100 | 200000 | 06 | 11 | 37, 38, 61 = batch + STAN (+ MMDD) | optional | no |
| completion | 0200 | 000000 | 06 | 20 | 37, 38, 61 = batch + STAN + MMDD | no | no |
| completion_void | 0200 | 200000 | 06 | 21 | 37, 38, 61 = batch + STAN | optional | no |

Field 60 of each = 60.1 + batch + `000` + 60.4 `6` (the terminal reads magstripe, contact and contactless
chips) + 60.5 IC condition (`0`, or `2` on a fallback).

Field 22 per entry mode (third digit 1 = PIN entered, 2 = no PIN):

| entry | 22 | card data |
|---|---|---|
| manual | 011 / 012 | 2 (PAN), 14 (expiry) |
| magstripe | 021 / 022 | 35 (track 2), 14 when known |
| chip | 051 / 052 | 35, 14, 23 (PSN, n3), 55 (sale, balance, pre-authorization) |
| contactless | 071 / 072 | as chip |
| fallback | 801 / 802 | 35, 14; 60.5 = `2` (the chip could not be read) |

With a PIN block: 26 = `12`, 52 = the block, 53 = `2600000000000000`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from posgate.errors import EncodeError
from posgate.iso8583.private_fields import Field60, Field61
from posgate.terminal.cards import CardProfile
from posgate.terminal.journal import BatchTotals, UploadGroup
from posgate.terminal.state import LastTransaction, TerminalState
from posgate.txnset import ROWS, KindRow

Message = dict[str, str]
Entry = Literal["magstripe", "chip", "contactless", "fallback", "manual"]
ENTRY_MODES: tuple[str, ...] = ("magstripe", "chip", "contactless", "fallback", "manual")
#: Entry modes that read the chip (field 23, and field 55 where the transaction takes a cryptogram).
CHIP_ENTRIES = frozenset({"chip", "contactless"})

#: Header: app type 60 (magstripe terminal) · version 31 · status 0 + processing requirement 0 · sub-version.
REQUEST_HEADER = bytes.fromhex("603100000000")
TPDU_ID = 0x60
CURRENCY_CNY = "156"
PIN_CAPTURE_CODE = "12"
SECURITY_CONTROL = "2600000000000000"
OPERATOR = "001"
AMOUNT_MAX_FEN = 999_999_999_999

# 60.1 of the network messages and 60.3 network management codes (pos-8583.md "Messages"); the financial
# transactions' 60.1 are in `TXN_TYPES`.
TYPE_NETWORK = "00"
NMC_NONE = "000"
NMC_SIGN_OUT = "002"
NMC_SIGN_IN = "003"
NMC_SIGN_IN_TDK = "004"
NMC_SETTLEMENT = "201"
NMC_UPLOAD_MAGSTRIPE = "201"
NMC_UPLOAD_CHIP = "203"
NMC_BATCH_END = "207"
NMC_ECHO = "301"
#: 60.4: the terminal reads magstripe, contact and contactless chips. 60.5: IC condition.
READ_CAPABILITY_CONTACTLESS = "6"
IC_CONDITION_NORMAL = "0"
IC_CONDITION_FALLBACK = "2"

#: Requests that must carry field 64 (pos-8583.md; missing → `A0`).
MAC_REQUIRED_MTIS = frozenset({"0100", "0200", "0220", "0400", "0500", "0320"})
#: Responses the host MACs when field 39 is `00`; the terminal checks them.
MACED_RESPONSE_MTIS = frozenset({"0110", "0210", "0230", "0410", "0510"})

_ENTRY_PREFIX = {"manual": "01", "magstripe": "02", "chip": "05", "contactless": "07", "fallback": "80"}


@dataclass(frozen=True)
class TxnType:
    """One financial transaction of the dialect: a row of the table in the module docstring. `icc_type` is
    field 55's 9C when a chip read sends a cryptogram (None: no field 55); `pin`: whether it may carry a PIN
    block; `original_auth_code` and `original_date` say whether 38 and 61's date refer to an original
    (`original_date` None: the transaction refers to no original)."""

    kind: str
    mti: str
    processing_code: str
    condition_code: str
    type_code: str
    reversible: bool
    icc_type: str | None
    pin: bool
    original_auth_code: bool
    original_date: Literal["no", "optional", "required"] | None


def _txn_type(row: KindRow) -> TxnType:
    rule = row.original
    return TxnType(
        kind=row.kind,
        mti=row.mti,
        processing_code=row.processing_code or "",
        condition_code=row.condition_code or "",
        type_code=row.type_code or "",
        reversible=row.reversible,
        icc_type=row.icc_type,
        pin=row.pin,
        original_auth_code=rule is not None and rule.auth_code != "no",
        original_date=rule.date if rule is not None else None,
    )


#: The financial transactions: the rows of the transaction set (`posgate.txnset`) that carry a card and a
#: 60.1 transaction type, as the terminal builds them.
TXN_TYPES: dict[str, TxnType] = {row.kind: _txn_type(row) for row in ROWS if row.card and row.type_code}


@dataclass(frozen=True)
class Original:
    """The transaction a void, refund or completion refers to: its RRN (37), authorization code (38), and
    batch, STAN and date MMDD (61)."""

    rrn: str
    batch: str
    stan: str
    auth_code: str | None = None
    date: str | None = None

    def field61(self, with_date: bool) -> str:
        """Batch n6 + STAN n6 (+ date n4).

        >>> Original("123456789012", "000001", "000042", "A1B2C3", "1126").field61(True)
        '0000010000421126'
        """
        return Field61(self.batch, self.stan, (self.date or "") if with_date else "").encode()


def request_tpdu(nii: str) -> bytes:
    """The request TPDU: `60`, destination NII (the host, from the terminal's state), source `0000`.

    >>> request_tpdu("0003").hex()
    '6000030000'
    """
    if not (len(nii) == 4 and nii.isascii() and nii.isdigit()):
        raise EncodeError(f"NII must be 4 digits, got {nii!r}", field="tpdu")
    return bytes([TPDU_ID]) + bytes.fromhex(nii) + bytes(2)


def response_mti(mti: str) -> str:
    """The response MTI of a request MTI.

    >>> response_mti("0200"), response_mti("0820")
    ('0210', '0830')
    """
    return f"{int(mti) + 10:04d}"


def entry_mode(entry: str, with_pin: bool) -> str:
    """Field 22 for an entry mode.

    >>> entry_mode("magstripe", True), entry_mode("chip", False), entry_mode("contactless", True)
    ('021', '052', '071')
    >>> entry_mode("fallback", True), entry_mode("manual", False)
    ('801', '012')
    """
    if entry not in _ENTRY_PREFIX:
        raise EncodeError(f"entry mode must be one of {', '.join(ENTRY_MODES)}, got {entry!r}", field=22)
    return _ENTRY_PREFIX[entry] + ("1" if with_pin else "2")


def financial_field60(type_code: str, batch: str, entry: str) -> str:
    """Field 60 of a financial request: 60.1, batch, `000`, read capability `6`, IC condition.

    >>> financial_field60("22", "000001", "magstripe"), financial_field60("22", "000001", "fallback")
    ('2200000100060', '2200000100062')
    """
    ic_condition = IC_CONDITION_FALLBACK if entry == "fallback" else IC_CONDITION_NORMAL
    return Field60(type_code, batch, NMC_NONE, READ_CAPABILITY_CONTACTLESS, ic_condition).encode()


def _check_stan(stan: str) -> None:
    if not (len(stan) == 6 and stan.isascii() and stan.isdigit()):
        raise EncodeError(f"STAN must be 6 digits, got {stan!r}", field=11)


def _check_amount(amount_fen: object) -> None:  # checks the type too: callers pass what they were given
    if (
        isinstance(amount_fen, bool)
        or not isinstance(amount_fen, int)
        or not 0 < amount_fen <= AMOUNT_MAX_FEN
    ):
        raise EncodeError(f"amount must be 1 to {AMOUNT_MAX_FEN} fen, got {amount_fen!r}", field=4)


def _network(state: TerminalState, stan: str, mti: str, nmc: str) -> Message:
    _check_stan(stan)
    return {
        "t": mti,
        "11": stan,
        "41": state.tid,
        "42": state.mid,
        "60": Field60(TYPE_NETWORK, state.batch, nmc).encode(),
    }


def sign_in_request(state: TerminalState, stan: str, with_tdk: bool = False) -> Message:
    """0800 sign-in: 60.3 = 003 (PIK and MAK) or 004 (also the TDK); 63 = operator `001`.

    >>> sign_in_request(TerminalState("10000001", "898440153110001", "00" * 16), "000001")
    {'t': '0800', '11': '000001', '41': '10000001', '42': '898440153110001', '60': '00000001003', '63': '001'}
    """
    msg = _network(state, stan, "0800", NMC_SIGN_IN_TDK if with_tdk else NMC_SIGN_IN)
    msg["63"] = OPERATOR
    return msg


def sign_out_request(state: TerminalState, stan: str) -> Message:
    """0820 sign-out (60.3 = 002)."""
    return _network(state, stan, "0820", NMC_SIGN_OUT)


def echo_request(state: TerminalState, stan: str) -> Message:
    """0820 echo test (60.3 = 301)."""
    return _network(state, stan, "0820", NMC_ECHO)


def _card_fields(
    msg: Message, card: CardProfile, pin_block_hex: str | None, entry: str, icc_data_hex: str | None
) -> None:
    msg["22"] = entry_mode(entry, pin_block_hex is not None)
    if entry == "manual":
        msg["2"] = card.pan
        if not card.expiry:
            raise EncodeError("a key-entered card needs its expiry", field=14)
    elif not card.track2:
        raise EncodeError(f"{entry} entry needs the card's track 2", field=35)
    else:
        msg["35"] = card.track2
    if card.expiry:
        msg["14"] = card.expiry
    if entry in CHIP_ENTRIES:
        if card.psn:
            msg["23"] = f"{int(card.psn):03d}"
        if icc_data_hex:
            msg["55"] = icc_data_hex.upper()
    elif icc_data_hex:
        raise EncodeError(f"field 55: {entry} entry does not read the chip", field=55)
    if pin_block_hex is not None:
        if len(pin_block_hex) != 16:
            raise EncodeError("PIN block must be 8 bytes (16 hex characters)", field=52)
        msg["26"] = PIN_CAPTURE_CODE
        msg["52"] = pin_block_hex.upper()
        msg["53"] = SECURITY_CONTROL


def _ordered(msg: Message) -> Message:
    """Fields in bitmap order (pyiso8583 does not care; it makes dicts and logs read like the wire)."""
    return {key: msg[key] for key in sorted(msg, key=lambda k: -1 if k == "t" else int(k))}


def financial_request(
    kind: str,
    state: TerminalState,
    stan: str,
    card: CardProfile,
    *,
    amount_fen: int | None = None,
    pin_block_hex: str | None = None,
    entry: str = "magstripe",
    icc_data_hex: str | None = None,
    original: Original | None = None,
) -> Message:
    """The request of any kind in `TXN_TYPES`: its row gives the MTI, 3, 25 and 60.1, whether it takes a PIN
    and field 55, and which of 37 / 38 / 61 refer to `original`.

    Raises `EncodeError` naming the field: an unknown kind (`t`), a missing or bad amount (4), a PIN on a
    kind that takes none (52), field 55 on a kind that sends no cryptogram, a missing original (37) or its
    authorization code (38) or date (61).
    """
    txn = TXN_TYPES.get(kind)
    if txn is None:
        raise EncodeError(f"unknown transaction kind {kind!r}", field="t")
    _check_stan(stan)
    msg: Message = {
        "t": txn.mti,
        "3": txn.processing_code,
        "11": stan,
        "25": txn.condition_code,
        "41": state.tid,
        "42": state.mid,
        "49": CURRENCY_CNY,
        "60": financial_field60(txn.type_code, state.batch, entry),
        **_amount_field(txn, amount_fen),
    }
    if pin_block_hex is not None and not txn.pin:
        raise EncodeError(f"a {kind} carries no PIN", field=52)
    if icc_data_hex and txn.icc_type is None:
        raise EncodeError(f"field 55: a {kind} sends no cryptogram", field=55)
    msg.update(_original_fields(txn, original))
    _card_fields(msg, card, pin_block_hex, entry, icc_data_hex)
    if state.location:
        msg["59"] = state.location  # the terminal's reported location (risk: relocated terminals)
    return _ordered(msg)


def _amount_field(txn: TxnType, amount_fen: int | None) -> Message:
    """Field 4: the amount in fen (n12); a balance inquiry carries none."""
    if txn.kind == "balance":
        if amount_fen is not None:
            raise EncodeError("a balance inquiry carries no amount", field=4)
        return {}
    _check_amount(amount_fen)
    return {"4": f"{amount_fen:012d}"}


def _original_fields(txn: TxnType, original: Original | None) -> Message:
    """37, 38 and 61 of a transaction on an original, as its row of `TXN_TYPES` asks."""
    if txn.original_date is None:
        if original is not None:
            raise EncodeError(f"a {txn.kind} refers to no original transaction", field=61)
        return {}
    if original is None:
        raise EncodeError(f"a {txn.kind} needs its original's RRN", field=37)
    fields = {"37": original.rrn}
    if txn.original_auth_code:
        if not original.auth_code:
            raise EncodeError(f"a {txn.kind} needs its original's authorization code", field=38)
        fields["38"] = original.auth_code
    if txn.original_date == "required" and not original.date:
        raise EncodeError(f"a {txn.kind} needs its original's date (MMDD)", field=61)
    fields["61"] = original.field61(with_date=txn.original_date != "no")
    return fields


def sale_request(
    state: TerminalState,
    stan: str,
    card: CardProfile,
    amount_fen: int,
    pin_block_hex: str | None,
    entry: str = "magstripe",
    icc_data_hex: str | None = None,
) -> Message:
    """0200 sale: 3 = 000000, 4 = amount in fen (n12), 25 = 00, 49 = 156, 60.1 = 22. The other kinds have
    no builder of their own: `financial_request(kind, …)`.

    >>> from posgate.terminal.cards import manual_card
    >>> state = TerminalState("10000001", "898440153110001", "00" * 16)
    >>> sale_request(state, "000007", manual_card("6229990000000012", "3012"), 1234, None, "manual")
    ... # doctest: +NORMALIZE_WHITESPACE
    {'t': '0200', '2': '6229990000000012', '3': '000000', '4': '000000001234', '11': '000007', '14': '3012',
     '22': '012', '25': '00', '41': '10000001', '42': '898440153110001', '49': '156', '60': '2200000100060'}
    """
    return financial_request(
        "sale",
        state,
        stan,
        card,
        amount_fen=amount_fen,
        pin_block_hex=pin_block_hex,
        entry=entry,
        icc_data_hex=icc_data_hex,
    )


def last_transaction(request: Message, kind: str = "sale") -> LastTransaction:
    """The reversal record of a reversible request: its codes and references, never its card data."""
    return LastTransaction(
        mti=request["t"],
        processing_code=request["3"],
        stan=request["11"],
        amount_fen=int(request.get("4", "0")),
        entry_mode=request["22"],
        condition_code=request.get("25", "00"),
        field60=request["60"],
        batch=request["60"][2:8],
        currency=request.get("49", CURRENCY_CNY),
        kind=kind,
        original_rrn=request.get("37"),
        original_auth_code=request.get("38"),
        field61=request.get("61"),
    )


def reversal_request(state: TerminalState, last: LastTransaction, reason: str = "98") -> Message:
    """0400 reversal of `last`: the original's 3, 4, 11, 22, 25, 41, 42, 49, 60 (and 37, 38, 61 when the
    original had them) and 39 = reason (`98` no response, `96` terminal failure — also a failed ARPC —,
    `A0` MAC error).

    >>> state = TerminalState("10000001", "898440153110001", "00" * 16)
    >>> last = LastTransaction("0200", "000000", "000042", 1234, "021", "00", "2200000100060", "000001")
    >>> reversal_request(state, last)  # doctest: +NORMALIZE_WHITESPACE
    {'t': '0400', '3': '000000', '4': '000000001234', '11': '000042', '22': '021', '25': '00', '39': '98',
     '41': '10000001', '42': '898440153110001', '49': '156', '60': '2200000100060'}
    """
    if not (len(reason) == 2 and reason.isascii() and reason.isalnum()):
        raise EncodeError(f"reversal reason must be 2 characters, got {reason!r}", field=39)
    _check_stan(last.stan)
    msg: Message = {
        "t": "0400",
        "3": last.processing_code,
        "11": last.stan,
        "22": last.entry_mode,
        "25": last.condition_code,
        "39": reason,
        "41": state.tid,
        "42": state.mid,
        "49": last.currency,
        "60": last.field60,
    }
    if last.amount_fen:
        msg["4"] = f"{last.amount_fen:012d}"
    if last.original_rrn:
        msg["37"] = last.original_rrn
    if last.original_auth_code:
        msg["38"] = last.original_auth_code
    if last.field61:
        msg["61"] = last.field61
    return _ordered(msg)


def settlement_request(state: TerminalState, stan: str, totals: BatchTotals) -> Message:
    """0500 settlement of the open batch: 48 = the totals (62 digits), 49 = 156, 60 = `00` + batch + `201`.

    >>> state = TerminalState("10000001", "898440153110001", "00" * 16)
    >>> settlement_request(state, "000100", BatchTotals(1234, 1, 0, 0))  # doctest: +NORMALIZE_WHITESPACE
    {'t': '0500', '11': '000100', '41': '10000001', '42': '898440153110001',
     '48': '00000000123400100000000000000000000000000000000000000000000000', '49': '156', '60': '00000001201'}
    """
    msg = _network(state, stan, "0500", NMC_SETTLEMENT)
    msg["48"] = totals.field48()
    msg["49"] = CURRENCY_CNY
    return _ordered(msg)


def batch_upload_request(state: TerminalState, stan: str, group: UploadGroup) -> Message:
    """0320 batch upload of up to 8 records: 48 = n2 count + 40-digit records, 60 = `00` + batch + `201`
    (magstripe-read records) or `203` (chip-read records)."""
    if not 1 <= len(group.records) <= 8:
        raise EncodeError(
            f"field 48: a batch upload carries 1 to 8 records, got {len(group.records)}", field=48
        )
    msg = _network(state, stan, "0320", NMC_UPLOAD_CHIP if group.chip else NMC_UPLOAD_MAGSTRIPE)
    msg["48"] = group.field48()
    return _ordered(msg)


def batch_end_request(state: TerminalState, stan: str, records_uploaded: int) -> Message:
    """0320 batch end: 48 = n4 number of records uploaded, 60 = `00` + batch + `207`.

    >>> batch_end_request(TerminalState("10000001", "898440153110001", "00" * 16), "000103", 9)
    ... # doctest: +NORMALIZE_WHITESPACE
    {'t': '0320', '11': '000103', '41': '10000001', '42': '898440153110001', '48': '0009',
     '60': '00000001207'}
    """
    if not 0 <= records_uploaded <= 9999:
        raise EncodeError(f"field 48: {records_uploaded} records do not fit n4", field=48)
    msg = _network(state, stan, "0320", NMC_BATCH_END)
    msg["48"] = f"{records_uploaded:04d}"
    return _ordered(msg)
