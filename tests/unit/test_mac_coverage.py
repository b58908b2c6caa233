"""MAC coverage is the codec's: the bytes a MAC is computed over when a message is written
(`encode_*_with_mac`) are exactly the bytes `split_*_mac` says a received MAC covers, in both dialects —
and the terminal, the host, the issuer links and the issuer simulator all ask the codec."""

from __future__ import annotations

import pytest

from posgate.errors import DecodeError
from posgate.iso8583.codec import (
    decode_network,
    decode_pos,
    encode_network,
    encode_network_with_mac,
    encode_pos,
    encode_pos_with_mac,
    mac_payload,
    network_mac_payload,
    split_network_mac,
    split_pos_mac,
)

MAC = bytes.fromhex("0102030405060708")

POS_MESSAGES = [
    {"t": "0210", "11": "000001", "39": "00", "41": "10000001"},
    {"t": "0200", "3": "000000", "4": "000000000100", "11": "000002", "22": "021", "41": "10000001"},
]
NETWORK_MESSAGES = [
    {"t": "0210", "11": "000001", "39": "00", "32": "12345678"},
    {"t": "0420", "11": "000002", "32": "12345678", "90": "0200000001" + "0" * 32},  # MAC in 128
]


class Recorder:
    """A MAC function that remembers what it was asked to cover."""

    def __init__(self) -> None:
        self.covered: bytes | None = None

    def __call__(self, data: bytes) -> bytes:
        self.covered = bytes(data)
        return MAC


@pytest.mark.parametrize("msg", POS_MESSAGES)
def test_pos_mac_covers_what_it_was_computed_over(msg: dict[str, str]) -> None:
    mac_fn = Recorder()
    encoded = encode_pos_with_mac(msg, mac_fn)
    assert split_pos_mac(decode_pos(encoded), encoded) == (mac_fn.covered, MAC)
    assert mac_payload(encoded) == mac_fn.covered


def test_pos_mac_coverage_with_a_secondary_bitmap_is_the_same_as_by_offsets() -> None:
    """A terminal may set the secondary bitmap (empty: the POS dialect has no field above 64): field 64 is
    still the last field, and the MAC covers the secondary bitmap too."""
    plain = encode_pos_with_mac(POS_MESSAGES[0], Recorder())
    with_secondary = plain[:2] + bytes([plain[2] | 0x80]) + plain[3:10] + bytes(8) + plain[10:]
    msg = decode_pos(with_secondary)
    covered, mac = split_pos_mac(msg, with_secondary) or (b"", b"")
    assert covered == mac_payload(with_secondary) == with_secondary[:-8]
    assert mac == MAC


def test_a_pos_message_without_field_64_has_no_mac() -> None:
    encoded = encode_pos(POS_MESSAGES[0])
    assert split_pos_mac(decode_pos(encoded), encoded) is None
    with pytest.raises(DecodeError) as raised:  # no payload to MAC-check: an error, never "all the bytes"
        mac_payload(encoded)
    assert str(raised.value) == "field 64: not in the bitmap, the message carries no MAC at byte 2"
    assert (raised.value.field, raised.value.pos) == (64, 2)


@pytest.mark.parametrize(
    ("msg", "field"),
    [
        ({"t": "0210", "11": "000001", "39": "00"}, 64),  # no MAC at all
        ({"t": "0430", "11": "000002", "64": "00" * 8, "90": "0" * 42}, 128),  # 64 that 90 follows
    ],
)
def test_a_network_message_without_a_mac_as_its_last_field_has_no_mac_payload(
    msg: dict[str, str], field: int
) -> None:
    encoded = encode_network(msg)
    assert split_network_mac(decode_network(encoded), encoded) is None
    with pytest.raises(DecodeError) as raised:
        network_mac_payload(encoded)
    bad = "no MAC as the last field of the message (64 without a secondary bitmap, else 128)"
    assert str(raised.value) == f"field {field}: {bad} at byte 4"
    assert (raised.value.field, raised.value.pos) == (field, 4)


@pytest.mark.parametrize("msg", NETWORK_MESSAGES)
def test_network_mac_covers_what_it_was_computed_over(msg: dict[str, str]) -> None:
    mac_fn = Recorder()
    encoded = encode_network_with_mac(msg, mac_fn)
    assert split_network_mac(decode_network(encoded), encoded) == (mac_fn.covered, MAC)
    assert network_mac_payload(encoded) == mac_fn.covered
