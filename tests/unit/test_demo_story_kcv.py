"""The demo's "TMK delivered, KCV checked" line checks the key the terminal will use — the one unwrapped from
the TR-31 block — against the KCV the export announced, so it can fail."""

from __future__ import annotations

from posgate.merchants.keyblock import wrap_tmk
from posgate.security.keys import kcv
from posgate.tools.demo_onboarding import open_delivered_tmk

KTK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
TMK = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
OTHER = bytes.fromhex("11" * 16)


def test_the_kcv_of_the_unwrapped_key_is_what_the_export_announced() -> None:
    tmk, line = open_delivered_tmk("10000009", KTK, {"key_block": wrap_tmk(KTK, TMK), "tmk_kcv": kcv(TMK)})
    assert tmk == TMK
    assert line.ok and line.got == kcv(TMK) == line.expected
    assert line.title == "TMK of 10000009 delivered as TR-31, KCV checked"


def test_a_block_holding_another_key_than_announced_fails_the_line() -> None:
    tmk, line = open_delivered_tmk("10000009", KTK, {"key_block": wrap_tmk(KTK, OTHER), "tmk_kcv": kcv(TMK)})
    assert tmk == OTHER
    assert not line.ok
    assert (line.expected, line.got) == (kcv(TMK), kcv(OTHER))


def test_a_block_that_does_not_open_fails_the_line_without_a_key() -> None:
    block = wrap_tmk(KTK, TMK)
    tampered = block[:-1] + ("0" if block[-1] != "0" else "1")
    tmk, line = open_delivered_tmk("10000009", KTK, {"key_block": tampered, "tmk_kcv": kcv(TMK)})
    assert tmk is None and not line.ok
    assert line.got.startswith("key block refused: ")
    tmk, line = open_delivered_tmk("10000009", OTHER, {"key_block": block, "tmk_kcv": kcv(TMK)})
    assert tmk is None and not line.ok
