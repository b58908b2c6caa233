"""Keys, check values, sign-in key delivery (field 62), and the one place that silences TripleDES warnings."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from posgate.errors import SecurityError
from posgate.security import (
    WorkingKeys,
    decrypt_under,
    encrypt_under,
    generate_key,
    issue_working_keys,
    kcv,
    kcv_bytes,
    unwrap_working_keys,
)

TMK = bytes.fromhex("404142434445464748494A4B4C4D4E4F")


def _odd_parity(key: bytes) -> bool:
    return all(bin(b).count("1") % 2 == 1 for b in key)


def test_generate_key_is_double_length_with_odd_parity_and_random() -> None:
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(key) == 16
        assert _odd_parity(key)
        assert key[:8] != key[8:]


@pytest.mark.parametrize("length", [8, 24])
def test_generate_key_other_lengths(length: int) -> None:
    key = generate_key(length)
    assert len(key) == length and _odd_parity(key)


def test_generate_key_rejects_bad_length() -> None:
    with pytest.raises(SecurityError, match=r"^key length must be 8, 16 or 24 bytes, got 12$"):
        generate_key(12)


def test_kcv_of_demo_tmk() -> None:
    assert kcv(TMK) == "8BAF473F"
    assert kcv_bytes(TMK) == bytes.fromhex("8BAF473F")


def test_encrypt_decrypt_under_round_trip() -> None:
    key = generate_key()
    cryptogram = encrypt_under(TMK, key)
    assert cryptogram != key
    assert decrypt_under(TMK, cryptogram) == key


def test_wrong_key_length_names_the_role_not_the_key() -> None:
    with pytest.raises(SecurityError) as info:
        encrypt_under(b"\x01" * 8, generate_key())
    assert str(info.value) == "key-encrypting key must be 16 or 24 bytes, got 8"


def test_sign_in_round_trip_without_tdk() -> None:
    keys, field62 = issue_working_keys(TMK, with_tdk=False)
    assert len(field62) == 40
    assert keys.tdk is None
    assert field62[16:20] == kcv_bytes(keys.pik)
    assert field62[36:40] == kcv_bytes(keys.mak)
    assert decrypt_under(TMK, field62[:16]) == keys.pik
    assert unwrap_working_keys(TMK, field62) == keys


def test_sign_in_round_trip_with_tdk() -> None:
    keys, field62 = issue_working_keys(TMK, with_tdk=True)
    assert len(field62) == 60
    assert keys.tdk is not None and len(keys.tdk) == 16
    assert field62[56:60] == kcv_bytes(keys.tdk)
    assert unwrap_working_keys(TMK, field62) == keys


def test_mak_is_issued_as_k_k_and_pik_is_not() -> None:
    for _ in range(5):
        keys, _field62 = issue_working_keys(TMK, with_tdk=True)
        assert len(keys.mak) == 16
        assert keys.mak[:8] == keys.mak[8:]
        assert keys.pik[:8] != keys.pik[8:]
        assert len({keys.pik, keys.mak, keys.tdk}) == 3


def test_every_sign_in_issues_fresh_keys() -> None:
    first, _ = issue_working_keys(TMK, with_tdk=False)
    second, _ = issue_working_keys(TMK, with_tdk=False)
    assert first.pik != second.pik and first.mak != second.mak


@pytest.mark.parametrize(("offset", "role"), [(16, "PIK"), (36, "MAK"), (56, "TDK")])
def test_kcv_mismatch_names_the_key(offset: int, role: str) -> None:
    _keys, field62 = issue_working_keys(TMK, with_tdk=True)
    tampered = bytearray(field62)
    tampered[offset] ^= 0x01
    with pytest.raises(SecurityError) as info:
        unwrap_working_keys(TMK, bytes(tampered))
    assert str(info.value) == f"field 62: {role} check value mismatch"


def test_wrong_tmk_fails_on_the_pik_check_value() -> None:
    _keys, field62 = issue_working_keys(TMK, with_tdk=False)
    with pytest.raises(SecurityError, match=r"^field 62: PIK check value mismatch$"):
        unwrap_working_keys(generate_key(), field62)


@pytest.mark.parametrize("length", [0, 39, 41, 59, 80])
def test_field62_length_is_checked(length: int) -> None:
    with pytest.raises(SecurityError) as info:
        unwrap_working_keys(TMK, bytes(length))
    assert str(info.value) == f"field 62: expected 40 or 60 bytes of keys, got {length}"


def test_working_keys_repr_shows_check_values_only() -> None:
    keys, _field62 = issue_working_keys(TMK, with_tdk=True)
    assert keys.tdk is not None
    text = repr(keys)
    for key in (keys.pik, keys.mak, keys.tdk):
        assert key.hex() not in text.lower()
        assert key.hex()[:8] not in text.lower()
        assert kcv(key) in text
    assert text.startswith("WorkingKeys(pik=<kcv ")
    assert str(keys) == text
    assert repr(WorkingKeys(pik=TMK, mak=TMK)).endswith("tdk=None)")


def test_importing_posgate_security_silences_tripledes_warnings() -> None:
    """Outside pytest (which resets warning filters per test) the filter in security/__init__ is in force."""
    code = textwrap.dedent(
        """
        import warnings
        warnings.simplefilter("error")
        import posgate.security as s
        s.kcv(bytes(16))
        s.network_mac(bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"), b"x")
        s.icc_master_key(bytes.fromhex("9E15204313F7318ACB79B90BD986AD29"), "6228880000000016", "01")
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_working_keys_repr_never_raises() -> None:
    assert (
        repr(WorkingKeys(pik=b"short", mak=TMK))
        == "WorkingKeys(pik=<invalid key>, mak=<kcv 8BAF473F>, tdk=None)"
    )
