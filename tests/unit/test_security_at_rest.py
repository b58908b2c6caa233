"""Card data at rest: master key file, PAN protection and look-up hash, sealed keys."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from posgate.errors import SecurityError
from posgate.security import CardVault, ProtectedPan, load_or_create_master_key

PAN = "6229990000000012"


@pytest.fixture
def vault() -> CardVault:
    return CardVault(os.urandom(32))


def test_master_key_file_is_created_0600_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "nested" / "master.key"
    key = load_or_create_master_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_master_key(path) == key
    assert bytes.fromhex(path.read_text().strip()) == key
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]  # no temporary file left behind


def test_master_key_file_mode_ignores_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        path = tmp_path / "master.key"
        load_or_create_master_key(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("content", ["not hex at all", "abcd", "00" * 31, "00" * 33, ""])
def test_malformed_master_key_file_names_the_path_not_the_content(tmp_path: Path, content: str) -> None:
    path = tmp_path / "master.key"
    path.write_text(content)
    with pytest.raises(SecurityError) as info:
        load_or_create_master_key(path)
    assert str(info.value) == f"master key file {path} is malformed: expected 64 hex digits"


def test_vault_needs_a_32_byte_master_key() -> None:
    with pytest.raises(SecurityError, match=r"^master key must be 32 bytes$"):
        CardVault(bytes(16))


def test_protect_pan_hides_the_digits(vault: CardVault) -> None:
    protected = vault.protect_pan(PAN)
    assert PAN.encode() not in protected.ciphertext
    assert bytes.fromhex(PAN) not in protected.ciphertext  # BCD
    assert len(protected.ciphertext) == 12 + len(PAN) + 16
    assert protected.masked == "622999******0012"


def test_protect_pan_round_trip_and_fresh_nonce(vault: CardVault) -> None:
    first, second = vault.protect_pan(PAN), vault.protect_pan(PAN)
    assert first.ciphertext != second.ciphertext
    assert first.pan_hash == second.pan_hash == vault.pan_hash(PAN)
    assert vault.reveal_pan(first.ciphertext) == PAN
    assert vault.reveal_pan(second.ciphertext) == PAN


def test_pan_hash_is_keyed_and_distinguishes_pans(vault: CardVault) -> None:
    assert vault.pan_hash(PAN) != vault.pan_hash("6229990000000020")
    assert CardVault(os.urandom(32)).pan_hash(PAN) != vault.pan_hash(PAN)
    assert len(vault.pan_hash(PAN)) == 64


def test_same_master_key_same_sub_keys() -> None:
    master = os.urandom(32)
    protected = CardVault(master).protect_pan(PAN)
    other = CardVault(master)
    assert other.reveal_pan(protected.ciphertext) == PAN
    assert other.pan_hash(PAN) == protected.pan_hash


def test_tampered_pan_ciphertext_fails(vault: CardVault) -> None:
    blob = bytearray(vault.protect_pan(PAN).ciphertext)
    blob[-1] ^= 1
    with pytest.raises(SecurityError, match=r"^protected PAN failed authentication$"):
        vault.reveal_pan(bytes(blob))
    with pytest.raises(SecurityError, match=r"^protected PAN failed authentication$"):
        vault.reveal_pan(b"short")


def test_protect_pan_rejects_non_pans(vault: CardVault) -> None:
    with pytest.raises(SecurityError, match=r"^PAN must be 13 to 19 digits$"):
        vault.protect_pan("62299900000000AB")


def test_seal_and_open_key(vault: CardVault) -> None:
    key = os.urandom(16)
    sealed = vault.seal_key(key, "tmk:10000001")
    assert key not in sealed
    assert vault.open_key(sealed, "tmk:10000001") == key
    assert vault.seal_key(key, "tmk:10000001") != sealed


def test_sealed_key_under_another_label_fails(vault: CardVault) -> None:
    sealed = vault.seal_key(os.urandom(16), "zpk:bank-a")
    with pytest.raises(SecurityError) as info:
        vault.open_key(sealed, "zak:bank-a")
    assert str(info.value) == "sealed key 'zak:bank-a' failed authentication"


def test_tampered_sealed_key_fails(vault: CardVault) -> None:
    sealed = bytearray(vault.seal_key(os.urandom(16), "pvk:bank-a"))
    sealed[14] ^= 0x80
    with pytest.raises(SecurityError) as info:
        vault.open_key(bytes(sealed), "pvk:bank-a")
    assert str(info.value) == "sealed key 'pvk:bank-a' failed authentication"


def test_sealed_key_does_not_open_under_another_master_key(vault: CardVault) -> None:
    sealed = vault.seal_key(os.urandom(16), "tmk:10000001")
    with pytest.raises(SecurityError, match=r"^sealed key 'tmk:10000001' failed authentication$"):
        CardVault(os.urandom(32)).open_key(sealed, "tmk:10000001")


def test_reprs_show_no_pan_or_key(vault: CardVault) -> None:
    protected = vault.protect_pan(PAN)
    text = repr(protected)
    assert PAN not in text
    assert protected.ciphertext.hex() not in text
    assert "622999******0012" in text
    assert repr(vault) == "CardVault(<keys hidden>)"
    assert isinstance(protected, ProtectedPan)
