"""The host's own declines (14, 15, A0, 97, 30) and the issuer link's failures (91 at once; 98 then a
reversal delivered when the issuer answers again), end to end on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time

from posgate.bootstrap.stack import Running
from posgate.store.acquirer import pending_saf_count, rotate_key_period
from posgate.terminal import TerminalClient, demo_card, manual_card
from posgate.terminal.messages import sale_request

from .helpers import available_fen, eventually

OK_CARD = demo_card("6229990000000012")
BANK_A = "Demo Bank A"


async def test_a_card_number_failing_luhn_is_declined_14(terminal: TerminalClient) -> None:
    card = manual_card("6229990000000013", "3012", default_pin="123456")
    result = await terminal.sale(card, "123456", 100, entry="manual")
    assert result.response_code == "14"


async def test_a_bin_no_issuer_owns_is_declined_15(terminal: TerminalClient) -> None:
    card = manual_card("6011000000000004", "3012", default_pin="123456")
    result = await terminal.sale(card, "123456", 100, entry="manual")
    assert result.response_code == "15"


async def test_a_wrong_mac_is_declined_a0_and_nothing_is_charged(terminal: TerminalClient) -> None:
    real_mak = terminal.state.mak_hex
    terminal.state.mak_hex = "0123456789ABCDEF0123456789ABCDEF"
    result = await terminal.sale(OK_CARD, "123456", 500)
    assert result.response_code == "A0"
    terminal.state.mak_hex = real_mak
    assert await available_fen(terminal, OK_CARD) == 1_000_000


async def test_a_terminal_not_signed_in_this_key_period_gets_97_and_sign_in_again(
    stack: Running, terminal: TerminalClient
) -> None:
    await stack.handle.store.run(rotate_key_period)
    result = await terminal.sale(OK_CARD, "123456", 100)
    assert result.response_code == "97"
    assert result.sign_in_required
    assert (await terminal.sign_in()).approved
    assert (await terminal.sale(OK_CARD, "123456", 100)).approved


async def test_an_unsupported_transaction_gets_40(terminal: TerminalClient) -> None:
    msg = sale_request(terminal.state, terminal.state.next_stan(), OK_CARD, 100, None, "magstripe", None)
    msg["3"] = "400000"  # a transfer: not offered
    assert (await terminal.exchange(msg)).response_code == "40"


async def test_a_repeated_request_gets_the_first_answer_and_is_charged_once(terminal: TerminalClient) -> None:
    msg = sale_request(terminal.state, terminal.state.next_stan(), OK_CARD, 700, None, "magstripe", None)
    first = await terminal.exchange(dict(msg))
    second = await terminal.exchange(dict(msg))
    assert first.response_code == second.response_code == "00"
    assert (first.rrn, first.auth_code) == (second.rrn, second.auth_code)
    assert second.mac_ok is True
    assert await available_fen(terminal, OK_CARD) == 1_000_000 - 700


async def test_issuer_down_is_declined_91_at_once(stack: Running, terminal: TerminalClient) -> None:
    assert stack.issuers is not None and stack.host is not None
    await stack.issuers.set_online(BANK_A, False)
    link = stack.host.services.links.get(BANK_A)
    assert await eventually(lambda: _is(not link.is_up), timeout_s=3)
    started = time.monotonic()
    result = await terminal.sale(OK_CARD, "123456", 100)
    assert result.response_code == "91"
    assert time.monotonic() - started < 0.5
    # the other bank is unaffected
    assert (await terminal.sale(demo_card("6228880000000024"), "123456", 100)).approved


async def test_issuer_silent_gives_98_then_the_reversal_is_delivered_when_it_answers(
    stack: Running, terminal: TerminalClient
) -> None:
    assert stack.issuers is not None
    stack.issuers.set_fault(BANK_A, "drop_replies")  # the issuer debits but its answer never comes
    result = await terminal.sale(OK_CARD, "123456", 2_500)
    assert result.response_code == "98"
    await asyncio.sleep(1.0)  # retries meanwhile go unanswered too
    assert await stack.handle.store.run(pending_saf_count) == 1
    stack.issuers.set_fault(BANK_A, "none")
    assert await eventually(lambda: _saf_empty(stack), timeout_s=10)
    assert await available_fen(terminal, OK_CARD) == 1_000_000  # debited once, reversed once


async def test_a_garbage_frame_and_a_truncated_frame_do_not_disturb_another_terminal(
    stack: Running, terminal: TerminalClient
) -> None:
    host, port = stack.pos_address
    bad_reader, bad_writer = await asyncio.open_connection(host, port)
    _cut_reader, cut_writer = await asyncio.open_connection(host, port)
    try:
        bad_writer.write(b"\x00\x20" + bytes(range(7, 39)))  # 32 bytes of nonsense
        cut_writer.write(b"\x00\x64" + b"\x60\x00\x03\x00\x00" + b"\x02\x00")  # says 100 bytes, sends 7
        await asyncio.gather(bad_writer.drain(), cut_writer.drain())
        results = await asyncio.gather(*(terminal.sale(OK_CARD, "123456", 100) for _ in range(5)))
        assert [r.response_code for r in results] == ["00"] * 5
        assert await asyncio.wait_for(bad_reader.read(), 5) == b""  # the garbage connection was closed
    finally:
        bad_writer.close()
        cut_writer.close()


async def test_an_undecodable_field_is_answered_30_with_stan_and_tid(terminal: TerminalClient) -> None:
    from posgate.iso8583.codec import decode_pos, encode_pos
    from posgate.iso8583.framing import build_pos_frame, split_pos_frame
    from posgate.terminal.messages import REQUEST_HEADER, request_tpdu

    msg = sale_request(terminal.state, "000777", OK_CARD, 100, None, "magstripe", None)
    payload = bytearray(encode_pos(msg))
    # field 4 (12 BCD digits) sits right after MTI + bitmap + field 3 (+ field 2 absent for swiped cards)
    offset = 2 + 8 + 3
    payload[offset] = 0xAB  # not BCD
    body = await terminal.send_raw(
        build_pos_frame(request_tpdu(terminal.state.nii), REQUEST_HEADER, bytes(payload))
    )
    assert body is not None
    answer = decode_pos(split_pos_frame(body).payload)
    assert (answer["t"], answer["39"], answer["11"], answer["41"]) == ("0210", "30", "000777", "10000001")


async def _is(value: bool) -> bool:
    return value


async def _saf_empty(stack: Running) -> bool:
    return await stack.handle.store.run(pending_saf_count) == 0
