"""Merchant and terminal status at the host: a suspended merchant's terminals get 03; a provisioned terminal
in `testing` may only make its test swipe (a sale of at most 1.00 CNY, then its void or reversal), after
which it and its merchant are live."""

from __future__ import annotations

from sqlalchemy import select, update

from posgate.bootstrap.stack import Running
from posgate.store.models import Merchant, Terminal
from posgate.terminal import TerminalClient, demo_card

CARD = demo_card("6229990000000012")
MID = "898440153110001"


async def _set_status(stack: Running, merchant: str, terminal: str) -> None:
    def work(session):  # type: ignore[no-untyped-def]
        session.execute(update(Merchant).where(Merchant.mid == MID).values(status=merchant))
        session.execute(update(Terminal).where(Terminal.tid == "10000001").values(status=terminal))

    await stack.handle.store.run(work)


async def _statuses(stack: Running) -> tuple[str, str]:
    def work(session):  # type: ignore[no-untyped-def]
        merchant = session.scalar(select(Merchant.status).where(Merchant.mid == MID))
        terminal = session.scalar(select(Terminal.status).where(Terminal.tid == "10000001"))
        return merchant, terminal

    return await stack.handle.store.run(work)


async def test_a_suspended_merchants_terminal_gets_03(stack: Running, terminal: TerminalClient) -> None:
    await _set_status(stack, "suspended", "live")
    assert (await terminal.sale(CARD, "123456", 100)).response_code == "03"
    await _set_status(stack, "live", "live")
    assert (await terminal.sale(CARD, "123456", 100)).response_code == "00"


async def test_a_testing_terminal_makes_its_test_swipe_then_goes_live(
    stack: Running, terminal: TerminalClient
) -> None:
    await _set_status(stack, "testing", "testing")
    assert (await terminal.sale(CARD, "123456", 5_000)).response_code == "03"  # real traffic
    test_sale = await terminal.sale(CARD, "123456", 1)
    assert test_sale.response_code == "00" and test_sale.rrn
    assert await _statuses(stack) == ("testing", "testing")
    assert (await terminal.void(test_sale.rrn, CARD)).response_code == "00"
    assert await _statuses(stack) == ("live", "live")
    assert (await terminal.sale(CARD, "123456", 5_000)).response_code == "00"


async def test_a_reversed_test_sale_also_completes_the_test_swipe(
    stack: Running, terminal: TerminalClient
) -> None:
    await _set_status(stack, "testing", "testing")
    assert (await terminal.sale(CARD, "123456", 1)).approved
    assert (await terminal.reverse_last("98")).response_code == "00"
    assert await _statuses(stack) == ("live", "live")


async def test_a_declined_test_sale_reversed_does_not_complete_the_test_swipe(
    stack: Running, terminal: TerminalClient
) -> None:
    await _set_status(stack, "testing", "testing")
    assert (await terminal.sale(CARD, "000000", 1)).response_code == "55"  # wrong PIN
    assert (await terminal.reverse_last("98")).response_code == "00"
    assert await _statuses(stack) == ("testing", "testing")
