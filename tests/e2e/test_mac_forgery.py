"""Finding 1 of issue 9: the "CUP ECB" MAC XORs the 8-byte blocks, so an adversary on the terminal network
who changes a sale's amount and cancels the change at the same offset in another field keeps the MAC.

The attacker here is a man-in-the-middle proxy on loopback (tests/e2e/spec_wire.py, written from the spec):
the terminal simulator sends a genuine 1.00 sale through it; the proxy rewrites it in flight. The test checks
that the forged frame's MAC really is the genuine MAC (so the forgery would pass a MAC check) and that the
host refuses it all the same, without charging the card.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from posgate.bootstrap.stack import Running
from posgate.terminal import TerminalClient, TerminalTimeout, demo_card, demo_terminal_state

from . import spec_wire
from .helpers import available_fen

OK_CARD = demo_card("6229990000000012")  # balance 10,000.00 CNY


def _forge_amount(new_amount_fen: int, carrier: int) -> spec_wire.Rewrite:
    """Rewrite every 0200 sale's field 4 to `new_amount_fen`, compensated inside field `carrier`."""

    def rewrite(payload: bytes) -> bytes:
        mti, fields = spec_wire.decode(payload)
        if mti != "0200" or fields[3].value != "000000" or 53 not in fields:
            return payload
        amount = bytes.fromhex(f"{new_amount_fen:012d}")
        return spec_wire.xor_forge(payload, fields[4], amount, fields[carrier])

    return rewrite


@pytest.fixture
async def mitm(stack: Running) -> AsyncIterator[spec_wire.Proxy]:
    proxy = spec_wire.Proxy(stack.pos_address)
    await proxy.start()
    yield proxy
    await proxy.stop()


async def _terminal_via(proxy: spec_wire.Proxy, timeout_s: float = 5.0) -> TerminalClient:
    client = TerminalClient(*proxy.address, demo_terminal_state(), timeout_s=timeout_s)
    await client.connect()
    assert (await client.sign_in()).approved
    return client


def _mac_unchanged(proxy: spec_wire.Proxy, mak: bytes) -> bool:
    """The forged payload's field 64 is still the CUP ECB MAC of its bytes: a MAC check alone passes it."""
    genuine, forged = proxy.seen[-1], proxy.sent[-1]
    assert genuine != forged
    return genuine[-8:] == forged[-8:] == spec_wire.cup_ecb_mac(mak, forged[:-8])


async def test_a_sale_of_1_00_forged_into_51_00_by_compensating_in_field_53_is_refused_30(
    mitm: spec_wire.Proxy,
) -> None:
    terminal = await _terminal_via(mitm)
    try:
        mitm.rewrite = _forge_amount(5100, carrier=53)
        result = await terminal.sale(OK_CARD, "123456", 100)
        mitm.rewrite = lambda payload: payload
        assert terminal.state.mak is not None and _mac_unchanged(mitm, terminal.state.mak)
        assert spec_wire.decode(mitm.sent[-1])[1][53].value == "7600000000000000"
        assert result.response_code == "30", result.summary()
        assert await available_fen(terminal, OK_CARD) == 1_000_000  # nothing charged
    finally:
        await terminal.close()


async def test_a_sale_forged_into_40_000_000_01_is_refused_30(mitm: spec_wire.Proxy) -> None:
    terminal = await _terminal_via(mitm)
    try:
        mitm.rewrite = _forge_amount(4_000_000_001, carrier=53)
        result = await terminal.sale(OK_CARD, "123456", 100)
        mitm.rewrite = lambda payload: payload
        assert terminal.state.mak is not None and _mac_unchanged(mitm, terminal.state.mak)
        assert result.response_code == "30", result.summary()
        assert await available_fen(terminal, OK_CARD) == 1_000_000
    finally:
        await terminal.close()


async def test_a_forgery_compensated_in_the_stan_passes_the_field_checks_but_not_the_amount_ceiling(
    mitm: spec_wire.Proxy,
) -> None:
    """The STAN is six free digits: on a CUP ECB terminal it can carry a compensation no content check can
    see (docs/security.md, residual risk). Its bytes line up with field 4's first byte, i.e. amounts of
    1,000,000,000.00 CNY and more, which the per-transaction ceiling refuses (61)."""
    terminal = await _terminal_via(mitm, timeout_s=2.0)
    try:

        def rewrite(payload: bytes) -> bytes:
            mti, fields = spec_wire.decode(payload)
            if mti != "0200" or fields[3].value != "000000":
                return payload
            amount = fields[4]
            stan = next(
                spec_wire.Field(p, p + 1, "")
                for p in range(fields[11].start, fields[11].end)
                if p % 8 == amount.start % 8
            )
            new_amount = bytes([0x10]) + payload[amount.start + 1 : amount.end]
            return spec_wire.xor_forge(payload, amount, new_amount, stan)

        mitm.rewrite = rewrite
        with pytest.raises(
            TerminalTimeout
        ):  # the answer carries the forged STAN: the terminal cannot match it
            await terminal.sale(OK_CARD, "123456", 100)
        mitm.rewrite = lambda payload: payload
        assert terminal.state.mak is not None and _mac_unchanged(mitm, terminal.state.mak)
        forged = spec_wire.decode(mitm.sent[-1])[1]
        assert forged[4].value == "100000000100" and forged[11].value.isdigit()
        answer = mitm.answers[-1]
        assert answer[11].value == forged[11].value
        assert answer[39].value == "61"
        assert await available_fen(terminal, OK_CARD) == 1_000_000
    finally:
        await terminal.close()


async def test_a_genuine_sale_above_the_per_transaction_ceiling_is_declined_61(
    terminal: TerminalClient,
) -> None:
    result = await terminal.sale(demo_card("6228880000000032"), "123456", 4_000_000_001)
    assert result.response_code == "61", result.summary()


def _tlv_values(data: bytes) -> dict[str, tuple[int, int]]:
    """Where each tag's value sits in field 55 (BER-TLV as EMV Book 3 writes it; flat, short lengths)."""
    pos, found = 0, {}
    while pos < len(data):
        size = 2 if data[pos] & 0x1F == 0x1F else 1
        tag = data[pos : pos + size].hex().upper()
        length = data[pos + size]
        start = pos + size + 1
        found[tag] = (start, start + length)
        pos = start + length
    return found


async def test_a_chip_sale_forged_with_the_compensation_in_field_55_is_refused_30(
    mitm: spec_wire.Proxy,
) -> None:
    """On a chip sale the ARQC covers 9F02 (the amount), not field 4, and tag 84 (the AID) is covered by
    neither: the forger changes field 4 and compensates inside 84. The host requires 9F02 = field 4."""
    terminal = await _terminal_via(mitm)
    chip = demo_card("6228880000000016")  # credit, chip, limit 50,000.00 CNY
    try:

        def rewrite(payload: bytes) -> bytes:
            mti, fields = spec_wire.decode(payload)
            if mti != "0200" or fields[3].value != "000000" or 55 not in fields:
                return payload
            start, end = _tlv_values(payload[fields[55].start : fields[55].end])["84"]
            aid = spec_wire.Field(fields[55].start + start, fields[55].start + end, "")
            return spec_wire.xor_forge(payload, fields[4], bytes.fromhex("000000005100"), aid)

        mitm.rewrite = rewrite
        result = await terminal.sale(chip, "123456", 100, entry="chip")
        mitm.rewrite = lambda payload: payload
        assert terminal.state.mak is not None and _mac_unchanged(mitm, terminal.state.mak)
        assert result.response_code == "30", result.summary()
    finally:
        await terminal.close()
