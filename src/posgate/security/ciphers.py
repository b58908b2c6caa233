"""Cipher contexts cached per key for the hot paths: the POS and network MACs and the PIN-block
translation.

psec builds a new `Cipher` (algorithm object, backend lookup, the TripleDES deprecation path, an OpenSSL
context and its key schedule) for every operation — a profile of the host under load showed that rebuilding
on every MAC. Here each key gets its contexts once:

- **ECB** encryptor and decryptor contexts (3DES, or single DES for an 8-byte key): ECB keeps no state
  between calls, so a context is reused as is.
- **Retail MAC** (ISO 9797-1 algorithm 3, X9.19): the CBC pass runs on one cached CBC encryptor per left
  key. A CBC context chains each call onto the last ciphertext block of the previous one; XOR-ing the
  message's first block with that block cancels the chaining, so every message starts from a zero IV. The
  output transformation (decrypt under the right key, encrypt under the left) uses the cached ECB contexts.

Contexts are not thread-safe, so the cache is per thread (the event loop's thread and any worker thread
have their own). Each thread keeps at most `MAX_KEYS` keys; past that its cache starts again (terminal
keys change at every sign-in, so stale entries age out this way). The keys are already in this process's
memory; the cache holds no other secret. Results are those of psec, byte for byte
(`tests/unit/test_security_ciphers.py` compares them on random keys and data).
"""

from __future__ import annotations

import threading
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

MAX_KEYS = 4096
_BLOCK = 8
_ZERO_IV = bytes(_BLOCK)


class _KeyContexts:
    """The cached contexts of one key, made when first asked for."""

    __slots__ = ("_cbc", "_decryptor", "_encryptor", "cbc_last", "key")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._encryptor: Any = None
        self._decryptor: Any = None
        self._cbc: Any = None
        self.cbc_last = _ZERO_IV  # the CBC context's chaining block: the last ciphertext block it wrote

    def encryptor(self) -> Any:
        if self._encryptor is None:
            self._encryptor = Cipher(TripleDES(self.key), modes.ECB()).encryptor()
        return self._encryptor

    def decryptor(self) -> Any:
        if self._decryptor is None:
            self._decryptor = Cipher(TripleDES(self.key), modes.ECB()).decryptor()
        return self._decryptor

    def cbc(self) -> Any:
        if self._cbc is None:
            self._cbc = Cipher(TripleDES(self.key), modes.CBC(_ZERO_IV)).encryptor()
        return self._cbc


class _Cache(threading.local):
    def __init__(self) -> None:
        self.by_key: dict[bytes, _KeyContexts] = {}


_cache = _Cache()


def _contexts(key: bytes) -> _KeyContexts:
    by_key = _cache.by_key
    found = by_key.get(key)
    if found is None:
        if len(by_key) >= MAX_KEYS:
            by_key.clear()
        found = by_key[key] = _KeyContexts(bytes(key))
    return found


def _check_blocks(data: bytes) -> None:
    if len(data) % _BLOCK:
        raise ValueError(f"data length {len(data)} is not a multiple of {_BLOCK}")


def tdes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """`data` (whole 8-byte blocks) encrypted in ECB mode under `key` (8, 16 or 24 bytes), as
    `psec.des.encrypt_tdes_ecb`.

    >>> tdes_ecb_encrypt(bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"), bytes(8)).hex().upper()
    '08D7B4FB629D0885'
    """
    _check_blocks(data)
    return bytes(_contexts(bytes(key)).encryptor().update(bytes(data)))


def tdes_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    """`data` (whole 8-byte blocks) decrypted in ECB mode under `key`, as `psec.des.decrypt_tdes_ecb`.

    >>> key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> tdes_ecb_decrypt(key, tdes_ecb_encrypt(key, b"posgate!"))
    b'posgate!'
    """
    _check_blocks(data)
    return bytes(_contexts(bytes(key)).decryptor().update(bytes(data)))


def retail_mac(key1: bytes, key2: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 with padding method 1 (zeros; empty data is one zero block), 8 bytes,
    as `psec.mac.generate_retail_mac(key1, key2, data, padding=1)`.

    >>> key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> retail_mac(key[:8], key[8:], b"Now is the time for all ").hex().upper()
    'A1C72E74EA3FA9B6'
    """
    data = bytes(data)
    if not data or len(data) % _BLOCK:
        data += bytes(-len(data) % _BLOCK or _BLOCK)
    left = _contexts(bytes(key1))
    first = int.from_bytes(data[:_BLOCK], "big") ^ int.from_bytes(left.cbc_last, "big")
    chained = left.cbc().update(first.to_bytes(_BLOCK, "big") + data[_BLOCK:])
    last = chained[-_BLOCK:]
    left.cbc_last = last
    return bytes(left.encryptor().update(_contexts(bytes(key2)).decryptor().update(last)))
