"""The POS dialect's MACs (field 64): the legacy "CUP ECB" MAC that UnionPay-style terminals compute, and the
ANSI X9.19 MAC (ISO 9797-1 MAC algorithm 3). Which one a terminal uses is a property of the terminal, set at
provisioning (`MacAlgorithm`).

Both cover the bytes from the MTI up to field 64 (exclusive), zero-padded to a multiple of 8.

- **CUP ECB**: XOR all 8-byte blocks, write the result as 16 uppercase hex characters, encrypt the first 8
  characters (ASCII) with the MAK, XOR with the last 8, encrypt again; the MAC is the first 8 uppercase hex
  characters of that block, as 8 ASCII bytes. Its first step is linear: a change in one block cancelled by
  the same change at the same offset in another block keeps the MAC (docs/security.md).
- **X9.19**: DES-CBC over the blocks with the MAK's left half, then decrypt with the right half and encrypt
  with the left (the "retail MAC"); field 64 = the 8 MAC bytes (padding method 1), as for the network
  dialect's MAC (`network_mac`).

3DES and DES run on cipher contexts cached per key (`security.ciphers`; the same bytes as psec).
"""

from __future__ import annotations

import hmac
from enum import StrEnum

from posgate.errors import SecurityError
from posgate.security.ciphers import retail_mac, tdes_ecb_encrypt
from posgate.security.keys import DES_KEY_LENGTHS, check_key

MAC_LENGTH = 8


class MacAlgorithm(StrEnum):
    """A terminal's MAC algorithm, as stored (`terminals.mac_algorithm`) and written in simulator profiles."""

    CUP_ECB = "cup_ecb"
    X919 = "x919"

    @classmethod
    def parse(cls, value: str) -> MacAlgorithm:
        """The algorithm named `value`; `SecurityError` naming the accepted names otherwise.

        >>> MacAlgorithm.parse("x919")
        <MacAlgorithm.X919: 'x919'>
        >>> MacAlgorithm.parse("md5")
        Traceback (most recent call last):
        ...
        posgate.errors.SecurityError: MAC algorithm must be cup_ecb or x919, got 'md5'
        """
        try:
            return cls(value)
        except ValueError:
            names = " or ".join(m.value for m in cls)
            raise SecurityError(f"MAC algorithm must be {names}, got {str(value)[:20]!r}") from None


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
    step = tdes_ecb_encrypt(mak, text[:8])
    result = tdes_ecb_encrypt(mak, _xor(step, text[8:]))
    return result.hex().upper()[:8].encode("ascii")


def verify_cup_ecb_mac(mak: bytes, data: bytes, mac: bytes) -> bool:
    """True when `mac` (field 64) is the CUP ECB MAC of `data`; compared in constant time."""
    return hmac.compare_digest(cup_ecb_mac(mak, data), bytes(mac))


def x919_mac(mak: bytes, data: bytes) -> bytes:
    """The 8 raw bytes of field 64 for `data` under a double-length `mak` (left half K1, right half K2).

    The ISO/IEC 9797-1 example (key K ‖ K', "Now is the time for all "):

    >>> x919_mac(bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"), b"Now is the time for all ").hex().upper()
    'A1C72E74EA3FA9B6'
    """
    check_key(mak, "MAK", (16,))
    mak = bytes(mak)
    return retail_mac(mak[:8], mak[8:], data)


def pos_mac(algorithm: MacAlgorithm, mak: bytes, data: bytes) -> bytes:
    """Field 64 for `data` with the terminal's `algorithm`."""
    if algorithm is MacAlgorithm.X919:
        return x919_mac(mak, data)
    return cup_ecb_mac(mak, data)


def verify_pos_mac(algorithm: MacAlgorithm, mak: bytes, data: bytes, mac: bytes) -> bool:
    """True when `mac` is field 64 of `data` under `mak` with `algorithm`; compared in constant time."""
    return hmac.compare_digest(pos_mac(algorithm, mak, data), bytes(mac))
