"""Two host nodes on one store (as behind a TCP load balancer): a terminal may sign in on one and sell on
the other; the duplicate check and the reversal queue are the database's, not a node's."""

from __future__ import annotations

from pathlib import Path

from posgate.bootstrap.host import start_host
from posgate.bootstrap.stack import start_all
from posgate.logs import configure_logging
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state
from posgate.terminal.messages import sale_request

from .conftest import stack_settings
from .helpers import available_fen

CARD = demo_card("6229990000000012")


async def test_a_terminal_signs_in_on_one_node_and_sells_on_another(
    tmp_path: Path, database_url: str
) -> None:
    settings = stack_settings(tmp_path, database_url, terminal_cache_s=30.0)
    configure_logging(settings.data_dir, "INFO", console=False)
    first = await start_all(settings)
    assert first.issuers is not None
    second = await start_host(settings, first.handle, issuer_ports=dict(first.issuers.ports))
    try:
        await second.services.links.wait_up(3)
        state = demo_terminal_state()
        node_a = TerminalClient(*first.pos_address, state)
        node_b = TerminalClient(*second.address, state)
        async with node_a, node_b:
            assert (await node_a.sign_in()).approved
            assert (
                await node_b.sale(CARD, "123456", 100)
            ).approved  # promotes A's keys, forgets the terminal
            assert (await node_b.sale(CARD, "123456", 50)).approved  # node B caches the terminal now
            assert (await node_a.sign_in()).approved  # fresh keys, issued by node A
            sale = await node_b.sale(CARD, "123456", 200)  # node B's cached keys are stale: it looks again
            assert sale.response_code == "00" and sale.mac_ok
            # the same request sent to both nodes is processed once
            msg = sale_request(state, state.next_stan(), CARD, 300, None, "magstripe", None)
            on_a = await node_a.exchange(dict(msg))
            on_b = await node_b.exchange(dict(msg))
            assert (on_a.rrn, on_a.auth_code) == (on_b.rrn, on_b.auth_code)
            assert await available_fen(node_a, CARD) == 1_000_000 - 650
    finally:
        await second.stop()
        await first.stop()
