"""The POS MACs ("CUP ECB" and ANSI X9.19) and the network retail MAC."""

from __future__ import annotations

import pytest

from posgate.errors import SecurityError
from posgate.security import (
    MacAlgorithm,
    cup_ecb_mac,
    network_mac,
    pos_mac,
    verify_cup_ecb_mac,
    verify_network_mac,
    verify_pos_mac,
    x919_mac,
)

MAK = bytes.fromhex("0723C80DB5F4CD3D0723C80DB5F4CD3D")
ZAK = bytes.fromhex("89ABCDEF0123456776543210FEDCBA98")


def test_cup_ecb_mac_is_eight_uppercase_hex_ascii() -> None:
    mac = cup_ecb_mac(MAK, b"\x02\x00" + bytes(30))
    assert len(mac) == 8
    assert mac.decode("ascii") == mac.decode("ascii").upper()
    int(mac, 16)


def test_cup_ecb_mac_pads_with_zeros() -> None:
    assert cup_ecb_mac(MAK, b"\x02\x00\x30") == cup_ecb_mac(MAK, b"\x02\x00\x30\x00\x00\x00\x00\x00")


def test_cup_ecb_mac_with_k_k_equals_single_des_with_k() -> None:
    assert cup_ecb_mac(MAK, b"0200 sale") == cup_ecb_mac(MAK[:8], b"0200 sale")


def test_verify_cup_ecb_mac() -> None:
    data = b"\x02\x00\x70\x24" + bytes(20)
    mac = cup_ecb_mac(MAK, data)
    assert verify_cup_ecb_mac(MAK, data, mac)
    assert not verify_cup_ecb_mac(MAK, data + b"\x01", mac)
    assert not verify_cup_ecb_mac(MAK, data, mac.lower())
    assert not verify_cup_ecb_mac(MAK, data, b"")


def test_network_mac_iso9797_example() -> None:
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    assert network_mac(key, b"Now is the time for all ").hex().upper() == "A1C72E74EA3FA9B6"


def test_network_mac_verify_and_padding() -> None:
    mac = network_mac(ZAK, b"0200")
    assert len(mac) == 8
    assert mac == network_mac(ZAK, b"0200\x00\x00\x00\x00")  # padding method 1
    assert verify_network_mac(ZAK, b"0200", mac)
    assert not verify_network_mac(ZAK, b"0210", mac)


def test_network_mac_needs_a_double_length_key() -> None:
    with pytest.raises(SecurityError, match=r"^ZAK must be 16 bytes, got 8$"):
        network_mac(ZAK[:8], b"0200")


# ---- ANSI X9.19 on the POS side (issue 9, finding 1) -------------------------------------------------


def _single_des_cbc_mac(key: bytes, data: bytes) -> bytes:
    """An independent DES-CBC MAC (zero IV, zero padding) on `cryptography`, not psec."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    padded = (data + b"\x00" * (-len(data) % 8)) or bytes(8)  # ISO 9797-1 method 1: a positive multiple
    encryptor = Cipher(TripleDES(key * 3), modes.CBC(bytes(8))).encryptor()
    return (encryptor.update(padded) + encryptor.finalize())[-8:]


def _x919_independent(mak: bytes, data: bytes) -> bytes:
    """ISO 9797-1 algorithm 3 from its definition: CBC under K1, then decrypt K2, encrypt K1."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    k1, k2 = mak[:8], mak[8:]
    h = _single_des_cbc_mac(k1, data)
    d = Cipher(TripleDES(k2 * 3), modes.ECB()).decryptor()
    e = Cipher(TripleDES(k1 * 3), modes.ECB()).encryptor()
    return e.update(d.update(h) + d.finalize()) + e.finalize()


MAK_DISTINCT = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 200])
def test_x919_mac_matches_an_independent_algorithm_3(size: int) -> None:
    data = bytes((i * 37 + 11) % 256 for i in range(size))
    assert x919_mac(MAK_DISTINCT, data) == _x919_independent(MAK_DISTINCT, data)
    assert pos_mac(MacAlgorithm.X919, MAK_DISTINCT, data) == x919_mac(MAK_DISTINCT, data)
    assert pos_mac(MacAlgorithm.CUP_ECB, MAK, data) == cup_ecb_mac(MAK, data)


def test_the_public_cup_ecb_vector_is_not_an_x919_mac() -> None:
    frame = bytes.fromhex(
        "007F600003000060321032007202003020048000C08015000000000000001234000002030099303030303030303139353237"
        "313831383232313738373531353600192600000100060000000000435F01123238343431323334353637383930313233345F"
        "03063136303033365F04063230303832365C0230314233413039324145"
    )
    payload = frame[13:]
    assert payload[-8:] == b"B3A092AE"
    assert cup_ecb_mac(MAK, payload[:-8]) == b"B3A092AE"
    assert x919_mac(MAK, payload[:-8]) != bytes.fromhex("B3A092AE") != b"B3A092AE"
    assert not verify_pos_mac(MacAlgorithm.X919, MAK, payload[:-8], payload[-8:])


def _compensated(data: bytes, at: int, diff: int) -> bytes:
    """`data` with byte `at` and byte `at + 8` both XORed with `diff`: the XOR of the blocks is unchanged."""
    forged = bytearray(data)
    forged[at] ^= diff
    forged[at + 8] ^= diff
    return bytes(forged)


def test_a_change_compensated_at_the_same_offset_keeps_the_cup_ecb_mac_but_not_the_x919_mac() -> None:
    data = bytes.fromhex("0200") + bytes(range(40))
    forged = _compensated(data, 5, 0x50)
    assert forged != data
    assert cup_ecb_mac(MAK, forged) == cup_ecb_mac(MAK, data)  # the weakness (docs/security.md)
    assert x919_mac(MAK_DISTINCT, forged) != x919_mac(MAK_DISTINCT, data)


def test_x919_under_k_k_collapses_to_a_single_des_cbc_mac() -> None:
    """Why an X9.19 terminal gets a MAK with distinct halves (docs/security.md): with K|K the final
    decrypt-encrypt cancels and the MAC is a single-DES CBC-MAC, a 56-bit key."""
    k = MAK[:8]
    data = b"\x02\x00" + bytes(range(30))
    assert x919_mac(k + k, data) == _single_des_cbc_mac(k, data)
    assert x919_mac(MAK_DISTINCT, data) != _single_des_cbc_mac(MAK_DISTINCT[:8], data)


def test_x919_mac_needs_a_double_length_mak_and_algorithms_parse() -> None:
    with pytest.raises(SecurityError, match=r"^MAK must be 16 bytes, got 8$"):
        x919_mac(MAK[:8], b"0200")
    assert MacAlgorithm.parse("cup_ecb") is MacAlgorithm.CUP_ECB
    with pytest.raises(SecurityError, match=r"^MAC algorithm must be cup_ecb or x919, got 'X9.19'$"):
        MacAlgorithm.parse("X9.19")
    mac = x919_mac(MAK_DISTINCT, b"0200")
    assert verify_pos_mac(MacAlgorithm.X919, MAK_DISTINCT, b"0200", mac)
    assert not verify_pos_mac(MacAlgorithm.X919, MAK_DISTINCT, b"0210", mac)
    assert not verify_pos_mac(MacAlgorithm.CUP_ECB, MAK_DISTINCT, b"0200", mac)


def test_cup_ecb_mac_refuses_a_mak_of_the_wrong_length_naming_it() -> None:
    with pytest.raises(SecurityError, match=r"^MAK must be 8 or 16 or 24 bytes, got 5$"):
        cup_ecb_mac(bytes(5), b"0200")


def test_an_unknown_mac_algorithm_is_quoted_shortened_to_20_characters() -> None:
    with pytest.raises(SecurityError) as raised:
        MacAlgorithm.parse("x" * 19 + "yz" + "!" * 500)  # a stored value or a profile cannot flood the log
    assert str(raised.value) == "MAC algorithm must be cup_ecb or x919, got '" + "x" * 19 + "y'"
