"""Card verification values (CVV/CVC, the value on track 2 and on the card's back).

The CVK is double length: its halves are the two DES keys A|B of the Visa/Mastercard algorithm: PAN, expiry
and service code, zero-filled to 32 digits; the first 16 encrypted under A, XOR the last 16, encrypted
under A|B (3DES); the CVV is the first three decimal digits of the result, read left to right, and when
there are fewer than three, the hex digits A–F read again left to right as 0–5 (the second decimalization
pass). psec 1.3.0's `generate_cvv` skips that second pass and returns fewer than three digits for about one
card in 8,000 (`6229997000081678` of the bench's range gave `29`), so it is done here, on the cached cipher
contexts; every other card's CVV is psec's (`tests/unit/test_security_cvv_emv.py`).
"""

from __future__ import annotations

import hmac

from posgate.errors import SecurityError
from posgate.security.ciphers import tdes_ecb_encrypt
from posgate.security.keys import check_key


def card_verification_value(cvk: bytes, pan: str, expiry_yymm: str, service_code: str) -> str:
    """The 3-digit CVV of a card.

    >>> cvk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> card_verification_value(cvk, "6229990000000012", "3012", "101")
    '103'
    """
    check_key(cvk, "CVK", (16,))
    if not (pan.isascii() and pan.isdigit() and 13 <= len(pan) <= 19):
        raise SecurityError("CVV: PAN must be 13 to 19 digits")
    if not (expiry_yymm.isascii() and expiry_yymm.isdigit() and len(expiry_yymm) == 4):
        raise SecurityError("CVV: expiry must be 4 digits (YYMM)")
    if not (service_code.isascii() and service_code.isdigit() and len(service_code) == 3):
        raise SecurityError("CVV: service code must be 3 digits")
    cvk = bytes(cvk)
    block = bytes.fromhex((pan + expiry_yymm + service_code).ljust(32, "0"))
    first = tdes_ecb_encrypt(cvk[:8], block[:8])
    mixed = bytes(a ^ b for a, b in zip(first, block[8:], strict=True))
    result = tdes_ecb_encrypt(cvk, mixed).hex().upper()
    digits = [c for c in result if c.isdigit()] + [str(int(c, 16) - 10) for c in result if not c.isdigit()]
    return "".join(digits[:3])


def verify_cvv(cvk: bytes, pan: str, expiry_yymm: str, service_code: str, cvv: str) -> bool:
    """True when `cvv` is the card's CVV; compared in constant time.

    >>> cvk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> [verify_cvv(cvk, "6229990000000012", "3012", "101", cvv) for cvv in ("103", "104")]
    [True, False]
    """
    expected = card_verification_value(cvk, pan, expiry_yymm, service_code)
    return hmac.compare_digest(expected.encode(), cvv.encode("ascii", "replace"))
