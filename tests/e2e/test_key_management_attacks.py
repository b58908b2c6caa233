"""Finding 2 of issue 9: sign-in, sign-out and settlement were not authenticated. The attacker is a TCP client
written from the spec alone (tests/e2e/spec_wire.py) that knows a TID and MID (printed on every receipt) but
no key; the real terminal is the simulator with the demo terminal's TMK.

- an 0800 naming the terminal must not take its working keys away (it used to: the next sale got `A0`);
- an 0820 sign-out likewise (it used to: `97`);
- an 0500 / 0320 without a MAC gets `A0`: it neither reads the batch totals nor closes the batch (the first
  one used to answer the host's totals, a second with those totals closed the batch and the terminal's void
  of its own sale was then refused `12`);
- sign-ins per TID are rate-limited across host nodes.
"""

from __future__ import annotations

from pathlib import Path

from posgate.bootstrap.host import start_host
from posgate.bootstrap.stack import Running, start_all
from posgate.logs import configure_logging
from posgate.store.acquirer import rotate_key_period
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state

from . import spec_wire
from .conftest import stack_settings

TID, MID = "10000001", "898440153110001"
CARD = demo_card("6229990000000012")


def _network(mti: str, stan: str, nmc: str, batch: str = "000001", **extra: str) -> bytes:
    fields = {11: stan, 41: TID, 42: MID, 60: "00" + batch + nmc}
    fields |= {int(k.removeprefix("f")): v for k, v in extra.items()}
    return spec_wire.encode(mti, fields)


async def _forged_sign_in(address: tuple[str, int], stan: str = "900001") -> dict[int, spec_wire.Field]:
    return await spec_wire.exchange(*address, _network("0800", stan, "003", f63="001"))


async def test_a_sign_in_naming_another_terminal_does_not_lock_it_out(
    stack: Running, terminal: TerminalClient
) -> None:
    answer = await _forged_sign_in(stack.pos_address)
    assert answer[39].value == "00"  # the keys it carries are under the TMK: useless to the sender
    sale = await terminal.sale(CARD, "123456", 100)
    assert sale.response_code == "00" and sale.mac_ok, sale.summary()


async def test_a_sign_in_naming_a_terminal_whose_keys_are_in_use_does_not_lock_it_out(
    stack: Running, terminal: TerminalClient
) -> None:
    assert (await terminal.sale(CARD, "123456", 100)).approved  # its keys are in use from now on
    answer = await _forged_sign_in(stack.pos_address)
    assert answer[39].value == "00"  # new keys are offered (under the TMK), the keys in use stay valid
    sale = await terminal.sale(CARD, "123456", 200)
    assert sale.response_code == "00" and sale.mac_ok, sale.summary()


async def test_the_host_keeps_the_keys_in_use_until_the_terminal_uses_its_new_ones(
    stack: Running, terminal: TerminalClient
) -> None:
    old_mak, old_pik = terminal.state.mak_hex, terminal.state.pik_hex
    await _forged_sign_in(stack.pos_address)
    await _forged_sign_in(stack.pos_address, "900002")
    assert (await terminal.sale(CARD, "123456", 100)).approved  # still the keys in use
    assert (await terminal.sign_in()).approved  # the terminal's own sign-in: new keys
    assert terminal.state.mak_hex != old_mak
    assert (await terminal.sale(CARD, "123456", 200)).approved  # its first message under them
    new_mak, new_pik = terminal.state.mak_hex, terminal.state.pik_hex
    terminal.state.mak_hex, terminal.state.pik_hex = old_mak, old_pik
    assert (await terminal.sale(CARD, "123456", 300)).response_code == "A0"  # the old ones are retired
    terminal.state.mak_hex, terminal.state.pik_hex = new_mak, new_pik
    assert (await terminal.sale(CARD, "123456", 400)).approved


async def test_a_third_party_sign_in_between_the_terminals_sign_in_and_its_first_sale_does_not_lock_it_out(
    stack: Running, terminal: TerminalClient
) -> None:
    assert (await terminal.sign_in()).approved
    await _forged_sign_in(stack.pos_address)
    assert (await terminal.sale(CARD, "123456", 100)).approved


async def test_a_sign_out_naming_another_terminal_does_not_lock_it_out(
    stack: Running, terminal: TerminalClient
) -> None:
    answer = await spec_wire.exchange(*stack.pos_address, _network("0820", "900001", "002"))
    assert answer[39].value == "00"
    sale = await terminal.sale(CARD, "123456", 100)
    assert sale.response_code == "00" and sale.mac_ok, sale.summary()


async def test_after_a_key_rotation_a_third_party_sign_in_does_not_keep_the_terminal_out(
    stack: Running, terminal: TerminalClient
) -> None:
    await stack.handle.store.run(rotate_key_period)
    rotated = await terminal.sale(CARD, "123456", 100)
    assert rotated.response_code == "97" and rotated.sign_in_required  # the header says "sign in again"
    await _forged_sign_in(stack.pos_address)  # new keys pending, which the terminal does not have
    stale = await terminal.sale(CARD, "123456", 100)  # under its keys of the old period
    assert stale.response_code == "97" and stale.sign_in_required  # "sign in again", not A0
    assert (await terminal.sign_in()).approved
    await _forged_sign_in(stack.pos_address, "900002")
    assert (await terminal.sale(CARD, "123456", 100)).approved


async def test_after_a_key_rotation_the_keys_in_use_before_it_stay_refused_once_new_keys_are_pending(
    stack: Running, terminal: TerminalClient
) -> None:
    """A rotation (`posgate keys rotate`, e.g. after a suspected key compromise) ends the keys in use; an
    0800 naming the terminal, which leaves new keys pending, must not bring them back."""
    assert (await terminal.sale(CARD, "123456", 100)).approved  # its keys are in use
    await stack.handle.store.run(rotate_key_period)
    await _forged_sign_in(stack.pos_address)
    stale = await terminal.sale(CARD, "123456", 100)  # under the keys of the earlier period
    assert stale.response_code == "97" and stale.sign_in_required, stale.summary()


async def test_a_settlement_without_a_mac_neither_reads_nor_closes_the_batch(
    stack: Running, terminal: TerminalClient
) -> None:
    sale = await terminal.sale(CARD, "123456", 100)
    assert sale.approved and sale.rrn is not None
    zeros = "0" * 62
    first = await spec_wire.exchange(
        *stack.pos_address, _network("0500", "900001", "201", f48=zeros, f49="156")
    )
    assert first[39].value == "A0"
    assert 48 not in first  # the host's totals are not revealed
    totals = "000000000100" + "001" + "0" * 15 + "0" + "0" * 31  # what the leak used to give away
    second = await spec_wire.exchange(
        *stack.pos_address, _network("0500", "900002", "201", f48=totals, f49="156")
    )
    assert second[39].value == "A0"
    void = await terminal.void(sale.rrn, CARD)
    assert void.response_code == "00", void.summary()  # the batch is still open


async def test_a_batch_upload_without_a_mac_is_refused_a0(stack: Running, terminal: TerminalClient) -> None:
    end = await spec_wire.exchange(*stack.pos_address, _network("0320", "900001", "207", f48="0000"))
    assert end[39].value == "A0"


async def test_sign_ins_per_tid_are_limited_across_host_nodes(tmp_path: Path, database_url: str) -> None:
    settings = stack_settings(tmp_path, database_url, sign_in_limit=3, sign_in_window_s=60.0)
    configure_logging(settings.data_dir, "INFO", console=False)
    first = await start_all(settings)
    assert first.issuers is not None
    second = await start_host(settings, first.handle, issuer_ports=dict(first.issuers.ports))
    try:
        await second.services.links.wait_up(3)
        state = demo_terminal_state()
        async with TerminalClient(*first.pos_address, state) as terminal:
            assert (await terminal.sign_in()).approved  # 1
            codes = [
                (await _forged_sign_in(address, f"90000{n}"))[39].value
                for n, address in enumerate((second.address, first.pos_address, second.address))
            ]
            assert codes == ["00", "00", "65"]  # 2, 3, then over the limit, whichever node answers
            assert (await terminal.sign_in()).response_code == "65"
            sale = await terminal.sale(CARD, "123456", 100)  # the keys in use keep working
            assert sale.response_code == "00" and sale.mac_ok
    finally:
        await second.stop()
        await first.stop()


async def test_a_network_management_code_not_listed_for_the_mti_gets_30(stack: Running) -> None:
    assert (await spec_wire.exchange(*stack.pos_address, _network("0800", "900001", "005")))[39].value == "30"
    assert (await spec_wire.exchange(*stack.pos_address, _network("0820", "900002", "003")))[39].value == "30"
    assert (await spec_wire.exchange(*stack.pos_address, _network("0800", "900003", "003")))[39].value == "00"
