"""The issuer link as a man in the middle sees it (network-8583.md): host → proxy → issuer simulator over
real TCP, the proxy decoding every message with bare pyiso8583.

- The MAC is the last field and covers field 90: a reversal whose field 90 is rewritten on the wire to
  name another sale is refused by the issuer, and that sale stays charged.
- Every message has its own STAN — a reversal too, the original's travelling in field 90 — and STANs do
  not start again when the host restarts, nor repeat on a link because other links carried a million
  transactions.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from posgate.bootstrap.host import HostRuntime, start_host
from posgate.bootstrap.stack import Running, start_all
from posgate.config import Settings
from posgate.logs import configure_logging
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state

from .conftest import stack_settings
from .helpers import available_fen, eventually
from .link_proxy import LinkProxy, Message

BANK_A, BANK_B = "Demo Bank A", "Demo Bank B"
CARD = demo_card("6229990000000012")  # balance 10,000.00 CNY at Demo Bank A


@dataclass
class Proxied:
    """The simulator, a host whose link to Demo Bank A runs through `proxy`, and the store they share."""

    running: Running
    host: HostRuntime
    proxy: LinkProxy

    def terminal(self) -> TerminalClient:
        host, port = self.host.address
        return TerminalClient(host, port, demo_terminal_state(), timeout_s=5.0)

    async def restart_host(self, settings: Settings) -> None:
        await self.host.stop()
        self.host = await _start_host(settings, self.running, self.proxy)


async def _start_host(settings: Settings, running: Running, proxy: LinkProxy) -> HostRuntime:
    assert running.issuers is not None
    ports = {**running.issuers.ports, BANK_A: proxy.port}
    host = await start_host(settings, running.handle, issuer_ports=ports)
    assert await host.services.links.wait_up(5), "issuer links did not come up"
    return host


@contextlib.asynccontextmanager
async def proxied_stack(settings: Settings) -> AsyncIterator[Proxied]:
    configure_logging(settings.data_dir, "INFO", console=False)
    running = await start_all(settings, host=False)
    assert running.issuers is not None
    proxy = LinkProxy(running.issuers.ports[BANK_A])
    await proxy.start()
    host = await _start_host(settings, running, proxy)
    stack = Proxied(running, host, proxy)
    try:
        yield stack
    finally:
        await stack.host.stop()
        await proxy.stop()
        await running.stop()


def _original_data(msg: Message) -> str:
    """Field 90 naming `msg` (network-8583.md): MTI, STAN, field 7, acquirer id, forwarding id."""
    return msg["t"] + msg["11"] + msg["7"] + msg["32"].zfill(11) + "0" * 11


async def test_a_reversal_whose_field_90_is_rewritten_on_the_wire_is_refused_by_the_issuer(
    tmp_path: Path, database_url: str
) -> None:
    """Finding 7: field 90 followed the MAC, so an attacker on the link could make a reversal undo another
    transaction than the one the host reversed. Here sale B (50.00) is the target, sale A (1.00) is the one
    the terminal reverses; the attacker rewrites the 0420's field 90 to name B."""
    settings = stack_settings(tmp_path, database_url, saf_retry_s=0.2)
    async with proxied_stack(settings) as stack, stack.terminal() as terminal:
        assert (await terminal.sign_in()).approved
        assert (await terminal.sale(CARD, "123456", 5_000)).approved  # sale B
        sale_b = stack.proxy.sent("0200")[-1]
        assert (await terminal.sale(CARD, "123456", 100)).approved  # sale A
        sale_a = stack.proxy.sent("0200")[-1]

        def point_at_sale_b(msg: Message) -> Message | None:
            if msg["t"] != "0420":
                return None
            assert msg["90"] == _original_data(sale_a)
            return {**msg, "90": _original_data(sale_b)}

        stack.proxy.tamper = point_at_sale_b
        assert (await terminal.reverse_last("96")).approved  # the host queues the 0420 of sale A
        assert await eventually(lambda: _answered(stack.proxy, "0430"), timeout_s=10)
        stack.proxy.tamper = None

        assert stack.proxy.answered("0430")[0]["39"] == "A0"  # the issuer saw the change
        # sale B was not reversed at the issuer: both sales are still charged there
        assert await available_fen(terminal, CARD) == 1_000_000 - 5_000 - 100


async def test_every_message_on_a_link_has_its_own_stan_a_reversal_too_and_across_restarts(
    tmp_path: Path, database_url: str
) -> None:
    """Finding 7: a 0420 reused its original's STAN, and the sign-on STAN started again at 900001 on
    every start."""
    settings = stack_settings(tmp_path, database_url, saf_retry_s=0.2)
    async with proxied_stack(settings) as stack:
        async with stack.terminal() as terminal:
            assert (await terminal.sign_in()).approved
            assert (await terminal.sale(CARD, "123456", 700)).approved
            assert (await terminal.reverse_last("98")).approved
        assert await eventually(lambda: _answered(stack.proxy, "0430"), timeout_s=10)
        await stack.restart_host(settings)
        await stack.restart_host(settings)
        async with stack.terminal() as terminal:
            assert (await terminal.sign_in()).approved
            assert (await terminal.sale(CARD, "123456", 800)).approved

        sent = stack.proxy.requests
        stans = [msg["11"] for msg in sent]
        assert len(stack.proxy.sent("0800")) >= 3  # a sign-on per start
        assert len(stans) == len(set(stans)), f"a STAN was used twice on the link: {stans}"
        sale, reversal = stack.proxy.sent("0200")[0], stack.proxy.sent("0420")[0]
        assert reversal["11"] != sale["11"]
        assert reversal["90"] == _original_data(sale)  # the original's STAN travels in field 90
        for msg in sent:
            assert len(msg["11"]) == 6 and msg["11"].isdigit() and msg["11"] != "000000"


async def test_stans_do_not_repeat_on_a_link_after_a_million_transactions_on_other_links(
    tmp_path: Path, database_url: str
) -> None:
    """Finding 7: the network STAN was the transaction's row id modulo 10⁶, so a link's STANs repeated
    once a million transactions had been recorded across all links in a day."""
    settings = stack_settings(tmp_path, database_url)
    async with proxied_stack(settings) as stack, stack.terminal() as terminal:
        assert (await terminal.sign_in()).approved
        assert (await terminal.sale(CARD, "123456", 100)).approved
        # 999,999 transactions for other issuers later (only the row ids matter here) …
        await stack.running.handle.store.run(_skip_transaction_ids(999_999))
        assert (await terminal.sale(CARD, "123456", 200)).approved
        first, second = stack.proxy.sent("0200")
        assert first["11"] != second["11"]
        assert second["37"] != first["37"]


def _skip_transaction_ids(count: int):  # type: ignore[no-untyped-def]
    def skip(session) -> None:  # type: ignore[no-untyped-def]
        last = session.execute(text("SELECT max(id) FROM transactions")).scalar_one()
        if session.bind.dialect.name == "postgresql":
            session.execute(
                text("SELECT setval(pg_get_serial_sequence('transactions', 'id'), :value)"),
                {"value": last + count},
            )
        else:  # SQLite gives max(rowid) + 1: leave a row there, as the other links' last transaction
            session.execute(
                text(
                    "INSERT INTO transactions (id, tid, mid, batch_no, stan, mti, processing_code,"
                    " business_date, kind, amount_fen, currency, state, fallback, stand_in, refunded_fen,"
                    " created_at, updated_at) SELECT :id, '99999999', mid, batch_no, stan, mti,"
                    " processing_code, business_date, kind, amount_fen, currency, 'declined', fallback,"
                    " stand_in, 0, created_at, updated_at FROM transactions WHERE id = :last"
                ),
                {"id": last + count, "last": last},
            )

    return skip


async def _answered(proxy: LinkProxy, mti: str) -> bool:
    return bool(proxy.answered(mti))
