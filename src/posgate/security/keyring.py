"""Versioned master keys: the keyring in `master.key`.

A store starts with one master key, version 1: the file then holds just its 64 hex digits (the format of
every posgate before rotation existed). `posgate keys rotate-master` adds a version and, once nothing is
sealed under the older ones, retires them; from the first rotation on, the file is a keyring:

    # posgate master keyring ...
    hash 9f3c…(64 hex)
    1 0a1b…(64 hex)
    2 77e0…(64 hex)

The highest version seals everything new; the others only open what is still sealed under them. `hash`
is the PAN look-up hash key: HKDF-SHA256 of the version 1 key, written out at the first rotation so that
look-up hashes (and every index on them) stay valid when version 1 is retired. It is not rotated: the
hashes of every stored PAN would have to change at once, while look-ups run.

Pure functions of text and bytes, plus `read_keyring` / `write_keyring` for the file (written atomically,
mode 0600). No error message holds key material.
"""

from __future__ import annotations

import hashlib
import hmac
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from posgate.errors import SecurityError
from posgate.files import write_private

MASTER_KEY_LENGTH = 32
MAX_VERSION = 255  # one byte in the ciphertext header
HEADER_MAGIC = b"pgk"  # a ciphertext sealed under version ≥ 2 starts with MAGIC ‖ version (one byte)
_FILE_COMMENT = (
    "# posgate master keyring: one '<version> <64 hex>' line per master key; the highest version seals,\n"
    "# the others only open what is still sealed under them. 'hash' is the PAN look-up hash key.\n"
    "# Every node must have the same file. Written by `posgate keys rotate-master`; mode 0600.\n"
)


def derive_subkey(master_key: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 (no salt) of `master_key` for one use, 32 bytes."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master_key)


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) != MASTER_KEY_LENGTH:
        raise SecurityError(f"master key must be {MASTER_KEY_LENGTH} bytes")
    return bytes(key)


@dataclass(frozen=True, repr=False)
class Keyring:
    """Master keys by version, and the PAN look-up hash key. `repr` shows versions and fingerprints only."""

    keys: Mapping[int, bytes]
    hash_key: bytes

    def __post_init__(self) -> None:
        if not self.keys:
            raise SecurityError("a master keyring needs at least one key")
        for version, key in self.keys.items():
            if not 1 <= version <= MAX_VERSION:
                raise SecurityError(f"master key version {version} is out of range 1-{MAX_VERSION}")
            _check_key(key)
        _check_key(self.hash_key)

    @classmethod
    def single(cls, master_key: bytes) -> Keyring:
        """The keyring of a store that never rotated: `master_key` is version 1."""
        key = _check_key(master_key)
        return cls({1: key}, derive_subkey(key, b"posgate pan hash"))

    @property
    def current(self) -> int:
        """The version that seals."""
        return max(self.keys)

    @property
    def versions(self) -> list[int]:
        return sorted(self.keys)

    def fingerprint(self, version: int) -> str:
        """8 hex digits that identify a master key version in logs and the audit trail (HMAC-SHA256 of a
        fixed text: it reveals nothing of the key)."""
        digest = hmac.new(self.keys[version], b"posgate master key fingerprint", hashlib.sha256)
        return digest.hexdigest()[:8].upper()

    def with_new_version(self, key: bytes) -> Keyring:
        """This keyring plus `key` as the next version, which seals from now on."""
        version = self.current + 1
        if version > MAX_VERSION:
            raise SecurityError(f"no master key version left (at most {MAX_VERSION})")
        return Keyring({**self.keys, version: _check_key(key)}, self.hash_key)

    def retired(self) -> Keyring:
        """Only the current version (the hash key stays)."""
        return Keyring({self.current: self.keys[self.current]}, self.hash_key)

    def __repr__(self) -> str:
        shown = ", ".join(f"{v}:{self.fingerprint(v)}" for v in self.versions)
        return f"Keyring({shown}; current {self.current})"


def format_keyring(keyring: Keyring) -> str:
    """The file's text: a comment, the hash key, one line per version."""
    lines = [f"hash {keyring.hash_key.hex()}"]
    lines += [f"{version} {keyring.keys[version].hex()}" for version in keyring.versions]
    return _FILE_COMMENT + "\n".join(lines) + "\n"


def parse_keyring(text: str, where: str) -> Keyring:
    """A keyring from the file's text: the legacy single key (64 hex digits) or the keyring format.

    >>> parse_keyring("00" * 32, "x").versions
    [1]
    >>> parse_keyring("nonsense", "x")
    Traceback (most recent call last):
    ...
    posgate.errors.SecurityError: master key file x is malformed: expected 64 hex digits
    """
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    malformed = SecurityError(f"master key file {where} is malformed: expected 64 hex digits")
    if len(lines) == 1 and " " not in lines[0]:
        return Keyring.single(_hex_key(lines[0], malformed))
    keys: dict[int, bytes] = {}
    hash_key: bytes | None = None
    for line in lines:
        name, _, value = line.partition(" ")
        if name == "hash":
            hash_key = _hex_key(value.strip(), malformed)
        elif name.isdigit() and int(name) not in keys:
            keys[int(name)] = _hex_key(value.strip(), malformed)
        else:
            raise SecurityError(
                f"master key file {where} is malformed: a line is neither 'hash' nor a version"
            )
    if hash_key is None or not keys:
        raise SecurityError(f"master key file {where} is malformed: it needs a 'hash' line and a version")
    return Keyring(keys, hash_key)


def _hex_key(text: str, error: SecurityError) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise error from None
    if len(key) != MASTER_KEY_LENGTH:
        raise error
    return key


def read_keyring(path: pathlib.Path) -> Keyring:
    """The keyring in `path` (either format); `SecurityError` naming the path, never the content."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        text = ""
    return parse_keyring(text, str(path))


def write_keyring(path: pathlib.Path, keyring: Keyring) -> None:
    """Replace the file atomically (mode 0600): a reader sees the old keyring or the new, never half."""
    write_private(pathlib.Path(path), format_keyring(keyring).encode("ascii"))
