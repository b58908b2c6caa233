"""PIN blocks and PIN verification: ISO 9564 format 0 under 3DES, PIK→ZPK translation, IBM 3624 offsets.

The host never holds a clear PIN: `translate_pin_block` re-encrypts a terminal's block from its PIK to the
issuer's ZPK, and the clear block exists only inside that call. The issuer stores no PIN, only its IBM 3624
offset (demo-fixture.md: conversion table `0123456789012345`, validation data = the PAN's 16 rightmost
digits, pad `F`), and `verify_pin_block` recomputes it. The 3DES steps run on cipher contexts cached per key
(`security.ciphers`).

A malformed block (wrong control nibble, PIN length, filler, non-digits — usually a wrong key or PAN) raises
`PinBlockFormatError`, a `SecurityError` with the fixed message "PIN block format error" and no other detail,
so callers can answer it differently from a wrong PIN (`verify_pin_block` returning False).
"""

from __future__ import annotations

import hmac

from psec import pinblock

from posgate.errors import SecurityError
from posgate.security.ciphers import tdes_ecb_decrypt, tdes_ecb_encrypt
from posgate.security.keys import DES_KEY_LENGTHS, check_key

IBM3624_CONVERSION_TABLE = "0123456789012345"
IBM3624_PAN_PAD = "F"
_DECIMALIZE = str.maketrans("0123456789ABCDEF", IBM3624_CONVERSION_TABLE)
PIN_MIN_DIGITS = 4
PIN_MAX_DIGITS = 12


class PinBlockFormatError(SecurityError):
    """A decrypted PIN block is not a well-formed ISO 9564 format 0 block for the PAN."""

    def __init__(self) -> None:
        super().__init__("PIN block format error")


def _check_pin(pin: str) -> None:
    if not (pin.isascii() and pin.isdigit() and PIN_MIN_DIGITS <= len(pin) <= PIN_MAX_DIGITS):
        raise SecurityError("PIN must be 4 to 12 digits")


def _check_pan(pan: str) -> None:
    if not (pan.isascii() and pan.isdigit() and 13 <= len(pan) <= 19):
        raise SecurityError("PAN must be 13 to 19 digits")


def _check_block(block: bytes) -> None:
    if not isinstance(block, bytes | bytearray) or len(block) != 8:
        raise SecurityError("PIN block must be 8 bytes")


def _decode(clear_block: bytes, pan: str) -> str | None:
    """The PIN in a clear format-0 block, or None if malformed (psec's message would contain PIN digits)."""
    try:
        return pinblock.decode_pinblock_iso_0(clear_block, pan)
    except ValueError:
        return None


def encode_pin_block(pin: str, pan: str, pik: bytes) -> bytes:
    """Field 52: ISO 9564 format 0 block of `pin` (12 PAN digits left of the check digit), 3DES under `pik`.

    >>> pik = bytes.fromhex("4567C298FB0B045DAB54BF499E10EFCD")
    >>> encode_pin_block("123456", "9001100000000027", pik).hex().upper()
    '3D87C8B8FA17C67C'
    """
    _check_pin(pin)
    _check_pan(pan)
    check_key(pik, "PIK")
    return tdes_ecb_encrypt(pik, pinblock.encode_pinblock_iso_0(pin, pan))


def translate_pin_block(block: bytes, pan: str, from_key: bytes, to_key: bytes) -> bytes:
    """Re-encrypt a format 0 block from `from_key` (the terminal's PIK) to `to_key` (the issuer's ZPK).

    Raises `PinBlockFormatError` when the decrypted block is not a valid format 0 block for `pan`.

    >>> pik = bytes.fromhex("4567C298FB0B045DAB54BF499E10EFCD")
    >>> zpk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> pan = "9001100000000027"
    >>> block = encode_pin_block("123456", pan, pik)
    >>> translate_pin_block(block, pan, pik, zpk) == encode_pin_block("123456", pan, zpk)
    True
    """
    _check_block(block)
    _check_pan(pan)
    check_key(from_key, "source PIN key")
    check_key(to_key, "destination PIN key")
    clear_block = tdes_ecb_decrypt(from_key, block)
    if _decode(clear_block, pan) is None:
        raise PinBlockFormatError()  # raised outside the `except`, so no psec message rides along as context
    return tdes_ecb_encrypt(to_key, clear_block)


def pin_offset(pvk: bytes, pin: str, pan: str) -> str:
    """The IBM 3624 PIN offset of `pin` (one offset digit per PIN digit), as the demo issuer stores it.

    Validation data = the PAN's 16 rightmost digits (a shorter PAN is right-padded with `F`).

    >>> pin_offset(bytes.fromhex("0123456789ABCDEF0123456789ABCDEF"), "123456", "6229990000000012")
    '361691'
    """
    _check_pin(pin)
    _check_pan(pan)
    check_key(pvk, "PVK", DES_KEY_LENGTHS)
    # the natural PIN: the validation data encrypted under the PVK, decimalized; the offset is PIN − natural
    # PIN digit by digit, mod 10 (psec's generate_ibm3624_offset, on the cached cipher context)
    validation = pan[-16:].ljust(16, IBM3624_PAN_PAD)
    natural = tdes_ecb_encrypt(pvk, bytes.fromhex(validation)).hex().upper().translate(_DECIMALIZE)
    return "".join(str((int(digit) - int(natural[i])) % 10) for i, digit in enumerate(pin))


def verify_pin_block(block: bytes, pan: str, zpk: bytes, pvk: bytes, offset: str) -> bool:
    """True when the PIN in `block` (format 0 under `zpk`) matches the stored IBM 3624 `offset`.

    A wrong PIN returns False (answer `55`); a block that does not decrypt to a valid format 0 block for
    `pan` raises `PinBlockFormatError` (a wrong key or PAN upstream, not the cardholder's mistake).
    The offsets are compared in constant time.

    >>> zpk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> pvk = bytes.fromhex("0123456789ABCDEF0123456789ABCDEF")
    >>> block = encode_pin_block("123456", "6229990000000012", zpk)
    >>> verify_pin_block(block, "6229990000000012", zpk, pvk, "361691")
    True
    """
    _check_block(block)
    _check_pan(pan)
    check_key(zpk, "ZPK")
    check_key(pvk, "PVK", DES_KEY_LENGTHS)
    pin = _decode(tdes_ecb_decrypt(zpk, block), pan)
    if pin is None:
        raise PinBlockFormatError()
    return hmac.compare_digest(pin_offset(pvk, pin, pan).encode(), offset.encode())
