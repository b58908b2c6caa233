"""A terminal's 0400 that the host handles before the sale it reverses (found by the chaos run, see below).

A terminal whose sale got no answer reverses it (0400, same STAN). If the host reads the two together — it
was frozen with both in its socket buffer, or the 0200 was slower through the first steps — the pipelines
run concurrently and the 0400 can be handled first: ReverseOriginal finds no original and answers `00`
("whether or not the original was seen"), then the 0200 is recorded, sent to the issuer and approved. The
terminal has a reversed sale; the host an approved one that clears; the card is charged.

Found by `python -m tests.chaos --rounds 50 --seed 2026 --variant postgresql/split` (freeze_host):
"terminal reversal honoured: TID 70000005 STAN 000147: reversed by its terminal, host state approved"; the
host log shows `0400 reversal … stan=000147 rc=00` at 10:46:33.269 and `0200 sale … stan=000147 rc=00` at
10:46:33.333, both read after a 4.2 s freeze. Here the order is made deterministic: the 0400 is sent
first, then the 0200 with the same STAN. The issuer simulator handles the same case at its level (a 0420
before its 0200 leaves a tombstone; the late original is declined): the host should too.
"""

from __future__ import annotations

import pytest

from posgate.terminal import TerminalClient, demo_card
from posgate.terminal.messages import last_transaction, sale_request

from .helpers import available_fen

OK_CARD = demo_card("debit-ok")


@pytest.mark.xfail(strict=True, reason="issue 9: a 0400 handled before its sale lets the sale through")
async def test_a_sale_arriving_after_its_own_reversal_is_not_approved(terminal: TerminalClient) -> None:
    before = await available_fen(terminal, OK_CARD)
    state = terminal.state
    msg = sale_request(state, state.next_stan(), OK_CARD, 700, None, "magstripe", None)
    state.last = last_transaction(msg, "sale")

    reversal = await terminal.reverse_last("98")  # the 0400 first: the host has not seen the sale
    assert reversal.response_code == "00", reversal.summary()

    late = await terminal.exchange(msg)  # then the sale it reverses
    assert late.response_code != "00", "a sale its terminal had reversed was approved"
    assert await available_fen(terminal, OK_CARD) == before, "the card was charged"
