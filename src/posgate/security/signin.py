"""Terminal working keys and the POS sign-in key delivery (0810 field 62).

The host issues fresh random working keys per sign-in: a PIN key (PIK), a MAC key (MAK, issued as K|K so the
"CUP ECB" MAC's 3DES steps equal single DES with K, as terminals compute it) and, for 60.3 = 004, a track data
key (TDK). Field 62 carries each key encrypted under the terminal master key (TMK) followed by its raw 4-byte
check value: PIK(16) KCV(4) MAK(16) KCV(4) [TDK(16) KCV(4)] = 40 or 60 bytes.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from posgate.errors import SecurityError
from posgate.security.keys import check_key, decrypt_under, encrypt_under, generate_key, kcv, kcv_bytes

_KEY_LEN = 16
_KCV_LEN = 4
_ENTRY_LEN = _KEY_LEN + _KCV_LEN


@dataclass(frozen=True)
class WorkingKeys:
    """A terminal's clear working keys. `repr()` shows only their check values."""

    pik: bytes = field(repr=False)
    mak: bytes = field(repr=False)
    tdk: bytes | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        tdk = "None" if self.tdk is None else _check_value(self.tdk)
        return f"WorkingKeys(pik={_check_value(self.pik)}, mak={_check_value(self.mak)}, tdk={tdk})"


def _check_value(key: bytes) -> str:
    """`<kcv XXXXXXXX>` for a repr; never raises (a malformed key shows as `<invalid key>`)."""
    try:
        return f"<kcv {kcv(key)}>"
    except SecurityError:
        return "<invalid key>"


def issue_working_keys(tmk: bytes, with_tdk: bool) -> tuple[WorkingKeys, bytes]:
    """Fresh working keys for a sign-in, and the field 62 that delivers them under `tmk`.

    >>> keys, field62 = issue_working_keys(bytes.fromhex("404142434445464748494A4B4C4D4E4F"), with_tdk=False)
    >>> len(field62), keys.mak[:8] == keys.mak[8:], keys.tdk is None
    (40, True, True)
    """
    check_key(tmk, "TMK")
    half = generate_key(8)
    keys = WorkingKeys(
        pik=generate_key(_KEY_LEN), mak=half + half, tdk=generate_key(_KEY_LEN) if with_tdk else None
    )
    clear = [keys.pik, keys.mak] + ([keys.tdk] if keys.tdk is not None else [])
    field62 = b"".join(encrypt_under(tmk, key) + kcv_bytes(key) for key in clear)
    return keys, field62


def unwrap_working_keys(tmk: bytes, field62: bytes) -> WorkingKeys:
    """The terminal side of sign-in: decrypt field 62 under `tmk` and check every key's check value.

    Raises `SecurityError("field 62: PIK check value mismatch")` (MAK, TDK likewise) when a key does not
    match its KCV — a wrong TMK or a corrupted message.

    >>> tmk = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
    >>> keys, field62 = issue_working_keys(tmk, with_tdk=True)
    >>> unwrap_working_keys(tmk, field62) == keys
    True
    """
    check_key(tmk, "TMK")
    if len(field62) not in (2 * _ENTRY_LEN, 3 * _ENTRY_LEN):
        raise SecurityError(f"field 62: expected 40 or 60 bytes of keys, got {len(field62)}")
    clear: list[bytes] = []
    for i, role in enumerate(("PIK", "MAK", "TDK")[: len(field62) // _ENTRY_LEN]):
        entry = bytes(field62[i * _ENTRY_LEN : (i + 1) * _ENTRY_LEN])
        key = decrypt_under(tmk, entry[:_KEY_LEN])
        if not hmac.compare_digest(kcv_bytes(key), entry[_KEY_LEN:]):
            raise SecurityError(f"field 62: {role} check value mismatch")
        clear.append(key)
    return WorkingKeys(pik=clear[0], mak=clear[1], tdk=clear[2] if len(clear) == 3 else None)
