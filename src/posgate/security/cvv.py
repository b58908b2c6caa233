"""Card verification values (CVV/CVC, the value on track 2 and on the card's back), computed by psec.

The CVK is double length: its halves are the two DES keys A|B of the Visa/Mastercard algorithm.
"""

from __future__ import annotations

import hmac

from psec import cvv as psec_cvv

from posgate.errors import SecurityError
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
    return psec_cvv.generate_cvv(bytes(cvk), pan, expiry_yymm, service_code)


def verify_cvv(cvk: bytes, pan: str, expiry_yymm: str, service_code: str, cvv: str) -> bool:
    """True when `cvv` is the card's CVV; compared in constant time.

    >>> cvk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    >>> [verify_cvv(cvk, "6229990000000012", "3012", "101", cvv) for cvv in ("103", "104")]
    [True, False]
    """
    expected = card_verification_value(cvk, pan, expiry_yymm, service_code)
    return hmac.compare_digest(expected.encode(), cvv.encode("ascii", "replace"))
