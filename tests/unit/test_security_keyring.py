"""Versioned master keys: the keyring file's two formats, the vault sealing under the newest version and
opening any version it holds, a version it does not hold read on demand, retirement."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from posgate.errors import SecurityError
from posgate.security import CardVault
from posgate.security.at_rest import load_or_create_keyring
from posgate.security.keyring import (
    Keyring,
    derive_subkey,
    format_keyring,
    parse_keyring,
    read_keyring,
    write_keyring,
)

PAN = "6229990000000012"


def test_a_legacy_single_key_file_is_version_1_and_keeps_its_hashes(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = os.urandom(32)
    path.write_text(key.hex() + "\n")
    keyring = load_or_create_keyring(path)
    assert keyring.versions == [1] and keyring.current == 1
    assert CardVault(keyring).pan_hash(PAN) == CardVault(key).pan_hash(PAN)


def test_the_keyring_file_round_trips_and_is_written_0600(tmp_path: Path) -> None:
    keyring = Keyring.single(os.urandom(32)).with_new_version(os.urandom(32))
    path = tmp_path / "master.key"
    write_keyring(path, keyring)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = read_keyring(path)
    assert again.keys == keyring.keys and again.hash_key == keyring.hash_key and again.current == 2
    assert format_keyring(again) == path.read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hash " + "00" * 32 + "\n1 zz", "expected 64 hex digits"),
        ("1 " + "00" * 32, "it needs a 'hash' line and a version"),
        ("hash " + "00" * 32 + "\nfoo " + "00" * 32, "a line is neither 'hash' nor a version"),
        ("hash " + "00" * 32 + "\n1 " + "00" * 31, "expected 64 hex digits"),
    ],
)
def test_a_malformed_keyring_names_the_file_not_the_keys(text: str, message: str) -> None:
    with pytest.raises(SecurityError) as info:
        parse_keyring(text, "/data/master.key")
    assert str(info.value) == f"master key file /data/master.key is malformed: {message}"
    assert "0000000000" not in str(info.value)


def test_the_newest_version_seals_and_every_version_held_opens() -> None:
    one = Keyring.single(os.urandom(32))
    vault = CardVault(one)
    old_pan, old_key = vault.protect_pan(PAN).ciphertext, vault.seal_key(b"k" * 16, "terminal/1/TMK")
    assert len(old_pan) == 12 + len(PAN) + 16  # version 1: the format before versions
    two = one.with_new_version(os.urandom(32))
    vault.load(two)
    new_pan = vault.protect_pan(PAN)
    assert new_pan.ciphertext[:4] == b"pgk\x02"
    assert new_pan.pan_hash == CardVault(one).pan_hash(PAN)  # look-up hashes do not change
    assert vault.reveal_pan_with_version(old_pan) == (PAN, 1)
    assert vault.reveal_pan_with_version(new_pan.ciphertext) == (PAN, 2)
    assert vault.open_key_with_version(old_key, "terminal/1/TMK") == (b"k" * 16, 1)
    retired = CardVault(two.retired())
    assert retired.reveal_pan(new_pan.ciphertext) == PAN
    with pytest.raises(SecurityError, match=r"^protected PAN failed authentication$"):
        retired.reveal_pan(old_pan)
    with pytest.raises(SecurityError, match=r"^sealed key 'terminal/1/TMK' failed authentication$"):
        retired.open_key(old_key, "terminal/1/TMK")


def test_a_version_1_value_that_looks_like_a_header_still_opens() -> None:
    keyring = Keyring.single(os.urandom(32)).with_new_version(os.urandom(32))
    vault = CardVault(keyring)
    # a version-1 random nonce starts with "pgk" and 2 once in 2^32 values: make one that does
    nonce = b"pgk\x02" + os.urandom(8)
    aead = AESGCM(derive_subkey(keyring.keys[1], b"posgate pan enc"))
    forged_like = nonce + aead.encrypt(nonce, PAN.encode(), b"posgate pan")
    assert vault.reveal_pan_with_version(forged_like) == (PAN, 1)


def test_a_version_the_vault_does_not_hold_is_read_from_the_file_on_demand(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    one = load_or_create_keyring(path)
    behind, ahead = CardVault(one), CardVault(one)
    behind.refresh = lambda: read_keyring(path)
    two = one.with_new_version(os.urandom(32))
    write_keyring(path, two)
    ahead.load(two)
    sealed = ahead.protect_pan(PAN).ciphertext
    assert behind.reveal_pan_with_version(sealed) == (PAN, 2)
    assert behind.current_version == 2  # and it seals under version 2 from now on


def test_the_keyring_repr_shows_fingerprints_only() -> None:
    keyring = Keyring.single(os.urandom(32)).with_new_version(os.urandom(32))
    text = repr(keyring)
    assert text == f"Keyring(1:{keyring.fingerprint(1)}, 2:{keyring.fingerprint(2)}; current 2)"
    for key in (*keyring.keys.values(), keyring.hash_key):
        assert key.hex() not in text and key.hex().upper() not in text


def test_versions_stop_at_255() -> None:
    keyring = Keyring({255: os.urandom(32)}, os.urandom(32))
    with pytest.raises(SecurityError, match="no master key version left"):
        keyring.with_new_version(os.urandom(32))
