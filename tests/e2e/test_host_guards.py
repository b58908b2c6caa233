"""The host's guards, attacked over the wire (terminal simulator or raw frames → host → issuer), on SQLite
and PostgreSQL: a request without the MAC its MTI requires, an issuer reply whose MAC does not verify, a
refund reservation given back when the issuer declines the refund.

Each of these guards was once disabled on purpose and the rest of the suite stayed green; the tests here
are the ones that go red (docs/testing.md, "Mutation testing")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import iso8583
import iso8583.specs
import psec
import pytest
from sqlalchemy import select, update

from posgate.bootstrap.host import start_host
from posgate.bootstrap.stack import Running, start_all
from posgate.config import IssuerConfig
from posgate.iso8583.codec import decode_pos, encode_pos
from posgate.iso8583.framing import build_pos_frame, split_pos_frame
from posgate.logs import configure_logging
from posgate.security.keys import kcv
from posgate.store.models import Merchant, SafEntry, Terminal, Transaction
from posgate.store.models_onboarding import AuditEvent
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state, manual_card
from posgate.terminal.messages import (
    REQUEST_HEADER,
    request_tpdu,
    reversal_request,
    sale_request,
)

from .conftest import stack_settings
from .helpers import available_fen, eventually

OK_CARD = demo_card("6229990000000012")  # Demo Bank A, 10,000.00
BANK_A = "Demo Bank A"


async def _send_without_mac(terminal: TerminalClient, msg: dict[str, str]) -> dict[str, str]:
    """`msg` framed as the terminal would, but with no field 64; the host's answer, decoded."""
    assert "64" not in msg
    frame = build_pos_frame(request_tpdu(terminal.state.nii), REQUEST_HEADER, encode_pos(msg))
    body = await terminal.send_raw(frame)
    assert body is not None, "the host did not answer"
    return decode_pos(split_pos_frame(body).payload)


# ---- a request without the MAC its MTI requires


async def test_a_sale_without_a_mac_is_declined_a0_and_nothing_is_charged(terminal: TerminalClient) -> None:
    msg = sale_request(terminal.state, terminal.state.next_stan(), OK_CARD, 5_000, None, "magstripe")
    answer = await _send_without_mac(terminal, msg)
    assert (answer["t"], answer["39"], answer["11"]) == ("0210", "A0", msg["11"])
    assert await available_fen(terminal, OK_CARD) == 1_000_000


async def test_a_request_without_a_mac_is_in_the_key_trail_as_absent(
    stack: Running, terminal: TerminalClient
) -> None:
    """The refused request stores no transaction: the audit trail says which terminal sent what without a
    MAC, and under which MAK it would have been checked (the KCV, never the key)."""
    msg = sale_request(terminal.state, terminal.state.next_stan(), OK_CARD, 5_000, None, "magstripe")
    assert (await _send_without_mac(terminal, msg))["39"] == "A0"

    def refusals(session):  # type: ignore[no-untyped-def]
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "mac_verify_failed"))
        return [(e.actor, e.subject_ref, json.loads(e.detail)) for e in events]

    [(actor, ref, detail)] = await stack.handle.store.run(refusals)
    assert (actor, ref) == ("host", "terminal/10000001")
    assert (detail["mti"], detail["stan"], detail["why"]) == ("0200", msg["11"], "absent")
    assert terminal.state.mak is not None and detail["mak_kcvs"] == [kcv(terminal.state.mak)]


async def test_a_reversal_without_a_mac_does_not_undo_the_sale(terminal: TerminalClient) -> None:
    sale = await terminal.sale(OK_CARD, "123456", 2_500)
    assert sale.approved
    last = terminal.state.last
    assert last is not None
    forged = reversal_request(terminal.state, last, "98")
    answer = await _send_without_mac(terminal, forged)
    assert (answer["t"], answer["39"]) == ("0410", "A0")
    assert await available_fen(terminal, OK_CARD) == 1_000_000 - 2_500  # the sale stands


# ---- a copy of a request still in flight


async def test_a_copy_of_a_request_still_in_flight_is_94_and_charges_nothing_more(
    tmp_path: Path, database_url: str
) -> None:
    running = await start_all(stack_settings(tmp_path, database_url, issuer_timeout_s=5.0))
    try:
        assert running.issuers is not None
        running.issuers.set_fault(BANK_A, "drop_replies")  # the first request waits for the issuer
        async with (
            TerminalClient(*running.pos_address, demo_terminal_state(), timeout_s=10.0) as terminal,
            TerminalClient(*running.pos_address, terminal.state, timeout_s=10.0) as other,
        ):
            assert (await terminal.sign_in()).approved
            msg = sale_request(terminal.state, terminal.state.next_stan(), OK_CARD, 800, None, "magstripe")
            first = asyncio.create_task(terminal.exchange(dict(msg)))
            assert await eventually(lambda: _recorded(running, msg["11"], "pending"), timeout_s=5)
            copy = await other.exchange(dict(msg))  # the first still waits for the issuer
            assert copy.response_code == "94"
            assert (await first).response_code == "98"
            running.issuers.set_fault(BANK_A, "none")
            assert await eventually(lambda: _available_is(terminal, 1_000_000), timeout_s=10)
    finally:
        await running.stop()


async def _recorded(running: Running, stan: str, state: str) -> bool:
    def states(session) -> list[str]:  # type: ignore[no-untyped-def]
        return list(session.scalars(select(Transaction.state).where(Transaction.stan == stan)))

    return await running.handle.store.run(states) == [state]


# ---- a terminal's reversal


async def test_a_reversal_names_its_original_and_queues_the_0420_with_the_terminals_reason(
    stack: Running, terminal: TerminalClient
) -> None:
    sale = await terminal.sale(OK_CARD, "123456", 1_500)
    assert sale.approved and sale.rrn
    assert (await terminal.reverse_last("96")).response_code == "00"

    def recorded(session):  # type: ignore[no-untyped-def]
        reversal = session.scalar(select(Transaction).where(Transaction.mti == "0400"))
        queued = session.scalar(select(SafEntry).where(SafEntry.transaction_id == int(sale.rrn or "0")))
        return reversal.original_id, queued.mti, queued.reason_code

    assert await stack.handle.store.run(recorded) == (int(sale.rrn), "0420", "96")
    assert await available_fen(terminal, OK_CARD) == 1_000_000


async def test_a_partly_refunded_sale_is_not_reversed_and_the_log_says_why(
    terminal: TerminalClient, caplog: pytest.LogCaptureFixture
) -> None:
    sale = await terminal.sale(OK_CARD, "123456", 1_000)
    assert sale.rrn
    last = terminal.state.last
    assert (await terminal.refund(sale.rrn, OK_CARD, 400)).approved
    terminal.state.last = last
    with caplog.at_level(logging.WARNING, logger="posgate.host"):
        assert (await terminal.reverse_last("98")).response_code == "00"
    assert f"not reversing RRN {sale.rrn}: it has been partly refunded" in caplog.messages
    assert await available_fen(terminal, OK_CARD) == 1_000_000 - 600


# ---- a void names its original twice (37 and 61), and only its own merchant's, its own terminal's


def _void_of(terminal: TerminalClient, rrn: str, amount_fen: int, field61: str) -> dict[str, str]:
    msg = sale_request(terminal.state, terminal.state.next_stan(), OK_CARD, amount_fen, None, "magstripe")
    msg.update({"3": "200000", "37": rrn, "61": field61})
    msg["60"] = "23" + msg["60"][2:]
    return msg


async def test_a_void_whose_37_and_61_name_different_sales_is_25(terminal: TerminalClient) -> None:
    first = await terminal.sale(OK_CARD, "123456", 1_100)
    second = await terminal.sale(OK_CARD, "123456", 1_100)
    assert first.rrn and second.rrn
    batch = terminal.state.batch
    for field61 in (batch + second.stan, f"{int(batch) + 1:06d}" + first.stan):  # other STAN, other batch
        assert (await terminal.exchange(_void_of(terminal, first.rrn, 1_100, field61))).response_code == "25"
    assert (await terminal.exchange(_void_of(terminal, first.rrn, 1_100, batch + first.stan))).approved
    assert await available_fen(terminal, OK_CARD) == 1_000_000 - 1_100


@pytest.mark.parametrize("owner", ["mid", "tid"])
async def test_a_void_of_another_merchants_or_terminals_sale_is_25(
    stack: Running, terminal: TerminalClient, owner: str
) -> None:
    sale = await terminal.sale(OK_CARD, "123456", 1_200)
    assert sale.rrn
    other = {"mid": "898440153110999", "tid": "10000099"}[owner]
    txn_id = int(sale.rrn)
    await stack.handle.store.run(
        lambda s: s.execute(update(Transaction).where(Transaction.id == txn_id).values({owner: other}))
    )
    void = _void_of(terminal, sale.rrn, 1_200, terminal.state.batch + sale.stan)
    assert (await terminal.exchange(void)).response_code == "25"
    assert await available_fen(terminal, OK_CARD) == 1_000_000 - 1_200


# ---- a PIN block that does not open


async def test_a_pin_block_that_is_not_format_0_is_96_and_never_reaches_the_issuer(
    terminal: TerminalClient,
) -> None:
    pik = terminal.state.pik
    assert pik is not None
    garbage = psec.des.encrypt_tdes_ecb(pik, bytes.fromhex("F" * 16)).hex().upper()  # format nibble F
    for _ in range(3):  # the issuer would block the card after 3 wrong PINs (75)
        msg = sale_request(terminal.state, terminal.state.next_stan(), OK_CARD, 100, garbage, "magstripe")
        assert (await terminal.exchange(msg)).response_code == "96"  # one rule with the issuer's: not 55
    assert (await terminal.sale(OK_CARD, "123456", 100)).response_code == "00"
    assert await available_fen(terminal, OK_CARD) == 1_000_000 - 100


# ---- an issuer reply whose MAC does not verify


class ReplyTamperingProxy:
    """Between the host and an issuer: passes every frame, but while `tamper` is set changes each reply
    whose MTI is in `mtis` (0210 unless told): `flip` changes its last character (the MAC's last hex
    digit, the MAC being the last field), `strip` takes the MAC away (field 64 and its bit in the primary
    bitmap)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.tamper = True
        self.mtis: tuple[bytes, ...] = (b"0210",)
        self.mode = "flip"
        self.tampered = 0
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _accept(self, host_reader: asyncio.StreamReader, host_writer: asyncio.StreamWriter) -> None:
        issuer_reader, issuer_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for pump in (
            self._pump(host_reader, issuer_writer, lambda body: body),
            self._pump(issuer_reader, host_writer, self._maybe_tamper),
        ):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _maybe_tamper(self, body: bytes) -> bytes:
        if not (self.tamper and body[:4] in self.mtis):
            return body
        self.tampered += 1
        if self.mode == "strip":
            bitmap = int(body[4:20], 16)
            assert bitmap & 1 and not bitmap >> 63, "field 64 last in a primary-bitmap message expected"
            return body[:4] + f"{bitmap & ~1:016X}".encode() + body[20:-16]
        last = body[-1:]
        return body[:-1] + (b"1" if last == b"0" else b"0")

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, change: Callable[[bytes], bytes]
    ) -> None:
        try:
            while True:
                (length,) = struct.unpack(">H", await reader.readexactly(2))
                body = change(await reader.readexactly(length))
                writer.write(struct.pack(">H", len(body)) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def stack_behind_proxy(
    tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[Running, ReplyTamperingProxy]]:
    """The issuer simulator, and the host reaching Demo Bank A through a `ReplyTamperingProxy`."""
    settings = stack_settings(tmp_path, database_url, issuer_timeout_s=5.0)  # a loaded machine is slow
    configure_logging(settings.data_dir, "INFO", console=False)
    running = await start_all(settings, host=False)
    assert running.issuers is not None
    ports = dict(running.issuers.ports)
    proxy = ReplyTamperingProxy(ports[BANK_A])
    ports[BANK_A] = await proxy.start()
    running.host = await start_host(settings, running.handle, issuer_ports=ports)
    try:
        assert await running.host.services.links.wait_up(5.0)
        yield running, proxy
    finally:
        await running.stop()
        await proxy.stop()


async def test_an_issuer_approval_whose_mac_fails_is_not_an_approval_and_is_reversed(
    stack_behind_proxy: tuple[Running, ReplyTamperingProxy],
) -> None:
    running, proxy = stack_behind_proxy
    async with TerminalClient(*running.pos_address, demo_terminal_state(), timeout_s=5.0) as terminal:
        assert (await terminal.sign_in()).approved
        result = await terminal.sale(OK_CARD, "123456", 4_200)
        assert proxy.tampered == 1
        assert result.response_code == "96", result.summary()
        proxy.tamper = False
        # the issuer did debit the card; the host's reversal gives it back
        assert await eventually(lambda: _available_is(terminal, 1_000_000), timeout_s=8)


async def test_an_issuer_approval_without_a_mac_is_not_an_approval_and_is_reversed(
    stack_behind_proxy: tuple[Running, ReplyTamperingProxy],
) -> None:
    running, proxy = stack_behind_proxy
    proxy.mode = "strip"
    async with TerminalClient(*running.pos_address, demo_terminal_state(), timeout_s=5.0) as terminal:
        assert (await terminal.sign_in()).approved
        result = await terminal.sale(OK_CARD, "123456", 4_300)
        assert proxy.tampered == 1
        assert result.response_code == "96", result.summary()
        proxy.tamper = False
        assert await eventually(lambda: _available_is(terminal, 1_000_000), timeout_s=8)


async def test_a_reversal_whose_answer_fails_its_mac_stays_queued_until_an_answer_verifies(
    stack_behind_proxy: tuple[Running, ReplyTamperingProxy],
) -> None:
    """An 0430 whose MAC does not verify is not the issuer's word: the 0420 stays queued and is sent again
    (the issuer applies a reversal once) until an answer verifies. It was marked delivered at once."""
    running, proxy = stack_behind_proxy
    proxy.tamper, proxy.mtis = False, (b"0430",)
    async with TerminalClient(*running.pos_address, demo_terminal_state(), timeout_s=5.0) as terminal:
        assert (await terminal.sign_in()).approved
        sale = await terminal.sale(OK_CARD, "123456", 4_500)
        assert sale.approved and sale.rrn
        proxy.tamper = True
        assert (await terminal.reverse_last("98")).response_code == "00"
        txn_id = int(sale.rrn)

        async def queue_entry() -> tuple[str, int]:
            def read(session) -> tuple[str, int]:  # type: ignore[no-untyped-def]
                entry = session.scalar(select(SafEntry).where(SafEntry.transaction_id == txn_id))
                return entry.status, entry.attempts

            return await running.handle.store.run(read)

        async def retried() -> bool:
            status, attempts = await queue_entry()
            assert status == "pending", (
                f"marked {status} on a reply whose MAC failed ({proxy.tampered} tampered)"
            )
            return attempts >= 3

        assert await eventually(retried, timeout_s=10)
        proxy.tamper = False
        assert await eventually(lambda: _entry_done(queue_entry), timeout_s=10)
        assert proxy.tampered >= 3
        assert await _available_is(terminal, 1_000_000)


async def _entry_done(queue_entry: Callable[[], Awaitable[tuple[str, int]]]) -> bool:
    return (await queue_entry())[0] == "done"


async def _available_is(terminal: TerminalClient, fen: int) -> bool:
    result = await terminal.balance(OK_CARD, OK_CARD.default_pin)
    return result.response_code == "00" and result.balance_fen == fen


# ---- a refund the issuer declines gives its reservation back


PLAIN_PAN = "6212340000000001"
PLAIN_ZPK = "1C1C1C1C1C1C1C1C2A2A2A2A2A2A2A2A"


class RefundDecliningIssuer:
    """A network-8583 issuer written with pyiso8583 alone: approves everything except the first
    `refund_declines` refund advices (0220), which it declines `05`."""

    def __init__(self, refund_declines: int) -> None:
        self.refund_declines = refund_declines
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        spec = iso8583.specs.default_ascii
        try:
            while True:
                (length,) = struct.unpack(">H", await reader.readexactly(2))
                msg, _ = iso8583.decode(await reader.readexactly(length), spec)
                code = "00"
                if msg["t"] == "0220" and self.refund_declines > 0:
                    self.refund_declines -= 1
                    code = "05"
                reply = {"t": msg["t"][:2] + str(int(msg["t"][2]) + 1) + msg["t"][3], "39": code}
                for field in ("3", "4", "7", "11", "32", "37", "41", "42", "49", "70"):
                    if field in msg:
                        reply[field] = msg[field]
                if msg["t"] in ("0100", "0200"):
                    reply["38"] = "654321"
                encoded, _ = iso8583.encode(reply, spec)
                writer.write(struct.pack(">H", len(encoded)) + bytes(encoded))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def test_a_refund_the_issuer_declines_leaves_the_whole_amount_refundable(
    tmp_path: Path, database_url: str
) -> None:
    issuer = RefundDecliningIssuer(refund_declines=1)
    port = await issuer.start()
    plain = IssuerConfig(
        name="Plain Bank", bins=["621234"], port=port, zpk=PLAIN_ZPK, zak="22" * 16, mac=False
    )
    running = await start_all(stack_settings(tmp_path, database_url, issuers=[plain], issuer_timeout_s=5.0))
    try:
        card = manual_card(PLAIN_PAN, "3012", default_pin="246810")
        async with TerminalClient(*running.pos_address, demo_terminal_state(), timeout_s=5.0) as terminal:
            assert (await terminal.sign_in()).approved
            sale = await terminal.sale(card, "246810", 1_234, entry="manual")
            assert sale.approved and sale.rrn
            declined = await terminal.refund(sale.rrn, card, 1_234, entry="manual")
            assert declined.response_code == "05"
            again = await terminal.refund(sale.rrn, card, 1_234, entry="manual")
            assert again.response_code == "00"  # not 64: the declined refund took nothing
            over = await terminal.refund(sale.rrn, card, 1, entry="manual")
            assert over.response_code == "64"  # and the approved one took it all
    finally:
        await running.stop()
        await issuer.stop()


# ---- two full refunds of one sale at once


async def test_two_racing_full_refunds_of_one_sale_give_one_approval_and_one_64(
    stack: Running, terminal: TerminalClient
) -> None:
    """The refund cap is a conditional UPDATE (ReserveRefund): of two refunds of the whole amount sent at
    the same moment on two connections, exactly one is approved and the other gets `64`; the card is
    credited once."""
    async with TerminalClient(*stack.pos_address, terminal.state, timeout_s=10.0) as other:
        for amount in (2_100, 2_200, 2_300):
            sale = await terminal.sale(OK_CARD, "123456", amount)
            assert sale.approved and sale.rrn
            answers = await asyncio.gather(
                terminal.refund(sale.rrn, OK_CARD, amount), other.refund(sale.rrn, OK_CARD, amount)
            )
            assert sorted(answer.response_code for answer in answers) == ["00", "64"], answers
    assert await available_fen(terminal, OK_CARD) == 1_000_000


# ---- the terminal status the host caches follows the test swipe


async def test_after_the_test_swipe_the_host_serves_the_terminal_as_live_at_once(
    tmp_path: Path, database_url: str
) -> None:
    """With the terminal cache on, the test swipe's void must drop the cached `testing` record: the next
    real sale is approved, not refused 03 until the cache expires."""
    running = await start_all(stack_settings(tmp_path, database_url, terminal_cache_s=60.0))
    try:
        await running.handle.store.run(_testing)
        async with TerminalClient(*running.pos_address, demo_terminal_state(), timeout_s=5.0) as terminal:
            assert (await terminal.sign_in()).approved
            assert (await terminal.sale(OK_CARD, "123456", 5_000)).response_code == "03"  # cached: testing
            test_sale = await terminal.sale(OK_CARD, "123456", 1)
            assert test_sale.approved and test_sale.rrn
            assert (await terminal.void(test_sale.rrn, OK_CARD)).approved
            assert (await terminal.sale(OK_CARD, "123456", 5_000)).response_code == "00"
    finally:
        await running.stop()


def _testing(session) -> None:  # type: ignore[no-untyped-def]
    session.execute(update(Merchant).where(Merchant.mid == "898440153110001").values(status="testing"))
    session.execute(update(Terminal).where(Terminal.tid == "10000001").values(status="testing"))
