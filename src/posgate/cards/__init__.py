"""Card logic without keys: PAN rules (Luhn, masking, BIN), track 2, and EMV TLV for field 55.

Nothing here touches keys or the database; the soft HSM is `posgate.security`.
"""

from posgate.cards.pan import (
    PAN_MAX_DIGITS,
    PAN_MIN_DIGITS,
    is_luhn_valid,
    luhn_check_digit,
    mask_pan,
    pan_bin,
    validate_pan,
)
from posgate.cards.tlv import decode_tlv, encode_tlv
from posgate.cards.track2 import (
    TRACK2_MAX_CHARS,
    Track2,
    build_demo_track2,
    parse_track2,
    track2_cvv,
    track2_pin_offset,
)

__all__ = [
    "PAN_MAX_DIGITS",
    "PAN_MIN_DIGITS",
    "TRACK2_MAX_CHARS",
    "Track2",
    "build_demo_track2",
    "decode_tlv",
    "encode_tlv",
    "is_luhn_valid",
    "luhn_check_digit",
    "mask_pan",
    "pan_bin",
    "parse_track2",
    "track2_cvv",
    "track2_pin_offset",
    "validate_pan",
]
