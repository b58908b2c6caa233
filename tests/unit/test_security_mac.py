"""The POS "CUP ECB" MAC and the network retail MAC."""

from __future__ import annotations

import pytest

from posgate.errors import SecurityError
from posgate.security import cup_ecb_mac, network_mac, verify_cup_ecb_mac, verify_network_mac

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
