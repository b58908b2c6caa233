"""A terminal's 0400 that the host handles before, or while, the sale it reverses (found by the chaos run).

A terminal whose sale got no answer reverses it (0400, same STAN). If the host reads the two together — it
was frozen with both in its socket buffer, or the 0200 was slower through the first steps — the pipelines
run concurrently and the 0400 can be handled first: ReverseOriginal finds no original and answers `00`
("whether or not the original was seen"). The 0200 must then not be carried out: it ends `reversed`, the
terminal gets `05` (what the issuer answers a late original) and the issuer gets the sale's 0420, so it
keeps a tombstone should the sale ever reach it. Before the fix the 0200 was recorded, sent to the issuer
and approved: the terminal had a reversed sale, the host an approved one that cleared, the card was charged.

Found by `python -m tests.chaos --rounds 50 --seed 2026 --variant postgresql/split` (freeze_host):
"terminal reversal honoured: TID 70000005 STAN 000147: reversed by its terminal, host state approved"; the
host log showed `0400 reversal … stan=000147 rc=00` at 10:46:33.269 and `0200 sale … stan=000147 rc=00`
at 10:46:33.333, both read after a 4.2 s freeze. Here the order is made deterministic (the 0400 first,
then the 0200), then both are sent pipelined on one connection, then the 0400 is sent while the issuer
holds the 0200. All over real TCP: terminal simulator → host → issuer simulator, SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from posgate.bootstrap.stack import Running, start_all
from posgate.store.models import SafEntry, Transaction
from posgate.store.models_simulator import SimAuthorization
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state
from posgate.terminal.messages import financial_request, last_transaction, reversal_request, sale_request

from .conftest import stack_settings
from .helpers import available_fen, eventually

OK_CARD = demo_card("debit-ok")
BANK_A = "Demo Bank A"


def _sale(terminal: TerminalClient, amount_fen: int) -> dict[str, str]:
    state = terminal.state
    return sale_request(state, state.next_stan(), OK_CARD, amount_fen, None, "magstripe", None)


async def _sale_row(running: Running, stan: str) -> Transaction:
    def read(session) -> Transaction:  # type: ignore[no-untyped-def]
        row = session.scalar(select(Transaction).where(Transaction.mti == "0200", Transaction.stan == stan))
        assert row is not None, f"no sale with STAN {stan} recorded"
        session.expunge(row)
        return row

    return await running.handle.store.run(read)


async def _reversed_at_the_issuer(running: Running, sale: Transaction) -> bool:
    """The host's 0420 of `sale` was answered, and the issuer's books hold the sale reversed (a tombstone
    when the sale never reached it)."""

    def read(session) -> bool:  # type: ignore[no-untyped-def]
        entry = session.scalar(
            select(SafEntry).where(SafEntry.transaction_id == sale.id, SafEntry.mti == "0420")
        )
        auth = session.scalar(
            select(SimAuthorization).where(
                SimAuthorization.stan == sale.network_stan,
                SimAuthorization.transmission_dt == sale.transmission_dt,
                SimAuthorization.mti == "0200",
            )
        )
        return entry is not None and entry.status == "done" and auth is not None and auth.state == "reversed"

    return await running.handle.store.run(read)


async def test_a_sale_arriving_after_its_own_reversal_is_not_carried_out(
    stack: Running, terminal: TerminalClient
) -> None:
    before = await available_fen(terminal, OK_CARD)
    msg = _sale(terminal, 700)
    terminal.state.last = last_transaction(msg, "sale")

    reversal = await terminal.reverse_last("98")  # the 0400 first: the host has not seen the sale
    assert reversal.response_code == "00", reversal.summary()

    late = await terminal.exchange(msg)  # then the sale it reverses
    assert late.response_code == "05", late.summary()
    sale = await _sale_row(stack, msg["11"])
    assert sale.state == "reversed"
    assert await eventually(lambda: _reversed_at_the_issuer(stack, sale)), "the issuer got no 0420"
    assert await available_fen(terminal, OK_CARD) == before, "the card was charged"

    again = await terminal.exchange(msg)  # the terminal repeats it: the same answer, nothing charged
    assert again.response_code == "05"
    assert await available_fen(terminal, OK_CARD) == before


async def test_a_preauthorization_arriving_after_its_own_reversal_places_no_hold(
    stack: Running, terminal: TerminalClient
) -> None:
    """The same for a request whose processing code is not a sale's (030000): the reversal is matched by
    the request's own code."""
    before = await available_fen(terminal, OK_CARD)
    msg = financial_request("preauth", terminal.state, terminal.state.next_stan(), OK_CARD, amount_fen=800)
    terminal.state.last = last_transaction(msg, "preauth")
    assert (await terminal.reverse_last("98")).response_code == "00"  # the host has not seen it
    late = await terminal.exchange(msg)
    assert late.response_code == "05", late.summary()

    def state(session) -> str | None:  # type: ignore[no-untyped-def]
        return session.scalar(
            select(Transaction.state).where(Transaction.mti == "0100", Transaction.stan == msg["11"])
        )

    assert await stack.handle.store.run(state) == "reversed"
    assert await available_fen(terminal, OK_CARD) == before, "the pre-authorization holds money"


async def test_a_sale_and_its_reversal_pipelined_never_leave_the_sale_approved(
    stack: Running, terminal: TerminalClient
) -> None:
    """Both frames in flight on one connection at once, in either order: whichever the host finishes
    first, the reversal is answered `00` and the sale ends reversed, with nothing charged."""
    before = await available_fen(terminal, OK_CARD)
    stans = []
    for round_no in range(8):
        msg = _sale(terminal, 300 + round_no)
        reversal = reversal_request(terminal.state, last_transaction(msg, "sale"), "98")
        exchanges = [terminal.exchange(msg), terminal.exchange(reversal)]
        if round_no % 2:
            exchanges.reverse()
        answers = await asyncio.gather(*exchanges)
        answer_to_reversal = answers[0] if round_no % 2 else answers[1]
        assert answer_to_reversal.response_code == "00", answer_to_reversal.summary()
        stans.append(msg["11"])
    for stan in stans:
        sale = await _sale_row(stack, stan)
        assert sale.state == "reversed", f"STAN {stan}: reversed by its terminal, host state {sale.state}"
        assert await eventually(lambda sale=sale: _reversed_at_the_issuer(stack, sale))
    assert await available_fen(terminal, OK_CARD) == before, "a reversed sale was charged"


# the issuer holds the sale this long: the 0400 must be handled within it, also under a mutation run's tracing
# or a loaded machine (the stack's usual 1 s turned the sale into the host's own 98 first)
HOLD_S = 5.0


@pytest.fixture
async def patient_stack(tmp_path: Path, database_url: str) -> AsyncIterator[Running]:
    running = await start_all(stack_settings(tmp_path, database_url, issuer_timeout_s=HOLD_S))
    try:
        yield running
    finally:
        await running.stop()


async def test_a_reversal_while_the_issuer_holds_the_sale_undoes_it(patient_stack: Running) -> None:
    """The 0400 arrives while the host waits for the issuer's answer to the 0200 (the issuer debits the
    card and its answer is lost): the sale ends reversed and the debit is given back."""
    stack = patient_stack
    assert stack.issuers is not None
    async with TerminalClient(*stack.pos_address, demo_terminal_state(), timeout_s=2 * HOLD_S) as terminal:
        assert (await terminal.sign_in()).approved
        before = await available_fen(terminal, OK_CARD)
        msg = _sale(terminal, 900)
        stack.issuers.set_fault(BANK_A, "drop_replies")
        try:
            sale_task = asyncio.create_task(terminal.exchange(msg))

            async def waiting_for_the_issuer() -> bool:
                return (await stack.handle.store.run(lambda s: _pending_sales(s, msg["11"]))) == 1

            assert await eventually(waiting_for_the_issuer, timeout_s=HOLD_S)
            # reason 96, not the 98 of the host's own time-out: the 0420 says whose reversal undid the sale
            reversal = reversal_request(terminal.state, last_transaction(msg, "sale"), "96")
            assert (await terminal.exchange(reversal)).response_code == "00"
            assert (await sale_task).response_code != "00"
        finally:
            stack.issuers.set_fault(BANK_A, "none")
        sale = await _sale_row(stack, msg["11"])
        assert sale.state == "reversed"
        assert await eventually(lambda: _reversed_at_the_issuer(stack, sale), timeout_s=10)
        assert await stack.handle.store.run(lambda s: _reversal_reasons(s, sale.id)) == ["96"]
        assert await available_fen(terminal, OK_CARD) == before


def _reversal_reasons(session, transaction_id: int) -> list[str | None]:  # type: ignore[no-untyped-def]
    entries = session.scalars(
        select(SafEntry.reason_code).where(SafEntry.transaction_id == transaction_id, SafEntry.mti == "0420")
    )
    return list(entries)


def _pending_sales(session, stan: str) -> int:  # type: ignore[no-untyped-def]
    rows = session.scalars(
        select(Transaction.id).where(
            Transaction.mti == "0200", Transaction.stan == stan, Transaction.state == "pending"
        )
    )
    return len(list(rows))
