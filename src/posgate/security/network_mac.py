"""The network dialect's MAC (towards issuers): ISO 9797-1 MAC algorithm 3 (retail MAC, ANSI X9.19) with
padding method 1 (zeros), under the issuer's zone MAC key (ZAK), on cipher contexts cached per key
(`security.ciphers`).

The wire carries it as 16 hex characters in the message's last field, 64 or 128 (where, and over which
bytes, is the codec's business: `iso8583.codec.encode_network_with_mac`, `split_network_mac`); these
functions work on the 8 raw bytes.
"""

from __future__ import annotations

import hmac

from posgate.security.ciphers import retail_mac
from posgate.security.keys import check_key

MAC_LENGTH = 8


def network_mac(zak: bytes, data: bytes) -> bytes:
    """The 8-byte retail MAC of `data` under the double-length `zak` (left half K1, right half K2).

    The ISO/IEC 9797-1 example (key K ‖ K', "Now is the time for all "):

    >>> zak = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> network_mac(zak, b"Now is the time for all ").hex().upper()
    'A1C72E74EA3FA9B6'
    """
    check_key(zak, "ZAK", (16,))
    zak = bytes(zak)
    return retail_mac(zak[:8], zak[8:], data)


def verify_network_mac(zak: bytes, data: bytes, mac: bytes) -> bool:
    """True when `mac` is the retail MAC of `data` under `zak`; compared in constant time."""
    return hmac.compare_digest(network_mac(zak, data), bytes(mac))
