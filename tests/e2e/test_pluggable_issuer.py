"""Issuers are configuration: an issuer host written here with nothing but pyiso8583 and psec (no posgate
code) is plugged in through `[[issuers]]` settings, and a sale on its BIN reaches it with the PIN block
under its own ZPK. With MACs on, it checks the MAC where ISO 8583:1987 puts it — the last field, 128 when
the message has a secondary bitmap — so a reversal's field 90 is covered. Also: a reversal queued while an
issuer is silent survives a host restart."""

from __future__ import annotations

import asyncio
import hmac
import logging
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import iso8583
import psec
import pytest

from posgate.bootstrap.stack import start_all
from posgate.config import IssuerConfig
from posgate.fixtures.document import read_demo_fixture
from posgate.logs import configure_logging
from posgate.store.acquirer import pending_saf_count
from posgate.terminal import TerminalClient, demo_card, demo_terminal_state, manual_card

from .conftest import stack_settings
from .helpers import available_fen, eventually

PLAIN_ZPK = bytes.fromhex("1C1C1C1C1C1C1C1C2A2A2A2A2A2A2A2A")
PLAIN_ZAK = bytes.fromhex("5B5B5B5B5B5B5B5B6C6C6C6C6C6C6C6C")
PLAIN_PAN = "6212340000000001"
SPEC = iso8583.specs.default_ascii
FINANCIAL = ("0100", "0200", "0220", "0420")


def retail_mac(zak: bytes, data: bytes) -> str:
    """ISO 9797-1 MAC algorithm 3, padding method 1, as 16 hex characters."""
    return psec.mac.generate_retail_mac(zak[:8], zak[8:], data, padding=1).hex().upper()


def encode_with_mac_last(reply: dict[str, str], zak: bytes) -> bytes:
    """The MAC as the last field: 128 when the message has a secondary bitmap, else 64."""
    doc = dict(reply)
    doc["128" if any(int(key) > 64 for key in doc if key.isdigit()) else "64"] = "0" * 16
    raw, _ = iso8583.encode(doc, SPEC)
    return bytes(raw[:-16]) + retail_mac(zak, bytes(raw[:-16])).encode()


def mac_is_good(body: bytes, msg: dict[str, str], zak: bytes) -> bool:
    """ISO 8583:1987: field 128 when there is a secondary bitmap, else 64 — over every byte before it."""
    field = "128" if "1" in msg else "64"
    return field in msg and hmac.compare_digest(msg[field], retail_mac(zak, body[:-16]))


class PlainIssuer:
    """A minimal network-8583 issuer: approves every financial request, remembers what it saw. With a
    ZAK, a financial request whose MAC is missing or wrong gets `A0` (and is noted in `mac_failures`), and
    every reply is MACed."""

    def __init__(self, zak: bytes | None = None) -> None:
        self.zak = zak
        self.seen: list[dict[str, str]] = []
        self.mac_failures: list[dict[str, str]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack(">H", await reader.readexactly(2))
                body = await reader.readexactly(length)
                msg, _ = iso8583.decode(body, SPEC)
                self.seen.append(msg)
                reply = {"t": msg["t"][:2] + str(int(msg["t"][2]) + 1) + msg["t"][3], "39": "00"}
                for field in ("3", "4", "7", "11", "32", "37", "41", "42", "49", "70"):
                    if field in msg:
                        reply[field] = msg[field]
                if self.zak and msg["t"] in FINANCIAL and not mac_is_good(body, msg, self.zak):
                    self.mac_failures.append(msg)
                    reply["39"] = "A0"
                elif msg["t"] in ("0100", "0200"):
                    reply["38"] = "654321"
                if self.zak:
                    encoded = encode_with_mac_last(reply, self.zak)
                else:
                    encoded = bytes(iso8583.encode(reply, SPEC)[0])
                writer.write(struct.pack(">H", len(encoded)) + encoded)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def plain_issuer() -> AsyncIterator[PlainIssuer]:
    issuer = PlainIssuer()
    yield issuer
    await issuer.stop()


@pytest.fixture
async def macing_issuer() -> AsyncIterator[PlainIssuer]:
    issuer = PlainIssuer(zak=PLAIN_ZAK)
    yield issuer
    await issuer.stop()


async def test_an_issuer_host_written_with_any_iso8583_library_plugs_in_by_configuration(
    tmp_path: Path, database_url: str, plain_issuer: PlainIssuer
) -> None:
    port = await plain_issuer.start()
    plain = IssuerConfig(
        name="Plain Bank", bins=["621234"], port=port, zpk=PLAIN_ZPK.hex(), zak="22" * 16, mac=False
    )
    settings = stack_settings(tmp_path, database_url, issuers=[plain])
    running = await start_all(settings)
    try:
        host, pos_port = running.pos_address
        async with TerminalClient(host, pos_port, demo_terminal_state()) as terminal:
            assert (await terminal.sign_in()).approved
            card = manual_card(PLAIN_PAN, "3012", default_pin="246810")
            result = await terminal.sale(card, "246810", 1_234, entry="manual")
        assert result.response_code == "00" and result.auth_code == "654321" and result.mac_ok
        sale = next(m for m in plain_issuer.seen if m["t"] == "0200")
        assert sale["2"] == PLAIN_PAN and sale["4"] == "000000001234" and sale["32"] == "49990000"
        clear_block = psec.des.decrypt_tdes_ecb(PLAIN_ZPK, bytes.fromhex(sale["52"]))
        assert psec.pinblock.decode_pinblock_iso_0(clear_block, PLAIN_PAN) == "246810"
        assert any(m["t"] == "0800" and m.get("70") == "001" for m in plain_issuer.seen)  # signed on
    finally:
        await running.stop()


async def test_an_issuer_that_puts_the_mac_last_accepts_every_message_a_reversal_too(
    tmp_path: Path, database_url: str, macing_issuer: PlainIssuer
) -> None:
    """Finding 7: the host put the MAC of a 0420 in field 64, before field 90, so an issuer that expects
    it last (field 128 with a secondary bitmap) refused every reversal; and the 0420 reused the sale's
    STAN."""
    port = await macing_issuer.start()
    plain = IssuerConfig(
        name="Plain Bank", bins=["621234"], port=port, zpk=PLAIN_ZPK.hex(), zak=PLAIN_ZAK.hex(), mac=True
    )
    settings = stack_settings(tmp_path, database_url, issuers=[plain], saf_retry_s=0.2)
    running = await start_all(settings)
    try:
        host, pos_port = running.pos_address
        card = manual_card(PLAIN_PAN, "3012", default_pin="246810")
        async with TerminalClient(host, pos_port, demo_terminal_state()) as terminal:
            assert (await terminal.sign_in()).approved
            sale_result = await terminal.sale(card, "246810", 4_321, entry="manual")
            assert (sale_result.response_code, sale_result.auth_code) == ("00", "654321")
            assert (await terminal.reverse_last("98")).approved
        assert await eventually(lambda: _seen(macing_issuer, "0420"), timeout_s=10)
        assert macing_issuer.mac_failures == []
        sale = next(m for m in macing_issuer.seen if m["t"] == "0200")
        reversal = next(m for m in macing_issuer.seen if m["t"] == "0420")
        assert "64" in sale and "128" not in sale
        assert "128" in reversal and "64" not in reversal
        assert reversal["90"][:20] == "0200" + sale["11"] + sale["7"]  # the original, covered by the MAC
        assert reversal["11"] != sale["11"]  # a STAN of its own
        assert await running.handle.store.run(pending_saf_count) == 0
    finally:
        await running.stop()


async def _seen(issuer: PlainIssuer, mti: str) -> bool:
    return any(m["t"] == mti for m in issuer.seen)


async def test_an_issuer_without_macs_is_configured_without_a_zak(
    tmp_path: Path, database_url: str, plain_issuer: PlainIssuer
) -> None:
    """Finding 7: an issuer configured with mac = false still had to be given a ZAK."""
    port = await plain_issuer.start()
    plain = IssuerConfig(name="Plain Bank", bins=["621234"], port=port, zpk=PLAIN_ZPK.hex(), mac=False)
    running = await start_all(stack_settings(tmp_path, database_url, issuers=[plain]))
    try:
        host, pos_port = running.pos_address
        async with TerminalClient(host, pos_port, demo_terminal_state()) as terminal:
            assert (await terminal.sign_in()).approved
            card = manual_card(PLAIN_PAN, "3012", default_pin="246810")
            assert (await terminal.sale(card, "246810", 1_000, entry="manual")).approved
        sale = next(m for m in plain_issuer.seen if m["t"] == "0200")
        assert "64" not in sale and "128" not in sale
    finally:
        await running.stop()


async def test_an_issuer_sending_no_mac_while_mac_is_left_on_is_named_at_sign_on_and_first_reply(
    tmp_path: Path, database_url: str, plain_issuer: PlainIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 7: with `mac` left at its default, an issuer that sends no MAC signed on fine and then every
    transaction got 96, with nothing saying why."""
    caplog.set_level(logging.INFO, logger="posgate")
    port = await plain_issuer.start()
    plain = IssuerConfig(name="Plain Bank", bins=["621234"], port=port, zpk=PLAIN_ZPK.hex(), zak="22" * 16)
    running = await start_all(stack_settings(tmp_path, database_url, issuers=[plain]))
    try:
        at_sign_on = _link_lines(caplog)
        assert at_sign_on == [
            "issuer Plain Bank answered sign-on without a MAC but its route has mac = true: if it MACs no"
            " replies, every transaction will get 96; then set mac = false for issuer Plain Bank"
            " ([[issuers]] in posgate.toml or POSGATE_ISSUERS)"
        ]
        host, pos_port = running.pos_address
        async with TerminalClient(host, pos_port, demo_terminal_state()) as terminal:
            assert (await terminal.sign_in()).approved
            card = manual_card(PLAIN_PAN, "3012", default_pin="246810")
            for _ in range(2):
                assert (await terminal.sale(card, "246810", 1_000, entry="manual")).response_code == "96"
        told = [line for line in _link_lines(caplog) if "every transaction gets 96" in line]
        assert told == [
            "issuer Plain Bank sends replies without a MAC but its route has mac = true: every transaction"
            " gets 96 until you set mac = false for issuer Plain Bank ([[issuers]] in posgate.toml or"
            " POSGATE_ISSUERS) or the issuer MACs its replies with the ZAK"
        ]
    finally:
        await running.stop()


async def test_a_zak_that_does_not_match_the_issuers_is_named_at_sign_on(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The simulator MACs its 0810: a route configured with another ZAK than the bank's is told at once."""
    caplog.set_level(logging.INFO, logger="posgate")
    bank = read_demo_fixture().bank("Demo Bank A")
    wrong = IssuerConfig(name=bank.name, bins=bank.bins, port=1, zpk=bank.zpk, zak="22" * 16, kind=bank.kind)
    running = await start_all(stack_settings(tmp_path, database_url, issuers=[wrong]))
    try:
        assert _link_lines(caplog) == [
            "issuer Demo Bank A: the MAC of its sign-on answer does not verify under the ZAK configured"
            f" for it (KCV {psec.des.generate_kcv(bytes.fromhex('22' * 16), 4).hex().upper()}): every"
            " transaction will get 96 until zak for issuer Demo Bank A matches the issuer's"
        ]
    finally:
        await running.stop()


def _link_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the issuer links logged at WARNING and above."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "posgate.host.link" and r.levelno >= logging.WARNING
    ]


async def test_a_queued_reversal_survives_a_host_restart(tmp_path: Path, database_url: str) -> None:
    settings = stack_settings(tmp_path, database_url, saf_retry_s=0.2)
    configure_logging(settings.data_dir, "INFO", console=False)
    card = demo_card("6229990000000012")
    first = await start_all(settings)
    assert first.issuers is not None
    first.issuers.set_fault("Demo Bank A", "drop_replies")
    host, port = first.pos_address
    async with TerminalClient(host, port, demo_terminal_state()) as terminal:
        assert (await terminal.sign_in()).approved
        assert (await terminal.sale(card, "123456", 3_000)).response_code == "98"
    await first.stop()  # the host goes away with the reversal still queued

    second = await start_all(settings)  # same store; the simulator answers again
    try:
        assert await eventually(lambda: _saf_empty(second), timeout_s=10)
        host, port = second.pos_address
        async with TerminalClient(host, port, demo_terminal_state()) as terminal:
            assert (await terminal.sign_in()).approved
            assert await available_fen(terminal, card) == 1_000_000
    finally:
        await second.stop()


async def _saf_empty(running) -> bool:  # type: ignore[no-untyped-def]
    return await running.handle.store.run(pending_saf_count) == 0
