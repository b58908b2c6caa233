"""The terminal's requests as pyiso8583 dicts (pure): sign-in, sign-out, echo, balance, sale, reversal.

Every builder follows shared/spec/pos-8583.md ("Messages" and "Field layout") and returns a plain dict with
the MTI under "t" and every field as a string (binary fields as uppercase hex); the codec encodes it and the
client adds field 64 (the MAC) when the MTI needs one. Builders take the STAN as a parameter, so the caller
decides when the counter advances. Frame constants (TPDU, header) live here too.

Field 22 per entry mode (third digit 1 = PIN entered, 2 = no PIN):

| entry | 22 | card data |
|---|---|---|
| manual | 011 / 012 | 2 (PAN), 14 (expiry) |
| magstripe | 021 / 022 | 35 (track 2), 14 when known |
| chip | 051 / 052 | 35, 14, 23 (PSN), 55 when given |

With a PIN block: 26 = `12`, 52 = the block, 53 = `2600000000000000`.
"""

from __future__ import annotations

from typing import Literal

from posgate.errors import EncodeError
from posgate.iso8583.private_fields import Field60
from posgate.terminal.cards import CardProfile
from posgate.terminal.state import LastTransaction, TerminalState

Message = dict[str, str]
Entry = Literal["magstripe", "manual", "chip"]
ENTRY_MODES: tuple[str, ...] = ("magstripe", "manual", "chip")

#: Header: app type 60 (magstripe terminal) · version 31 · status 0 + processing requirement 0 · sub-version.
REQUEST_HEADER = bytes.fromhex("603100000000")
TPDU_ID = 0x60
CURRENCY_CNY = "156"
PIN_CAPTURE_CODE = "12"
SECURITY_CONTROL = "2600000000000000"
OPERATOR = "001"
AMOUNT_MAX_FEN = 999_999_999_999

PROCESSING_SALE = "000000"
PROCESSING_BALANCE = "310000"

# 60.1 message type codes and 60.3 network management codes (pos-8583.md "Messages").
TYPE_NETWORK = "00"
TYPE_BALANCE = "01"
TYPE_SALE = "22"
NMC_NONE = "000"
NMC_SIGN_OUT = "002"
NMC_SIGN_IN = "003"
NMC_SIGN_IN_TDK = "004"
NMC_ECHO = "301"

#: Requests that must carry field 64, and those on which it is optional (verified when present).
MAC_REQUIRED_MTIS = frozenset({"0100", "0200", "0220", "0400"})
MAC_OPTIONAL_MTIS = frozenset({"0500", "0320"})
#: Responses the host MACs when field 39 is `00`; the terminal checks them.
MACED_RESPONSE_MTIS = frozenset({"0110", "0210", "0230", "0410", "0510"})

_ENTRY_PREFIX = {"manual": "01", "magstripe": "02", "chip": "05"}


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

    >>> entry_mode("magstripe", True), entry_mode("magstripe", False), entry_mode("manual", False)
    ('021', '022', '012')
    """
    if entry not in _ENTRY_PREFIX:
        raise EncodeError(f"entry mode must be one of {', '.join(ENTRY_MODES)}, got {entry!r}", field=22)
    return _ENTRY_PREFIX[entry] + ("1" if with_pin else "2")


def _field60(type_code: str, batch: str, nmc: str, entry: str | None = None) -> str:
    if entry == "chip":  # 60.4 read capability 5 (chip), 60.5 IC condition 0
        return Field60(type_code, batch, nmc, "5", "0").encode()
    return Field60(type_code, batch, nmc).encode()


def _check_stan(stan: str) -> None:
    if not (len(stan) == 6 and stan.isascii() and stan.isdigit()):
        raise EncodeError(f"STAN must be 6 digits, got {stan!r}", field=11)


def _network(state: TerminalState, stan: str, mti: str, nmc: str) -> Message:
    _check_stan(stan)
    return {
        "t": mti,
        "11": stan,
        "41": state.tid,
        "42": state.mid,
        "60": _field60(TYPE_NETWORK, state.batch, nmc),
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
    if entry == "chip":
        if card.psn:
            msg["23"] = f"{int(card.psn):03d}"
        if icc_data_hex:
            msg["55"] = icc_data_hex.upper()
    if pin_block_hex is not None:
        if len(pin_block_hex) != 16:
            raise EncodeError("PIN block must be 8 bytes (16 hex characters)", field=52)
        msg["26"] = PIN_CAPTURE_CODE
        msg["52"] = pin_block_hex.upper()
        msg["53"] = SECURITY_CONTROL


def _ordered(msg: Message) -> Message:
    """Fields in bitmap order (pyiso8583 does not care; it makes dicts and logs read like the wire)."""
    return {key: msg[key] for key in sorted(msg, key=lambda k: -1 if k == "t" else int(k))}


def balance_request(
    state: TerminalState,
    stan: str,
    card: CardProfile,
    pin_block_hex: str | None,
    entry: str = "magstripe",
    icc_data_hex: str | None = None,
) -> Message:
    """0200 balance inquiry: 3 = 310000, 25 = 00, 60 = `01` + batch + `000`."""
    _check_stan(stan)
    msg: Message = {
        "t": "0200",
        "3": PROCESSING_BALANCE,
        "11": stan,
        "25": "00",
        "41": state.tid,
        "42": state.mid,
        "49": CURRENCY_CNY,
        "60": _field60(TYPE_BALANCE, state.batch, NMC_NONE, entry),
    }
    _card_fields(msg, card, pin_block_hex, entry, icc_data_hex)
    return _ordered(msg)


def sale_request(
    state: TerminalState,
    stan: str,
    card: CardProfile,
    amount_fen: int,
    pin_block_hex: str | None,
    entry: str = "magstripe",
    icc_data_hex: str | None = None,
) -> Message:
    """0200 sale: 3 = 000000, 4 = amount in fen (n12), 25 = 00, 49 = 156, 60 = `22` + batch + `000`.

    >>> from posgate.terminal.cards import manual_card
    >>> state = TerminalState("10000001", "898440153110001", "00" * 16)
    >>> sale_request(state, "000007", manual_card("6229990000000012", "3012"), 1234, None, "manual")
    ... # doctest: +NORMALIZE_WHITESPACE
    {'t': '0200', '2': '6229990000000012', '3': '000000', '4': '000000001234', '11': '000007', '14': '3012',
     '22': '012', '25': '00', '41': '10000001', '42': '898440153110001', '49': '156', '60': '22000001000'}
    """
    _check_stan(stan)
    if (
        isinstance(amount_fen, bool)
        or not isinstance(amount_fen, int)
        or not 0 < amount_fen <= AMOUNT_MAX_FEN
    ):
        raise EncodeError(f"amount must be 1 to {AMOUNT_MAX_FEN} fen, got {amount_fen!r}", field=4)
    msg: Message = {
        "t": "0200",
        "3": PROCESSING_SALE,
        "4": f"{amount_fen:012d}",
        "11": stan,
        "25": "00",
        "41": state.tid,
        "42": state.mid,
        "49": CURRENCY_CNY,
        "60": _field60(TYPE_SALE, state.batch, NMC_NONE, entry),
    }
    _card_fields(msg, card, pin_block_hex, entry, icc_data_hex)
    return _ordered(msg)


def last_transaction(request: Message) -> LastTransaction:
    """The reversal record of a reversible request (a sale): its codes, never its card data."""
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
    )


def reversal_request(state: TerminalState, last: LastTransaction, reason: str = "98") -> Message:
    """0400 reversal of `last`: the original's 3, 4, 11, 22, 25, 41, 42, 49, 60 and 39 = reason
    (`98` no response, `96` terminal failure, `A0` MAC error); no field 61.

    >>> state = TerminalState("10000001", "898440153110001", "00" * 16)
    >>> last = LastTransaction("0200", "000000", "000042", 1234, "021", "00", "22000001000", "000001")
    >>> reversal_request(state, last)  # doctest: +NORMALIZE_WHITESPACE
    {'t': '0400', '3': '000000', '4': '000000001234', '11': '000042', '22': '021', '25': '00', '39': '98',
     '41': '10000001', '42': '898440153110001', '49': '156', '60': '22000001000'}
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
    return _ordered(msg)
