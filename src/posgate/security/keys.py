"""Key hierarchy primitives: random 3DES keys, key check values, keys encrypted under a key-encrypting key.

Every 3DES operation goes through psec (`psec.des`); this module only checks lengths so that a wrong key
gives a `SecurityError` naming the key's role, never its value.
"""

from __future__ import annotations

import os

from psec import des

from posgate.errors import SecurityError

DES_KEY_LENGTHS = (8, 16, 24)
TDES_KEY_LENGTHS = (16, 24)


def check_key(key: bytes, role: str, lengths: tuple[int, ...] = TDES_KEY_LENGTHS) -> None:
    """Raise `SecurityError` unless `key` is bytes of one of `lengths`; the message names `role`, not the key.

    >>> check_key(bytes(8), "PIK")
    Traceback (most recent call last):
    ...
    posgate.errors.SecurityError: PIK must be 16 or 24 bytes, got 8
    """
    if not isinstance(key, bytes | bytearray):
        raise SecurityError(f"{role} must be bytes, not {type(key).__name__}")
    if len(key) not in lengths:
        allowed = " or ".join(str(n) for n in lengths)
        raise SecurityError(f"{role} must be {allowed} bytes, got {len(key)}")


def generate_key(length: int = 16) -> bytes:
    """A fresh random DES/3DES key with odd parity (default double length, halves always distinct).

    >>> key = generate_key()
    >>> len(key), key[:8] != key[8:], all(bin(b).count("1") % 2 for b in key)
    (16, True, True)
    """
    if length not in DES_KEY_LENGTHS:
        raise SecurityError(f"key length must be 8, 16 or 24 bytes, got {length}")
    while True:
        key = des.adjust_key_parity(os.urandom(length))
        parts = {key[i : i + 8] for i in range(0, length, 8)}
        if len(parts) == length // 8:
            return key


def kcv_bytes(key: bytes) -> bytes:
    """The raw 4-byte key check value: the first 4 bytes of 3DES(key, 8 zero bytes)."""
    check_key(key, "key", DES_KEY_LENGTHS)
    return des.generate_kcv(bytes(key), 4)


def kcv(key: bytes) -> str:
    """The key check value as 8 uppercase hex characters.

    >>> kcv(bytes.fromhex("404142434445464748494A4B4C4D4E4F"))
    '8BAF473F'
    """
    return kcv_bytes(key).hex().upper()


def encrypt_under(kek: bytes, key: bytes) -> bytes:
    """`key` encrypted 3DES-ECB under the key-encrypting key `kek` (e.g. a working key under the TMK).

    >>> tmk = bytes.fromhex("44" * 16)
    >>> pik = bytes.fromhex("4567C298FB0B045DAB54BF499E10EFCD")
    >>> encrypt_under(tmk, pik).hex().upper()
    '84C5491C3834928E7B26B5409A942BCF'
    """
    check_key(kek, "key-encrypting key")
    check_key(key, "key", DES_KEY_LENGTHS)
    return des.encrypt_tdes_ecb(bytes(kek), bytes(key))


def decrypt_under(kek: bytes, cryptogram: bytes) -> bytes:
    """The clear key from its 3DES-ECB `cryptogram` under `kek`.

    >>> tmk = bytes.fromhex("44" * 16)
    >>> decrypt_under(tmk, bytes.fromhex("84C5491C3834928E7B26B5409A942BCF")).hex().upper()
    '4567C298FB0B045DAB54BF499E10EFCD'
    """
    check_key(kek, "key-encrypting key")
    check_key(cryptogram, "key cryptogram", DES_KEY_LENGTHS)
    return des.decrypt_tdes_ecb(bytes(kek), bytes(cryptogram))
