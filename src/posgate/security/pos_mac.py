"""The POS dialect's "CUP ECB" MAC (field 64), as UnionPay-style terminals compute it.

Over the bytes from the MTI up to field 64 (exclusive): zero-pad to a multiple of 8, XOR all 8-byte blocks,
write the result as 16 uppercase hex characters, encrypt the first 8 characters (ASCII) with the MAK, XOR with
the last 8, encrypt again; the MAC is the first 8 uppercase hex characters of that block, as 8 ASCII bytes.
This is not ISO 9797-1 algorithm 3 (that one is `network_mac`). 3DES is done by psec.
"""

from __future__ import annotations

import hmac

from psec import des

from posgate.security.keys import DES_KEY_LENGTHS, check_key

MAC_LENGTH = 8


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def cup_ecb_mac(mak: bytes, data: bytes) -> bytes:
    """The 8 ASCII bytes of field 64 for `data` (MTI up to, not including, field 64).

    >>> cup_ecb_mac(bytes.fromhex("0723C80DB5F4CD3D0723C80DB5F4CD3D"), bytes.fromhex("0200"))
    b'3697223B'
    """
    check_key(mak, "MAK", DES_KEY_LENGTHS)
    data = bytes(data)
    padded = data + b"\x00" * (-len(data) % 8)
    folded = 0
    for i in range(0, len(padded), 8):  # XOR of all 8-byte blocks, as big integers
        folded ^= int.from_bytes(padded[i : i + 8], "big")
    text = folded.to_bytes(8, "big").hex().upper().encode("ascii")
    step = des.encrypt_tdes_ecb(bytes(mak), text[:8])
    result = des.encrypt_tdes_ecb(bytes(mak), _xor(step, text[8:]))
    return result.hex().upper()[:8].encode("ascii")


def verify_cup_ecb_mac(mak: bytes, data: bytes, mac: bytes) -> bool:
    """True when `mac` (field 64) is the CUP ECB MAC of `data`; compared in constant time."""
    return hmac.compare_digest(cup_ecb_mac(mak, data), bytes(mac))
