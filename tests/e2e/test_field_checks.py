"""The host's field checks (`CheckFields`, `RefuseUnsupported`) as a terminal sees them, end to end on SQLite
and PostgreSQL: each refused request gets its code (30, 13, 61, 12, 40), nothing is charged, and the values
just inside each bound are served."""

from __future__ import annotations

from posgate.bootstrap.stack import Running
from posgate.terminal import TerminalClient, demo_card
from posgate.terminal.messages import echo_request, sale_request, sign_in_request

from .helpers import available_fen

CARD = demo_card("6229990000000012")  # Demo Bank A, 10,000.00 available


def _sale(terminal: TerminalClient, amount_fen: int) -> dict[str, str]:
    return sale_request(terminal.state, terminal.state.next_stan(), CARD, amount_fen, None, "magstripe", None)


async def test_each_field_check_answers_its_code_and_charges_nothing(
    stack: Running, terminal: TerminalClient
) -> None:
    assert stack.host is not None
    ceiling = stack.host.services.settings.max_amount_fen
    refused = {
        "no amount (13)": (_sale(terminal, 1) | {"4": "000000000000"}, "13"),
        "over the ceiling (61)": (_sale(terminal, ceiling + 1), "61"),
        "dollars (12)": (_sale(terminal, 100) | {"49": "840"}, "12"),
        "no entry mode (30)": ({k: v for k, v in _sale(terminal, 100).items() if k != "22"}, "30"),
        "no card (30)": ({k: v for k, v in _sale(terminal, 100).items() if k != "35"}, "30"),
        "a transfer (40)": (_sale(terminal, 100) | {"3": "400000"}, "40"),
    }
    for what, (msg, code) in refused.items():
        assert (await terminal.exchange(msg)).response_code == code, what
    assert await available_fen(terminal, CARD) == 1_000_000
    # just inside the bounds: 0.01 and the ceiling itself reach the issuer (which has too little for it)
    assert (await terminal.exchange(_sale(terminal, 1))).response_code == "00"
    assert (await terminal.exchange(_sale(terminal, ceiling))).response_code == "51"
    assert await available_fen(terminal, CARD) == 1_000_000 - 1


async def test_a_network_message_with_an_unlisted_code_is_30(terminal: TerminalClient) -> None:
    state = terminal.state
    for msg in (
        sign_in_request(state, state.next_stan()) | {"60": "00000001999"},
        echo_request(state, state.next_stan()) | {"60": "00000001003"},
        {k: v for k, v in echo_request(state, state.next_stan()).items() if k != "60"},
        echo_request(state, state.next_stan()) | {"60": "0000000"},  # 60 does not parse
    ):
        assert (await terminal.exchange(msg)).response_code == "30", msg
    assert (await terminal.exchange(echo_request(state, state.next_stan()))).response_code == "00"
