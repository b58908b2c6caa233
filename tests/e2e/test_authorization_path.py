"""The card authorization path end to end over real sockets: terminal simulator → host → issuer simulator,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio

from posgate.bootstrap.stack import Running
from posgate.security.keys import kcv
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state

OK_CARD = demo_card("6229990000000012")  # 10,000.00 CNY
LOW_CARD = demo_card("6229990000000020")  # 10.00 CNY


async def test_sign_in_delivers_working_keys_whose_check_values_verify(stack: Running) -> None:
    host, port = stack.pos_address
    async with TerminalClient(host, port, demo_terminal_state()) as client:
        result = await client.sign_in()
        assert result.response_code == "00"
        field62 = bytes.fromhex(result.fields["62"])
        assert len(field62) == 40
        # the client already checked the KCVs; check them here too, from the clear keys it derived
        assert field62[16:20].hex().upper() == kcv(client.state.pik)[:8]
        assert field62[36:40].hex().upper() == kcv(client.state.mak)[:8]
        assert client.state.mak[:8] == client.state.mak[8:]  # MAK issued as K|K


async def test_sale_is_approved_mac_verified_and_the_balance_reflects_it(terminal: TerminalClient) -> None:
    before = await terminal.balance(OK_CARD, "123456")
    assert before.response_code == "00" and before.mac_ok is True
    assert before.balance_fen == 1_000_000

    sale = await terminal.sale(OK_CARD, "123456", 12_345)
    assert sale.response_code == "00"
    assert sale.mac_ok is True
    assert sale.rrn and len(sale.rrn) == 12
    assert sale.auth_code and len(sale.auth_code) == 6
    assert sale.masked_pan == "622999******0012"

    after = await terminal.balance(OK_CARD, "123456")
    assert after.balance_fen == 1_000_000 - 12_345


async def test_declines_carry_the_issuers_reason(terminal: TerminalClient) -> None:
    assert (await terminal.sale(LOW_CARD, "123456", 1_001)).response_code == "51"
    assert (await terminal.sale(OK_CARD, "654321", 100)).response_code == "55"
    assert (await terminal.sale(demo_card("6229990000000038"), "123456", 100)).response_code == "54"
    assert (await terminal.sale(demo_card("6229990000000046"), "123456", 100)).response_code == "41"


async def test_reversal_restores_the_balance_exactly_once_even_if_sent_three_times(
    terminal: TerminalClient,
) -> None:
    sale = await terminal.sale(LOW_CARD, "123456", 400)
    assert sale.approved
    assert (await terminal.balance(LOW_CARD, "123456")).balance_fen == 600
    last = terminal.state.last
    for _ in range(3):
        terminal.state.last = last
        reversal = await terminal.reverse_last("98")
        assert reversal.response_code == "00"
        assert reversal.mac_ok is True
    assert (await terminal.balance(LOW_CARD, "123456")).balance_fen == 1_000


async def test_reversal_of_a_sale_the_host_never_saw_is_answered_00(terminal: TerminalClient) -> None:
    from posgate.terminal.messages import sale_request
    from posgate.terminal.state import LastTransaction  # noqa: F401

    msg = sale_request(terminal.state, terminal.state.next_stan(), OK_CARD, 500, None, "magstripe", None)
    from posgate.terminal.messages import last_transaction

    terminal.state.last = last_transaction(msg)
    assert (await terminal.reverse_last("98")).response_code == "00"
    assert (await terminal.balance(OK_CARD, "123456")).balance_fen == 1_000_000


async def test_pipelined_sales_from_concurrent_terminals_are_all_answered(
    stack: Running, terminal: TerminalClient
) -> None:
    results = await asyncio.gather(*(terminal.sale(OK_CARD, "123456", 100) for _ in range(20)))
    assert [r.response_code for r in results] == ["00"] * 20
    assert len({r.rrn for r in results}) == 20
    assert (await terminal.balance(OK_CARD, "123456")).balance_fen == 1_000_000 - 2_000
