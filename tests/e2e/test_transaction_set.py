"""The whole POS transaction set end to end (terminal simulator → host → issuer simulator), on SQLite and
PostgreSQL: chip and contactless with ARQC/ARPC, voids, refunds, pre-authorization and completion, their
voids and reversals, settlement with batch upload, stand-in."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update

from posgate.bootstrap.stack import Running, start_all
from posgate.config import IssuerConfig
from posgate.store.acquirer import pending_saf_count
from posgate.store.models import ReconciliationItem, Terminal, Transaction
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state
from posgate.terminal.messages import Original, financial_request

from .conftest import stack_settings
from .helpers import available_fen, eventually

DEBIT = demo_card("6229990000000012")  # 10,000.00
CHIP = demo_card("6228880000000016")  # credit, chip, limit 50,000.00
CREDIT = demo_card("6228880000000024")  # credit, magstripe, limit 2,000.00


async def _txn(stack: Running, rrn: str) -> Transaction:
    return await stack.handle.store.run(lambda s: s.get(Transaction, int(rrn)))


async def test_chip_and_contactless_sales_carry_an_arqc_and_the_terminal_checks_the_arpc(
    stack: Running, terminal: TerminalClient
) -> None:
    chip = await terminal.sale(CHIP, "123456", 10_000, entry="chip")
    assert chip.response_code == "00" and chip.mac_ok and chip.arpc_ok is True
    tap = await terminal.sale(CHIP, "123456", 2_000, entry="contactless")
    assert tap.response_code == "00" and tap.arpc_ok is True
    fallback = await terminal.sale(CHIP, "123456", 3_000, entry="fallback")
    assert fallback.response_code == "00"
    recorded = await _txn(stack, chip.rrn or "")
    assert (recorded.entry_mode[:2], recorded.card_seq) == ("05", "001")
    assert (await _txn(stack, tap.rrn or "")).entry_mode[:2] == "07"
    assert (await _txn(stack, fallback.rrn or "")).fallback is True
    assert await available_fen(terminal, CHIP) == 5_000_000 - 15_000


async def test_a_tampered_arqc_is_declined_05(terminal: TerminalClient) -> None:
    result = await terminal.sale(CHIP, "123456", 10_000, entry="chip", tamper_arqc=True)
    assert result.response_code == "05"
    assert await available_fen(terminal, CHIP) == 5_000_000


async def test_void_undoes_a_sale_once_and_checks_the_original(terminal: TerminalClient) -> None:
    sale = await terminal.sale(DEBIT, "123456", 5_000)
    assert sale.approved and sale.rrn
    wrong_amount = await terminal.exchange(_void_message(terminal, sale.rrn, 4_000))
    assert wrong_amount.response_code == "64"
    unknown = await terminal.exchange(_void_message(terminal, "000000999999", 5_000))
    assert unknown.response_code == "25"
    void = await terminal.void(sale.rrn, DEBIT)
    assert void.response_code == "00" and void.mac_ok
    assert await available_fen(terminal, DEBIT) == 1_000_000
    again = await terminal.exchange(_void_message(terminal, sale.rrn, 5_000))
    assert again.response_code == "12"  # already voided


async def test_a_void_from_another_batch_is_12_even_before_it_settles(terminal: TerminalClient) -> None:
    sale = await terminal.sale(DEBIT, "123456", 5_000)
    assert sale.rrn
    void = _void_message(terminal, sale.rrn, 5_000)
    void["60"] = void["60"][:2] + f"{int(void['60'][2:8]) + 1:06d}" + void["60"][8:]  # 60.2: the next batch
    assert (await terminal.exchange(void)).response_code == "12"
    assert await available_fen(terminal, DEBIT) == 1_000_000 - 5_000


async def test_refunds_are_partial_summed_and_capped_at_the_original(terminal: TerminalClient) -> None:
    sale = await terminal.sale(DEBIT, "123456", 10_000)
    assert sale.rrn
    assert (await terminal.refund(sale.rrn, DEBIT, 3_000)).response_code == "00"
    assert (await terminal.refund(sale.rrn, DEBIT, 6_000)).response_code == "00"
    assert (await terminal.refund(sale.rrn, DEBIT, 1_001)).response_code == "64"  # only 10.00 left
    assert (await terminal.refund(sale.rrn, DEBIT, 1_000)).response_code == "00"
    assert await available_fen(terminal, DEBIT) == 1_000_000


async def test_preauth_holds_completion_takes_up_to_115_percent_and_releases_the_rest(
    terminal: TerminalClient,
) -> None:
    preauth = await terminal.preauth(CREDIT, "123456", 100_000)
    assert preauth.response_code == "00" and preauth.rrn
    assert await available_fen(terminal, CREDIT) == 200_000 - 100_000
    over = await terminal.exchange(_completion_message(terminal, preauth, 115_001))
    assert over.response_code == "64"
    completion = await terminal.complete(preauth.rrn, CREDIT, 115_000)  # exactly 115 %: allowed
    assert completion.response_code == "00" and completion.mac_ok
    assert await available_fen(terminal, CREDIT) == 200_000 - 115_000  # hold released, 1,150.00 used
    assert completion.rrn
    assert (await terminal.complete_void(completion.rrn, CREDIT)).response_code == "00"
    assert await available_fen(terminal, CREDIT) == 200_000


async def test_preauth_void_releases_the_hold(terminal: TerminalClient) -> None:
    preauth = await terminal.preauth(CREDIT, "123456", 50_000)
    assert preauth.rrn
    assert await available_fen(terminal, CREDIT) == 150_000
    assert (await terminal.preauth_void(preauth.rrn, CREDIT)).response_code == "00"
    assert await available_fen(terminal, CREDIT) == 200_000


async def test_reversal_of_each_reversible_kind_restores_the_account(terminal: TerminalClient) -> None:
    preauth = await terminal.preauth(CREDIT, "123456", 40_000)
    assert preauth.approved
    assert (await terminal.reverse_last("98")).response_code == "00"
    assert await available_fen(terminal, CREDIT) == 200_000

    sale = await terminal.sale(DEBIT, "123456", 7_000)
    assert sale.rrn
    assert (await terminal.void(sale.rrn, DEBIT)).approved
    assert (await terminal.reverse_last("98")).response_code == "00"  # the void is undone: the sale stands
    assert await available_fen(terminal, DEBIT) == 1_000_000 - 7_000
    again = await terminal.void(sale.rrn, DEBIT)  # and can be voided again
    assert again.response_code == "00"
    assert await available_fen(terminal, DEBIT) == 1_000_000


async def test_settlement_balanced_closes_the_batch_and_voids_of_it_are_refused(
    stack: Running, terminal: TerminalClient
) -> None:
    sale = await terminal.sale(DEBIT, "123456", 1_500)
    refund_of = await terminal.sale(DEBIT, "123456", 2_500)
    assert sale.rrn and refund_of.rrn
    assert (await terminal.refund(refund_of.rrn, DEBIT, 500)).approved
    settled = await terminal.settle()
    assert settled.balanced and settled.settled and settled.uploaded == 0
    tid_batch = await stack.handle.store.run(
        lambda s: s.scalar(select(Terminal.batch_no).where(Terminal.tid == "10000001"))
    )
    assert tid_batch == "000002" == terminal.state.batch
    late_void = await terminal.exchange(
        _void_message(terminal, sale.rrn, 1_500, batch="000001", stan=sale.stan)
    )
    assert late_void.response_code == "12"


async def test_an_unbalanced_batch_is_uploaded_and_every_difference_is_reported(
    stack: Running, terminal: TerminalClient
) -> None:
    first = await terminal.sale(DEBIT, "123456", 1_000)
    second = await terminal.sale(DEBIT, "123456", 2_000)
    assert first.approved and second.approved
    # the host approved a sale the terminal never recorded (its answer was lost, say)
    lost = await terminal.sale(DEBIT, "123456", 3_000)
    assert lost.approved
    terminal.state.journal.remove(_entry(terminal, lost.rrn or ""))
    settled = await terminal.settle()
    assert not settled.balanced and settled.settled and settled.uploaded == 2
    items = await stack.handle.store.run(lambda s: list(s.scalars(select(ReconciliationItem))))
    assert [(i.kind, i.host_amount_fen) for i in items] == [("missing_on_terminal", 3_000)]


async def test_stand_in_approves_within_limits_while_the_issuer_is_down_and_advises_it_later(
    tmp_path: Path, database_url: str
) -> None:
    from posgate.fixtures.document import read_demo_fixture

    bank = read_demo_fixture().bank("Demo Bank A")
    stand_in = IssuerConfig(
        name=bank.name,
        bins=bank.bins,
        port=bank.port,
        zpk=bank.zpk,
        zak=bank.zak,
        stand_in_max_fen=5_000,
        stand_in_card_daily_fen=8_000,
    )
    running = await start_all(stack_settings(tmp_path, database_url, issuers=[stand_in]))
    try:
        assert running.issuers is not None and running.host is not None
        host, port = running.pos_address
        async with TerminalClient(host, port, demo_terminal_state()) as terminal:
            assert (await terminal.sign_in()).approved
            await running.issuers.set_online(bank.name, False)
            link = running.host.services.links.get(bank.name)
            assert await eventually(lambda: _false(link.is_up), timeout_s=3)
            first = await terminal.sale(DEBIT, "123456", 5_000)
            assert first.response_code == "00"
            assert (await _txn(running, first.rrn or "")).stand_in is True
            assert (await terminal.sale(DEBIT, "123456", 5_001)).response_code == "91"  # over per transaction
            assert (
                await terminal.sale(DEBIT, "123456", 4_000)
            ).response_code == "91"  # over per card per day
            await running.issuers.set_online(bank.name, True)
            assert await eventually(lambda: _no_pending_advice(running), timeout_s=10)
            assert await available_fen(terminal, DEBIT) == 1_000_000 - 5_000
    finally:
        await running.stop()


# ---- helpers: hand-built requests for the checks the simulator's own API would refuse to send ----------


def _entry(terminal: TerminalClient, rrn: str):  # type: ignore[no-untyped-def]
    return next(e for e in terminal.state.journal if e.rrn == rrn)


def _void_message(
    terminal: TerminalClient, rrn: str, amount_fen: int, batch: str | None = None, stan: str | None = None
) -> dict:
    from posgate.terminal.messages import sale_request

    known = [e for e in terminal.state.journal if e.rrn == rrn]
    stan = stan or (known[0].stan if known else "000001")
    msg = sale_request(terminal.state, terminal.state.next_stan(), DEBIT, amount_fen, None, "magstripe", None)
    msg.update({"3": "200000", "37": rrn, "61": (batch or terminal.state.batch) + stan})
    msg["60"] = "23" + msg["60"][2:]
    return msg


def _completion_message(terminal: TerminalClient, preauth, amount_fen: int) -> dict:  # type: ignore[no-untyped-def]
    from posgate.terminal.messages import sale_request

    msg = sale_request(
        terminal.state, terminal.state.next_stan(), CREDIT, amount_fen, None, "magstripe", None
    )
    original = _entry(terminal, preauth.rrn)
    msg.update(
        {
            "25": "06",
            "37": preauth.rrn,
            "38": preauth.auth_code,
            "61": original.batch + original.stan + original.date,
        }
    )
    msg["60"] = "20" + msg["60"][2:]
    return msg


async def _false(value: bool) -> bool:
    return not value


async def _no_pending_advice(running: Running) -> bool:
    return await running.handle.store.run(lambda s: pending_saf_count(s, "0220")) == 0


__all__ = ["update"]


async def test_the_declines_of_each_kind(terminal: TerminalClient) -> None:
    assert (await terminal.preauth(CREDIT, "123456", 250_000)).response_code == "51"  # over the limit
    preauth = await terminal.preauth(CREDIT, "123456", 30_000)
    assert preauth.rrn
    wrong_code = _completion_message(terminal, preauth, 30_000)
    wrong_code["38"] = "000000"
    assert (await terminal.exchange(wrong_code)).response_code == "25"
    void_msg = _completion_message(terminal, preauth, 20_000)  # a pre-auth void must carry the full amount
    void_msg.update({"t": "0100", "3": "200000"})
    void_msg["60"] = "11" + void_msg["60"][2:]
    assert (await terminal.exchange(void_msg)).response_code == "64"
    unknown_refund = _void_message(terminal, "000000999999", 100)
    unknown_refund.update({"t": "0220", "61": unknown_refund["61"] + "0101"})
    unknown_refund["60"] = "25" + unknown_refund["60"][2:]
    assert (await terminal.exchange(unknown_refund)).response_code == "25"
    completion = await terminal.complete(preauth.rrn, CREDIT, 30_000)
    assert completion.rrn and completion.approved
    assert (await terminal.complete_void(completion.rrn, CREDIT)).approved
    again = _completion_message(terminal, preauth, 30_000)
    again.update(
        {"3": "200000", "37": completion.rrn, "61": _entry(terminal, completion.rrn).batch + completion.stan}
    )
    again["60"] = "21" + again["60"][2:]
    assert (await terminal.exchange(again)).response_code == "12"  # already voided


async def test_reversals_of_completions_and_of_their_voids(terminal: TerminalClient) -> None:
    preauth = await terminal.preauth(CREDIT, "123456", 60_000)
    assert preauth.rrn
    assert (await terminal.complete(preauth.rrn, CREDIT, 50_000)).approved
    assert await available_fen(terminal, CREDIT) == 200_000 - 50_000
    assert (await terminal.reverse_last("98")).response_code == "00"  # the hold is back
    assert await available_fen(terminal, CREDIT) == 200_000 - 60_000
    completion = await terminal.complete(preauth.rrn, CREDIT, 60_000)  # the pre-auth can be completed again
    assert completion.approved and completion.rrn
    assert (await terminal.complete_void(completion.rrn, CREDIT)).approved
    assert await available_fen(terminal, CREDIT) == 200_000
    assert (await terminal.reverse_last("98")).response_code == "00"  # the completion stands again
    assert await available_fen(terminal, CREDIT) == 200_000 - 60_000
    other = await terminal.preauth(CREDIT, "123456", 10_000)
    assert other.rrn and (await terminal.preauth_void(other.rrn, CREDIT)).approved
    assert (await terminal.reverse_last("98")).response_code == "00"  # the pre-auth void is undone
    assert await available_fen(terminal, CREDIT) == 200_000 - 70_000


async def test_a_partly_refunded_sale_can_be_neither_voided_nor_reversed(terminal: TerminalClient) -> None:
    sale = await terminal.sale(DEBIT, "123456", 1_000)
    assert sale.rrn
    last = terminal.state.last
    assert (await terminal.refund(sale.rrn, DEBIT, 400)).approved
    assert (await terminal.exchange(_void_message(terminal, sale.rrn, 1_000))).response_code == "12"
    terminal.state.last = last  # a confused terminal reverses the sale anyway
    assert (await terminal.reverse_last("98")).response_code == "00"  # answered, but nothing is paid twice
    assert await available_fen(terminal, DEBIT) == 1_000_000 - 600


async def test_a_refund_of_an_earlier_batch_names_its_original_by_rrn_and_date(
    terminal: TerminalClient,
) -> None:
    sale = await terminal.sale(DEBIT, "123456", 2_000)
    assert sale.rrn
    assert (await terminal.settle()).settled  # the terminal's journal forgets the batch
    refund = await terminal.refund(sale.rrn, DEBIT, 500, original_date=_entry_date(sale))
    assert refund.response_code == "00"
    assert await available_fen(terminal, DEBIT) == 1_000_000 - 1_500


async def test_a_malformed_field_61_is_a_format_error(terminal: TerminalClient) -> None:
    sale = await terminal.sale(DEBIT, "123456", 700)
    assert sale.rrn
    bad = _void_message(terminal, sale.rrn, 700)
    bad["61"] = "0000010000"  # 10 digits: neither batch + STAN nor batch + STAN + date
    assert (await terminal.exchange(bad)).response_code == "30"


def _entry_date(result) -> str:  # type: ignore[no-untyped-def]
    return result.fields.get("13", "")


async def test_a_preauth_void_without_field_61_is_found_by_its_rrn(terminal: TerminalClient) -> None:
    """Field 61 is optional in a pre-authorization void: without it the host finds the pre-authorization
    by its RRN (37) alone and releases the hold."""
    preauth = await terminal.preauth(CREDIT, "123456", 30_000)
    assert preauth.rrn and preauth.auth_code
    state = terminal.state
    original = Original(rrn=preauth.rrn, batch=state.batch, stan=preauth.stan, auth_code=preauth.auth_code)
    msg = financial_request(
        "preauth_void", state, state.next_stan(), CREDIT, amount_fen=30_000, original=original
    )
    del msg["61"]
    answer = await terminal.exchange(msg)
    assert answer.response_code == "00", answer.summary()
    assert await available_fen(terminal, CREDIT) == 200_000
