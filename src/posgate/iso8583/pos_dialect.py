"""The POS dialect (terminal ⇄ acquirer host) as data: the field layout, content classes, message types and
field 39 texts of `shared/spec/pos-8583.md`.

`POS_SPEC` is a pyiso8583 spec dict (see `iso8583.specs` for the format): MTI as 2 BCD bytes, binary bitmaps
(a secondary bitmap is possible, the dialect defines no field above 64), BCD numerics counted in digits
("nibbles"). Odd digit counts are padded with a `0` nibble: on the right for variable fields and field 22
(`0210` = `021`), on the left for field 23 (`0001` = `001`); pyiso8583 adds and strips that pad itself.
Track 2/3 carry the separator `=` as the nibble `D`, so in Python they read e.g. `6229990000000012D30121…`.

An acquirer with a variant changes these tables, not the codec.
"""

from __future__ import annotations

from typing import Any


def _bcd_fixed(digits: int, desc: str, **pad: str) -> dict[str, Any]:
    return {
        "data_enc": "b",
        "len_enc": "bcd",
        "len_type": 0,
        "len_count": "nibbles",
        "max_len": digits,
        "desc": desc,
        **pad,
    }


def _bcd_var(len_bytes: int, max_digits: int, desc: str) -> dict[str, Any]:
    return {
        "data_enc": "b",
        "len_enc": "bcd",
        "len_type": len_bytes,
        "len_count": "nibbles",
        "right_pad": "0",
        "max_len": max_digits,
        "desc": desc,
    }


def _ascii_fixed(chars: int, desc: str) -> dict[str, Any]:
    return {"data_enc": "ascii", "len_enc": "bcd", "len_type": 0, "max_len": chars, "desc": desc}


def _ascii_var(len_bytes: int, max_bytes: int, desc: str) -> dict[str, Any]:
    return {"data_enc": "ascii", "len_enc": "bcd", "len_type": len_bytes, "max_len": max_bytes, "desc": desc}


def _binary_fixed(nbytes: int, desc: str) -> dict[str, Any]:
    return {"data_enc": "b", "len_enc": "bcd", "len_type": 0, "max_len": nbytes, "desc": desc}


def _binary_var(len_bytes: int, max_bytes: int, desc: str) -> dict[str, Any]:
    return {"data_enc": "b", "len_enc": "bcd", "len_type": len_bytes, "max_len": max_bytes, "desc": desc}


POS_SPEC: dict[str, dict[str, Any]] = {
    "h": {"data_enc": "b", "len_enc": "b", "len_type": 0, "max_len": 0, "desc": "No header (see framing)"},
    "t": {"data_enc": "b", "len_enc": "b", "len_type": 0, "max_len": 2, "desc": "Message Type (BCD)"},
    "p": {"data_enc": "b", "len_enc": "b", "len_type": 0, "max_len": 8, "desc": "Bitmap, Primary"},
    "1": {"data_enc": "b", "len_enc": "b", "len_type": 0, "max_len": 8, "desc": "Bitmap, Secondary"},
    "2": _bcd_var(1, 19, "Primary Account Number (PAN)"),
    "3": _bcd_fixed(6, "Processing Code"),
    "4": _bcd_fixed(12, "Amount, Transaction (fen)"),
    "11": _bcd_fixed(6, "System Trace Audit Number (STAN)"),
    "12": _bcd_fixed(6, "Time, Local Transaction (hhmmss)"),
    "13": _bcd_fixed(4, "Date, Local Transaction (MMDD)"),
    "14": _bcd_fixed(4, "Date, Expiration (YYMM)"),
    "15": _bcd_fixed(4, "Date, Settlement (MMDD)"),
    "22": _bcd_fixed(3, "POS Entry Mode", right_pad="0"),
    "23": _bcd_fixed(3, "Card Sequence Number", left_pad="0"),
    "25": _bcd_fixed(2, "POS Condition Code"),
    "26": _bcd_fixed(2, "PIN Capture Code"),
    "32": _bcd_var(1, 11, "Acquiring Institution ID Code"),
    "35": _bcd_var(1, 37, "Track 2 Data"),
    "36": _bcd_var(2, 104, "Track 3 Data"),
    "37": _ascii_fixed(12, "Retrieval Reference Number"),
    "38": _ascii_fixed(6, "Authorization ID Response"),
    "39": _ascii_fixed(2, "Response Code"),
    "41": _ascii_fixed(8, "Card Acceptor Terminal ID"),
    "42": _ascii_fixed(15, "Card Acceptor ID Code"),
    "44": _ascii_var(1, 25, "Additional Response Data"),
    "48": _bcd_var(2, 322, "Additional Data (settlement totals, batch upload)"),
    "49": _ascii_fixed(3, "Currency Code, Transaction"),
    "52": _binary_fixed(8, "PIN Block"),
    "53": _bcd_fixed(16, "Security Related Control Information"),
    "54": _ascii_var(2, 20, "Balance"),
    "55": _binary_var(2, 255, "ICC Data (EMV BER-TLV)"),
    "59": _ascii_var(2, 999, "Terminal Location"),
    "60": _bcd_var(2, 999, "Reserved Private: type, batch, network management code, ..."),
    "61": _bcd_var(2, 29, "Original Data: batch, STAN, date"),
    "62": _binary_var(2, 512, "Reserved Private: sign-in keys"),
    "63": _ascii_var(2, 163, "Reserved Private: operator / card organization"),
    "64": _binary_fixed(8, "MAC"),
}

# Content class of each field (ISO 8583 notation): "n" digits, "z" track data (digits and the `D` nibble),
# "an"/"ans" text, "b" binary (uppercase hex in a Message). The codec checks values against it.
POS_FIELD_TYPES: dict[str, str] = {
    "2": "n",
    "3": "n",
    "4": "n",
    "11": "n",
    "12": "n",
    "13": "n",
    "14": "n",
    "15": "n",
    "22": "n",
    "23": "n",
    "25": "n",
    "26": "n",
    "32": "n",
    "35": "z",
    "36": "z",
    "37": "an",
    "38": "an",
    "39": "an",
    "41": "ans",
    "42": "ans",
    "44": "ans",
    "48": "n",
    "49": "an",
    "52": "b",
    "53": "n",
    "54": "an",
    "55": "b",
    "59": "ans",
    "60": "n",
    "61": "n",
    "62": "b",
    "63": "ans",
    "64": "b",
}

# Every message type of the dialect: request MTI -> response MTI (pos-8583.md, "Messages").
POS_MTIS: dict[str, str] = {
    "0100": "0110",  # pre-authorization, pre-authorization void
    "0200": "0210",  # balance, sale, void, completion, completion void
    "0220": "0230",  # refund
    "0320": "0330",  # batch upload
    "0400": "0410",  # reversal
    "0500": "0510",  # settlement
    "0800": "0810",  # sign-in
    "0820": "0830",  # sign-out, echo
}

# Field 39 codes of pos-8583.md "Response codes", with their text.
POS_RESPONSE_TEXT: dict[str, str] = {
    "00": "approved",
    "01": "refer to issuer",
    "03": "invalid merchant",
    "04": "pick up",
    "05": "do not honour",
    "12": "invalid transaction",
    "13": "invalid amount",
    "14": "invalid card number",
    "15": "no such issuer",
    "25": "original not found",
    "30": "format error",
    "34": "suspected fraud",
    "40": "function not supported",
    "41": "lost card",
    "43": "stolen card",
    "51": "insufficient funds",
    "54": "expired card",
    "55": "wrong PIN",
    "57": "not permitted to cardholder",
    "58": "not permitted to terminal",
    "59": "suspected fraud (risk)",
    "61": "over amount limit",
    "64": "amount differs from original",
    "65": "over frequency limit",
    "75": "PIN tries exceeded",
    "91": "issuer unavailable",
    "94": "duplicate",
    "96": "system error",
    "97": "terminal not signed in / unknown",
    "98": "issuer timeout",
    "A0": "MAC error",
}
