"""Card data at rest: the master key file, PAN encryption, PAN look-up hashes and sealed keys.

One 32-byte master key (hex in a 0600 file) yields three independent sub-keys with HKDF-SHA256: PAN
encryption (AES-256-GCM), PAN hashing (HMAC-SHA256, so the same PAN always gives the same hash for look-up)
and key sealing (AES-256-GCM with the key's label as associated data, so a sealed key cannot be moved to
another purpose). Ciphertexts are nonce(12) ‖ ciphertext ‖ tag(16).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import pathlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from posgate.cards.pan import PAN_MAX_DIGITS, PAN_MIN_DIGITS, mask_pan
from posgate.errors import SecurityError
from posgate.files import private_dir

MASTER_KEY_LENGTH = 32
NONCE_LENGTH = 12
_PAN_AAD = b"posgate pan"


def load_or_create_master_key(path: pathlib.Path) -> bytes:
    """The master key stored at `path`; on first call, 32 random bytes written there as hex, mode 0600.

    Creation is atomic (written to a temporary file, then linked into place), so two processes starting
    together end up with the same key. A malformed file raises `SecurityError` naming the path, never the
    content.
    """
    path = pathlib.Path(path)
    if not path.exists():
        private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, os.urandom(MASTER_KEY_LENGTH).hex().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            with contextlib.suppress(FileExistsError):  # another process won the race: use its key
                os.link(tmp, path)
        finally:
            tmp.unlink()
    try:
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != MASTER_KEY_LENGTH:
        expected = 2 * MASTER_KEY_LENGTH
        raise SecurityError(f"master key file {path} is malformed: expected {expected} hex digits")
    return key


@dataclass(frozen=True)
class ProtectedPan:
    """A PAN as stored: AES-GCM ciphertext, keyed look-up hash, masked form. `repr()` hides the ciphertext."""

    ciphertext: bytes = field(repr=False)
    pan_hash: str
    masked: str


def _derive(master_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master_key)


class CardVault:
    """Encrypts PANs and seals keys under sub-keys of the master key. Holds no state besides those keys."""

    __slots__ = ("_hash_key", "_pan_aead", "_seal_aead")

    def __init__(self, master_key: bytes) -> None:
        if not isinstance(master_key, bytes | bytearray) or len(master_key) != MASTER_KEY_LENGTH:
            raise SecurityError(f"master key must be {MASTER_KEY_LENGTH} bytes")
        master_key = bytes(master_key)
        self._pan_aead = AESGCM(_derive(master_key, b"posgate pan enc"))
        self._hash_key = _derive(master_key, b"posgate pan hash")
        self._seal_aead = AESGCM(_derive(master_key, b"posgate key seal"))

    def __repr__(self) -> str:
        return "CardVault(<keys hidden>)"

    def pan_hash(self, pan: str) -> str:
        """HMAC-SHA256 of the PAN as 64 lowercase hex characters: equal PANs give equal hashes."""
        return hmac.new(self._hash_key, pan.encode("ascii"), hashlib.sha256).hexdigest()

    def protect_pan(self, pan: str) -> ProtectedPan:
        """Encrypt `pan` (fresh random nonce each time) and compute its look-up hash and masked form."""
        if not (pan.isascii() and pan.isdigit() and PAN_MIN_DIGITS <= len(pan) <= PAN_MAX_DIGITS):
            raise SecurityError("PAN must be 13 to 19 digits")
        nonce = os.urandom(NONCE_LENGTH)
        ciphertext = nonce + self._pan_aead.encrypt(nonce, pan.encode("ascii"), _PAN_AAD)
        return ProtectedPan(ciphertext=ciphertext, pan_hash=self.pan_hash(pan), masked=mask_pan(pan))

    def reveal_pan(self, ciphertext: bytes) -> str:
        """The clear PAN from `ProtectedPan.ciphertext`; `SecurityError` if it was tampered with."""
        clear = self._open(self._pan_aead, bytes(ciphertext), _PAN_AAD)
        if clear is None:
            raise SecurityError("protected PAN failed authentication")
        return clear.decode("ascii")

    def seal_key(self, key: bytes, label: str) -> bytes:
        """`key` encrypted for storage, bound to `label` (e.g. "tmk:10000001", "zpk:bank-a")."""
        nonce = os.urandom(NONCE_LENGTH)
        return nonce + self._seal_aead.encrypt(nonce, bytes(key), label.encode("utf-8"))

    def open_key(self, sealed: bytes, label: str) -> bytes:
        """The key sealed under `label`; `SecurityError("sealed key 'label' failed authentication")` if the
        label differs or the bytes were altered."""
        key = self._open(self._seal_aead, bytes(sealed), label.encode("utf-8"))
        if key is None:
            raise SecurityError(f"sealed key '{label}' failed authentication")
        return key

    @staticmethod
    def _open(aead: AESGCM, blob: bytes, aad: bytes) -> bytes | None:
        if len(blob) < NONCE_LENGTH + 16:
            return None
        try:
            return aead.decrypt(blob[:NONCE_LENGTH], blob[NONCE_LENGTH:], aad)
        except InvalidTag:
            return None
