"""The network dialect (acquirer host ⇄ issuers) as data, per `shared/spec/network-8583.md`.

The layout is pyiso8583's own `default_ascii` (ISO 8583:1987, every field ASCII, bitmaps as 16 hex
characters, binary fields as uppercase hex, no header), copied so that nothing here can alter the library's
dict. It already fits the spec: 52 and 64 are 16 hex characters (8 bytes), 55 is LLLVAR of up to 510 hex
characters (255 bytes), 70 is n3 and 90 is n42 (original MTI 4 + STAN 6 + transmission date-time 10 +
acquirer id 11 + forwarding id 11). The 2-byte length prefix is framing (`framing.build_network_frame`).

The MAC is the message's last field, where ISO 8583:1987 puts it: 64 (16 hex characters) in a message with
only the primary bitmap, 128 in one with a secondary bitmap (field 64 then absent) — `network_mac_field`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import iso8583.specs

NETWORK_SPEC: dict[str, dict[str, Any]] = copy.deepcopy(iso8583.specs.default_ascii)

# Content class of the fields the network dialect carries (see pos_dialect.POS_FIELD_TYPES for the classes);
# other fields of default_ascii are checked for length and encoding only. Track 2 may use `=` or `D`.
NETWORK_FIELD_TYPES: dict[str, str] = {
    "2": "n",
    "3": "n",
    "4": "n",
    "7": "n",
    "11": "n",
    "12": "n",
    "13": "n",
    "14": "n",
    "22": "n",
    "23": "n",
    "25": "n",
    "32": "n",
    "35": "z",
    "37": "an",
    "38": "an",
    "39": "an",
    "41": "ans",
    "42": "ans",
    "49": "an",
    "52": "b",
    "54": "an",
    "55": "b",
    "64": "b",
    "70": "n",
    "90": "n",
    "96": "b",
    "128": "b",
}

#: The fields a network MAC may sit in: 64 (primary bitmap only) or 128 (secondary bitmap).
NETWORK_MAC_FIELDS = ("64", "128")


def network_mac_field(fields: Iterable[str]) -> str:
    """The field that carries the MAC of a message with these fields (the MAC fields themselves aside):
    128 when any of them needs the secondary bitmap, else 64 — the MAC is always the last field.

    >>> network_mac_field(["2", "3", "4", "11", "41"])
    '64'
    >>> network_mac_field(["3", "4", "11", "90", "64"])
    '128'
    """
    above_64 = any(key.isdigit() and int(key) > 64 and key not in NETWORK_MAC_FIELDS for key in fields)
    return "128" if above_64 else "64"


# Every message type of the dialect: request MTI -> response MTI.
NETWORK_MTIS: dict[str, str] = {
    "0100": "0110",  # authorization (pre-authorization family)
    "0200": "0210",  # financial
    "0220": "0230",  # advice
    "0420": "0430",  # reversal
    "0800": "0810",  # sign-on, sign-off, echo
}
