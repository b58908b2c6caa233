"""Field 48 has n3 counts: a batch whose host totals do not fit is refused with `96`, without a traceback,
instead of an 0510 whose field 48 is 32+ digits with the settlement code shifted (found by the property
test tests/fuzz/test_properties.py::test_settlement_totals_render_then_parse_is_the_identity)."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select

from posgate.bootstrap.stack import Running
from posgate.store.models import BatchSettlement, Transaction
from posgate.terminal import TerminalClient


async def test_a_batch_of_1000_sales_gets_96_and_stays_open(
    stack: Running, terminal: TerminalClient, caplog
) -> None:  # type: ignore[no-untyped-def]
    state = terminal.state
    today = dt.datetime.now(dt.UTC).date()

    def thousand_sales(session) -> None:  # type: ignore[no-untyped-def]
        session.add_all(
            Transaction(
                tid=state.tid,
                mid=state.mid,
                batch_no=state.batch,
                stan=f"{100_000 + i:06d}",
                mti="0200",
                processing_code="000000",
                business_date=today,
                kind="sale",
                amount_fen=1,
                state="approved",
            )
            for i in range(1_000)
        )

    await stack.handle.store.run(thousand_sales)
    with caplog.at_level(logging.INFO):
        outcome = await terminal.settle()
    assert [r.response_code for r in outcome.responses] == ["96"]
    assert not outcome.balanced
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    rows = await stack.handle.store.run(lambda s: list(s.scalars(select(BatchSettlement))))
    assert rows == []  # nothing written: the batch stays open
