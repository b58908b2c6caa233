"""Card data at rest: the master key file, PAN encryption, PAN look-up hashes and sealed keys.

A 32-byte master key (hex in a 0600 file) yields independent sub-keys with HKDF-SHA256: PAN encryption
(AES-256-GCM) and key sealing (AES-256-GCM with the key's label as associated data, so a sealed key cannot
be moved to another purpose); PAN hashing (HMAC-SHA256, so the same PAN always gives the same hash for
look-up) uses the keyring's hash key, derived from the first master key. Master keys are versioned
(`security.keyring`): ciphertexts of version 1 are nonce(12) ‖ ciphertext ‖ tag(16), later versions put
`pgk` ‖ version before that.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import pathlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from posgate.cards.pan import PAN_MAX_DIGITS, PAN_MIN_DIGITS, mask_pan
from posgate.errors import SecurityError
from posgate.files import private_dir
from posgate.security.keyring import HEADER_MAGIC, MASTER_KEY_LENGTH, Keyring, derive_subkey, read_keyring

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


def load_or_create_keyring(path: pathlib.Path) -> Keyring:
    """The master keyring in `path` (a single key — version 1 — or the keyring a rotation wrote); on first
    call, a new single master key (`load_or_create_master_key`)."""
    path = pathlib.Path(path)
    if not path.exists():
        load_or_create_master_key(path)
    return read_keyring(path)


@dataclass(frozen=True)
class ProtectedPan:
    """A PAN as stored: AES-GCM ciphertext, keyed look-up hash, masked form. `repr()` hides the ciphertext."""

    ciphertext: bytes = field(repr=False)
    pan_hash: str
    masked: str


_Use = Literal["pan", "seal"]  # which sub-key: PAN encryption or key sealing


@dataclass(frozen=True)
class _Version:
    pan: AESGCM
    seal: AESGCM

    def cipher(self, use: _Use) -> AESGCM:
        return self.pan if use == "pan" else self.seal


@dataclass(frozen=True)
class _State:
    keyring: Keyring
    versions: dict[int, _Version]
    hash_key: bytes


class CardVault:
    """Encrypts PANs and seals keys under sub-keys of the master key — the current version of the master
    keyring — and opens what any version it holds sealed. Holds no state besides those keys.

    A ciphertext of version 1 is nonce(12) ‖ ciphertext ‖ tag(16), as before versions existed; of a later
    version, `pgk` ‖ version (one byte) ‖ the same. `load` swaps the keyring (another node rotated the
    master key); when a ciphertext names a version this vault does not hold, it asks `refresh` (if set:
    it reads the keyring file again) once before it fails."""

    __slots__ = ("_state", "refresh")

    def __init__(self, master_key: bytes | Keyring) -> None:
        if isinstance(master_key, Keyring):
            keyring = master_key
        elif isinstance(master_key, bytes | bytearray) and len(master_key) == MASTER_KEY_LENGTH:
            keyring = Keyring.single(bytes(master_key))
        else:
            raise SecurityError(f"master key must be {MASTER_KEY_LENGTH} bytes")
        self.refresh: Callable[[], Keyring] | None = None
        self.load(keyring)

    def load(self, keyring: Keyring) -> None:
        """Use `keyring` from now on (one attribute swap: safe while other threads use the vault)."""
        versions = {
            version: _Version(
                AESGCM(derive_subkey(key, b"posgate pan enc")),
                AESGCM(derive_subkey(key, b"posgate key seal")),
            )
            for version, key in keyring.keys.items()
        }
        self._state = _State(keyring, versions, keyring.hash_key)

    @property
    def keyring(self) -> Keyring:
        return self._state.keyring

    @property
    def current_version(self) -> int:
        return self._state.keyring.current

    def __repr__(self) -> str:
        return "CardVault(<keys hidden>)"

    def pan_hash(self, pan: str) -> str:
        """HMAC-SHA256 of the PAN as 64 lowercase hex characters: equal PANs give equal hashes."""
        return hmac.new(self._state.hash_key, pan.encode("ascii"), hashlib.sha256).hexdigest()

    def protect_pan(self, pan: str) -> ProtectedPan:
        """Encrypt `pan` (fresh random nonce each time) and compute its look-up hash and masked form."""
        if not (pan.isascii() and pan.isdigit() and PAN_MIN_DIGITS <= len(pan) <= PAN_MAX_DIGITS):
            raise SecurityError("PAN must be 13 to 19 digits")
        ciphertext = self._seal("pan", pan.encode("ascii"), _PAN_AAD)
        return ProtectedPan(ciphertext=ciphertext, pan_hash=self.pan_hash(pan), masked=mask_pan(pan))

    def reveal_pan(self, ciphertext: bytes) -> str:
        """The clear PAN from `ProtectedPan.ciphertext`; `SecurityError` if it was tampered with."""
        return self.reveal_pan_with_version(ciphertext)[0]

    def reveal_pan_with_version(self, ciphertext: bytes) -> tuple[str, int]:
        """The clear PAN and the master key version it was encrypted under."""
        opened = self._open("pan", bytes(ciphertext), _PAN_AAD)
        if opened is None:
            raise SecurityError("protected PAN failed authentication")
        return opened[0].decode("ascii"), opened[1]

    def seal_key(self, key: bytes, label: str) -> bytes:
        """`key` encrypted for storage, bound to `label` (e.g. "tmk:10000001", "zpk:bank-a")."""
        return self._seal("seal", bytes(key), label.encode("utf-8"))

    def open_key(self, sealed: bytes, label: str) -> bytes:
        """The key sealed under `label`; `SecurityError("sealed key 'label' failed authentication")` if the
        label differs or the bytes were altered."""
        return self.open_key_with_version(sealed, label)[0]

    def open_key_with_version(self, sealed: bytes, label: str) -> tuple[bytes, int]:
        """The key sealed under `label` and the master key version it was sealed under."""
        opened = self._open("seal", bytes(sealed), label.encode("utf-8"))
        if opened is None:
            raise SecurityError(f"sealed key '{label}' failed authentication")
        return opened

    def _seal(self, use: _Use, data: bytes, aad: bytes) -> bytes:
        state = self._state
        version = state.keyring.current
        nonce = os.urandom(NONCE_LENGTH)
        body = nonce + state.versions[version].cipher(use).encrypt(nonce, data, aad)
        return body if version == 1 else HEADER_MAGIC + bytes([version]) + body

    def _open(self, use: _Use, blob: bytes, aad: bytes) -> tuple[bytes, int] | None:
        opened, unknown = self._try_open(self._state, use, blob, aad)
        if opened is None and unknown and self.refresh is not None:
            self.load(self.refresh())  # sealed under a version another process added: read the file again
            opened, _ = self._try_open(self._state, use, blob, aad)
        return opened

    @staticmethod
    def _try_open(state: _State, use: _Use, blob: bytes, aad: bytes) -> tuple[tuple[bytes, int] | None, bool]:
        """(clear, version) or None; and whether the blob names a version this state does not hold."""
        unknown = False
        if blob[: len(HEADER_MAGIC)] == HEADER_MAGIC and len(blob) > len(HEADER_MAGIC):
            version = blob[len(HEADER_MAGIC)]
            keys = state.versions.get(version)
            if keys is not None:
                clear = _decrypt(keys.cipher(use), blob[len(HEADER_MAGIC) + 1 :], aad)
                if clear is not None:
                    return (clear, version), False
            else:
                unknown = version > 1
        legacy = state.versions.get(1)  # no header: version 1 (a version-1 nonce may start like a header)
        if legacy is not None:
            clear = _decrypt(legacy.cipher(use), blob, aad)
            if clear is not None:
                return (clear, 1), False
        return None, unknown


def _decrypt(aead: AESGCM, blob: bytes, aad: bytes) -> bytes | None:
    if len(blob) < NONCE_LENGTH + 16:
        return None
    try:
        return aead.decrypt(blob[:NONCE_LENGTH], blob[NONCE_LENGTH:], aad)
    except InvalidTag:
        return None
