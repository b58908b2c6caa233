"""An ANSI X9.19 terminal end to end (issue 9, finding 1): provisioned with X9.19 (the default for new
terminals), its simulator profile carries the algorithm, it signs in (a MAK with distinct halves), makes
its test swipe, goes live, sells, voids and settles with X9.19 MACs both ways; a forged amount gets `A0`
even where no field check could see the change, and the field-53 forgery still gets `30`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from posgate.bootstrap.stack import Running
from posgate.merchants.provisioning import get_merchant, provision_terminals, simulator_profile
from posgate.security.pos_mac import MacAlgorithm
from posgate.store.acquirer import load_terminal
from posgate.store.base import utcnow
from posgate.terminal import TerminalClient, TerminalState, demo_card

from . import spec_wire

MID = "898440153110001"  # the demo merchant
CARD = demo_card("6229990000000012")


def _provision(stack: Running, mac_algorithm: str | None) -> TerminalState:
    vault, now = stack.handle.vault, utcnow()
    extra = {} if mac_algorithm is None else {"mac_algorithm": mac_algorithm}

    def work(session) -> TerminalState:  # type: ignore[no-untyped-def]
        (tid,) = provision_terminals(session, vault, get_merchant(session, MID), 1, "test", now, **extra)
        data = simulator_profile(session, vault, tid, "test", "test", now)
        return TerminalState(
            tid=data.tid, mid=data.mid, tmk_hex=data.tmk_hex, nii=data.nii, mac_algorithm=data.mac_algorithm
        )

    return stack.handle.store.transact(work)


@pytest.fixture
async def live_x919(stack: Running) -> AsyncIterator[TerminalClient]:
    state = _provision(stack, None)  # the default
    assert state.mac is MacAlgorithm.X919
    async with TerminalClient(*stack.pos_address, state, timeout_s=5.0) as terminal:
        assert (await terminal.sign_in()).approved
        assert state.mak is not None and state.mak[:8] != state.mak[8:]  # a true double-length MAK
        test_sale = await terminal.sale(CARD, "123456", 1)
        assert test_sale.approved and test_sale.mac_ok and test_sale.rrn is not None
        assert (await terminal.void(test_sale.rrn, CARD)).approved  # the test swipe: the terminal goes live
        record = await stack.handle.store.run(lambda s: load_terminal(s, state.tid))
        assert record is not None and record.status == "live" and record.mac_algorithm == "x919"
        yield terminal


async def test_an_x919_terminal_sells_voids_and_settles(live_x919: TerminalClient) -> None:
    sale = await live_x919.sale(CARD, "123456", 12_345)
    assert sale.response_code == "00" and sale.mac_ok is True, sale.summary()
    other = await live_x919.sale(demo_card("6228880000000016"), "123456", 500, entry="chip")
    assert other.approved and other.mac_ok and other.arpc_ok
    assert other.rrn is not None and (await live_x919.void(other.rrn, demo_card("6228880000000016"))).approved
    settled = await live_x919.settle()
    assert settled.settled and settled.balanced, settled
    assert settled.responses[0].mac_ok is True  # the 0510, MACed with X9.19


async def test_a_cup_ecb_terminal_can_still_be_provisioned_and_the_wrong_algorithm_gets_a0(
    stack: Running,
) -> None:
    state = _provision(stack, "cup_ecb")
    assert state.mac is MacAlgorithm.CUP_ECB
    async with TerminalClient(*stack.pos_address, state, timeout_s=5.0) as terminal:
        assert (await terminal.sign_in()).approved
        assert state.mak is not None and state.mak[:8] == state.mak[8:]  # K|K, as field terminals need
        assert (await terminal.sale(CARD, "123456", 1)).approved
        state.mac_algorithm = "x919"  # a terminal configured with the other algorithm
        assert (await terminal.sale(CARD, "123456", 1)).response_code == "A0"


async def test_a_forged_amount_on_an_x919_terminal_is_refused(
    stack: Running, live_x919: TerminalClient
) -> None:
    proxy = spec_wire.Proxy(stack.pos_address)
    await proxy.start()
    try:
        async with TerminalClient(*proxy.address, live_x919.state, timeout_s=5.0) as terminal:

            def amount_only(payload: bytes) -> bytes:  # no compensation: every field check passes
                mti, fields = spec_wire.decode(payload)
                if mti != "0200" or fields[3].value != "000000":
                    return payload
                return payload[: fields[4].start] + bytes.fromhex("000000005100") + payload[fields[4].end :]

            proxy.rewrite = amount_only
            assert (await terminal.sale(CARD, "123456", 100)).response_code == "A0"

            def compensated(payload: bytes) -> bytes:
                mti, fields = spec_wire.decode(payload)
                if mti != "0200" or fields[3].value != "000000":
                    return payload
                return spec_wire.xor_forge(payload, fields[4], bytes.fromhex("000000005100"), fields[53])

            proxy.rewrite = compensated
            assert (await terminal.sale(CARD, "123456", 100)).response_code == "30"
            proxy.rewrite = lambda payload: payload
            assert (await terminal.sale(CARD, "123456", 100)).approved
    finally:
        await proxy.stop()
