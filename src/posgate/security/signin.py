"""Terminal working keys and the POS sign-in key delivery (0810 field 62).

The host issues fresh random working keys: a PIN key (PIK), a MAC key (MAK) and, for 60.3 = 004, a track
data key (TDK). A terminal with the legacy "CUP ECB" MAC gets its MAK as K|K, so the MAC's 3DES steps equal
single DES with K, as terminals in the field compute it; an X9.19 terminal gets a true double-length MAK
(distinct halves), without which ISO 9797-1 algorithm 3 would collapse to a single-DES CBC-MAC
(docs/security.md). Field 62 carries each key encrypted under the terminal master key (TMK) followed by its
raw 4-byte check value: PIK(16) KCV(4) MAK(16) KCV(4) [TDK(16) KCV(4)] = 40 or 60 bytes.

`KeyGenerations` is what the host accepts from one terminal: the keys in use and the keys issued at its
last sign-in that it has not used yet (docs/security.md, "Sign-in").
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


@dataclass(frozen=True)
class KeyGenerations:
    """The working keys the host accepts from a terminal: `current` (in use: the terminal has MACed a
    message under them) and `pending` (issued at its last sign-in, not used yet). Either may be None."""

    current: WorkingKeys | None = None
    pending: WorkingKeys | None = None


def new_working_keys(with_tdk: bool, distinct_mak_halves: bool = False) -> WorkingKeys:
    """Fresh random working keys: the MAK as K|K unless `distinct_mak_halves` (X9.19 terminals).

    >>> keys = new_working_keys(with_tdk=False)
    >>> keys.mak[:8] == keys.mak[8:], keys.tdk is None
    (True, True)
    >>> keys = new_working_keys(with_tdk=True, distinct_mak_halves=True)
    >>> keys.mak[:8] != keys.mak[8:], keys.tdk is not None
    (True, True)
    """
    if distinct_mak_halves:
        mak = generate_key(_KEY_LEN)
    else:
        half = generate_key(8)
        mak = half + half
    return WorkingKeys(pik=generate_key(_KEY_LEN), mak=mak, tdk=generate_key(_KEY_LEN) if with_tdk else None)


def deliver_working_keys(tmk: bytes, keys: WorkingKeys, with_tdk: bool) -> bytes:
    """Field 62 for `keys` under `tmk`: PIK, MAK and, when `with_tdk` (60.3 = 004), the TDK, each with its
    check value. `SecurityError` if a TDK is asked for and `keys` has none."""
    check_key(tmk, "TMK")
    clear = [keys.pik, keys.mak]
    if with_tdk:
        if keys.tdk is None:
            raise SecurityError("field 62: a TDK was asked for but these working keys have none")
        clear.append(keys.tdk)
    return b"".join(encrypt_under(tmk, key) + kcv_bytes(key) for key in clear)


def issue_working_keys(
    tmk: bytes, with_tdk: bool, distinct_mak_halves: bool = False
) -> tuple[WorkingKeys, bytes]:
    """Fresh working keys for a sign-in, and the field 62 that delivers them under `tmk`.

    >>> keys, field62 = issue_working_keys(bytes.fromhex("404142434445464748494A4B4C4D4E4F"), with_tdk=False)
    >>> len(field62), keys.mak[:8] == keys.mak[8:], keys.tdk is None
    (40, True, True)
    """
    check_key(tmk, "TMK")
    keys = new_working_keys(with_tdk, distinct_mak_halves)
    return keys, deliver_working_keys(tmk, keys, with_tdk)


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
