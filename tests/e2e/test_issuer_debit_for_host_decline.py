"""An issuer debit for a sale the host declined must be given back (issue 9's chaos finding 3).

Found by the chaos run (postgresql/split, kill_pg): two sales the issuer approved 20 ms before PostgreSQL was
killed ended `declined` at the host with their debits standing ("Demo Bank A RRN 000000000551 … issuer debit
1204 stands, host declined"). The path: the issuer approves, then the host cannot record what it must do
about it — the reversal AskIssuer queues after a reply whose MAC failed, or the time-out (with its 0420)
after an answer that came too late — because the store fails at that statement. The step raises, the
pipeline answers `96`, and RecordOutcome, whose unit of work goes through a moment later, wrote `declined`
without a 0420: nothing ever told the issuer.

Here the store failure is injected where the chaos run met it, by a trigger in the real database (SQLite or
PostgreSQL) that refuses exactly that UPDATE; everything else is real: terminal simulator → host → issuer
simulator over TCP. The host must queue the 0420 with the `96` it records, so the issuer releases the debit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from posgate.bootstrap.host import start_host
from posgate.bootstrap.stack import Running, start_all
from posgate.logs import configure_logging
from posgate.store.models import SafEntry, Transaction
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state

from .conftest import stack_settings
from .helpers import available_fen, eventually
from .test_host_guards import ReplyTamperingProxy

OK_CARD = demo_card("6229990000000012")  # Demo Bank A, 10,000.00
BANK_A = "Demo Bank A"


def _refuse_updates(running: Running, when: str) -> None:
    """A trigger that makes the store refuse every UPDATE of a transaction matching `when` (SQL over NEW)."""
    engine = running.handle.store.engine
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER injected_fault BEFORE UPDATE ON transactions"
                    f" WHEN {when} BEGIN SELECT RAISE(ABORT, 'injected store failure'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS"
                    " $$ BEGIN RAISE EXCEPTION 'injected store failure'; END $$"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER injected_fault BEFORE UPDATE ON transactions FOR EACH ROW"
                    f" WHEN ({when}) EXECUTE FUNCTION injected_fault()"
                )
            )


async def _sale_row(running: Running, rrn_or_stan: str) -> tuple[str, str | None, str | None]:
    """(state, response code, status of its 0420) of the sale with this STAN."""

    def read(session) -> tuple[str, str | None, str | None]:  # type: ignore[no-untyped-def]
        row = session.scalar(
            select(Transaction).where(Transaction.mti == "0200", Transaction.stan == rrn_or_stan)
        )
        assert row is not None
        entry = session.scalar(
            select(SafEntry.status).where(SafEntry.transaction_id == row.id, SafEntry.mti == "0420")
        )
        return row.state, row.response_code, entry

    return await running.handle.store.run(read)


async def _balance_is(terminal: TerminalClient, fen: int) -> bool:
    return await available_fen(terminal, OK_CARD) == fen


async def test_an_approval_that_comes_too_late_while_the_store_fails_is_reversed(
    tmp_path: Path, database_url: str
) -> None:
    """The issuer debits the card and its answer is lost; at the host's time-out the store refuses to
    record it (`timed_out`): the terminal gets `96`, and the issuer must get the 0420 all the same."""
    running = await start_all(stack_settings(tmp_path, database_url, issuer_timeout_s=1.0))
    try:
        assert running.issuers is not None
        async with TerminalClient(*running.pos_address, demo_terminal_state(), timeout_s=10.0) as terminal:
            assert (await terminal.sign_in()).approved
            before = await available_fen(terminal, OK_CARD)
            assert before is not None
            _refuse_updates(running, "NEW.state = 'timed_out'")
            running.issuers.set_fault(BANK_A, "drop_replies")
            sale = await terminal.sale(OK_CARD, "123456", 3_300)
            running.issuers.set_fault(BANK_A, "none")
            assert sale.response_code == "96", sale.summary()
            assert await eventually(lambda: _balance_is(terminal, before), timeout_s=10), (
                f"the issuer's debit stands, host: {await _sale_row(running, sale.stan)}"
            )
            assert await _sale_row(running, sale.stan) == ("reversed", "96", "done")
    finally:
        await running.stop()


@pytest.fixture
async def stack_behind_proxy(
    tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[Running, ReplyTamperingProxy]]:
    """The issuer simulator, and the host reaching Demo Bank A through a `ReplyTamperingProxy`."""
    settings = stack_settings(tmp_path, database_url, issuer_timeout_s=5.0)
    configure_logging(settings.data_dir, "INFO", console=False)
    running = await start_all(settings, host=False)
    assert running.issuers is not None
    ports = dict(running.issuers.ports)
    proxy = ReplyTamperingProxy(ports[BANK_A])
    proxy.tamper = False
    ports[BANK_A] = await proxy.start()
    running.host = await start_host(settings, running.handle, issuer_ports=ports)
    try:
        assert await running.host.services.links.wait_up(5.0)
        yield running, proxy
    finally:
        await running.stop()
        await proxy.stop()


async def test_an_approval_whose_mac_fails_while_the_store_fails_is_reversed(
    stack_behind_proxy: tuple[Running, ReplyTamperingProxy],
) -> None:
    """The issuer approves (and debits); the reply's MAC fails on the way (A0), and the store refuses the
    reversal AskIssuer records for it: the terminal gets `96`, and the issuer must get the 0420."""
    running, proxy = stack_behind_proxy
    async with TerminalClient(*running.pos_address, demo_terminal_state(), timeout_s=10.0) as terminal:
        assert (await terminal.sign_in()).approved
        before = await available_fen(terminal, OK_CARD)
        assert before is not None
        # AskIssuer's reversal of a pending row sets only the state; the outcome comes with its code
        _refuse_updates(running, "NEW.state = 'reversed' AND NEW.response_code IS NULL")
        proxy.tamper = True
        sale = await terminal.sale(OK_CARD, "123456", 4_400)
        proxy.tamper = False
        assert proxy.tampered == 1
        assert sale.response_code == "96", sale.summary()
        assert await eventually(lambda: _balance_is(terminal, before), timeout_s=10), (
            f"the issuer's debit stands, host: {await _sale_row(running, sale.stan)}"
        )
        assert await _sale_row(running, sale.stan) == ("reversed", "96", "done")


async def test_an_approval_the_store_cannot_record_is_reversed(tmp_path: Path, database_url: str) -> None:
    """The issuer approves and the store refuses RecordOutcome's `approved`: the approval is compensated
    (AskIssuer's abort), the terminal gets `96` and the issuer the 0420. (This path already held before the
    fix; it is here so that the three ways of failing after an approval are pinned together.)"""
    running = await start_all(stack_settings(tmp_path, database_url))
    try:
        async with TerminalClient(*running.pos_address, demo_terminal_state(), timeout_s=10.0) as terminal:
            assert (await terminal.sign_in()).approved
            before = await available_fen(terminal, OK_CARD)
            assert before is not None
            _refuse_updates(running, "NEW.state = 'approved' AND NEW.amount_fen = 5500")
            sale = await terminal.sale(OK_CARD, "123456", 5_500)
            assert sale.response_code == "96", sale.summary()
            assert await eventually(lambda: _balance_is(terminal, before), timeout_s=10)
            state, _code, entry = await _sale_row(running, sale.stan)
            assert (state, entry) == ("reversed", "done")
    finally:
        await running.stop()
