"""The terminal client against a tiny fake host on loopback: sign-in and KCVs, MACs both ways, STAN matching
with requests answered out of order, reversal, time-out, connection errors — and the CLI end to end."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from posgate.cli.terminal import app
from posgate.errors import SecurityError
from posgate.iso8583.codec import decode_pos, encode_pos, encode_pos_with_mac, mac_payload
from posgate.iso8583.framing import (
    FrameBuffer,
    build_pos_frame,
    response_header,
    response_tpdu,
    split_pos_frame,
)
from posgate.security.pos_mac import cup_ecb_mac, verify_cup_ecb_mac
from posgate.security.signin import WorkingKeys, issue_working_keys
from posgate.terminal import (
    NothingToReverse,
    TerminalClient,
    TerminalConnectionError,
    TerminalState,
    TerminalTimeout,
    demo_card,
    demo_terminal_state,
)
from posgate.terminal.messages import REQUEST_HEADER, echo_request, request_tpdu

TMK = bytes.fromhex("404142434445464748494A4B4C4D4E4F")


class FakeHost:
    """Answers 0800 with fresh keys in field 62, 0200/0400/0820 with `00` (MACed where the spec says).

    `hold=n` collects n 0200 requests and answers them in reverse order; `silent` never answers 0200;
    `corrupt_kcv` spoils the MAK's check value; `bad_mac` MACs responses with a wrong key.
    """

    def __init__(
        self, *, hold: int = 0, silent: bool = False, corrupt_kcv: bool = False, bad_mac: bool = False
    ) -> None:
        self.hold, self.silent, self.corrupt_kcv, self.bad_mac = hold, silent, corrupt_kcv, bad_mac
        self.keys: WorkingKeys | None = None
        self.requests: list[dict[str, str]] = []
        self.request_macs_ok: list[bool] = []
        self.held: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = FrameBuffer()
        try:
            while data := await reader.read(4096):
                frames.receive_data(data)
                while (body := frames.next_frame()) is not None:
                    for answer in self._answer(body):
                        writer.write(answer)
                    await writer.drain()
        except Exception:  # a bad frame: close, as the real host does
            pass
        finally:
            writer.close()

    def _answer(self, body: bytes) -> list[bytes]:
        frame = split_pos_frame(body)
        request = decode_pos(frame.payload)
        self.requests.append(request)
        if "64" in request:
            assert self.keys is not None
            mac = bytes.fromhex(request["64"])
            self.request_macs_ok.append(verify_cup_ecb_mac(self.keys.mak, mac_payload(frame.payload), mac))
        mti = request["t"]
        echo = {k: request[k] for k in ("3", "4", "11", "25", "41", "42", "49", "60") if k in request}
        response = {**echo, "t": f"{int(mti) + 10:04d}", "39": "00"}
        if mti == "0800":
            self.keys, field62 = issue_working_keys(TMK, with_tdk=request["60"].endswith("004"))
            if self.corrupt_kcv:
                field62 = field62[:38] + bytes([field62[38] ^ 0xFF]) + field62[39:]
            response["62"] = field62.hex().upper()
        elif mti == "0200":
            if self.silent:
                return []
            response["37"] = "2511" + request["11"] + "00"
            response["38"] = "AU" + request["11"][-4:]
            if request["3"] == "310000":
                response["54"] = "1002156C000000998766"
        out = self._frame(frame.tpdu, frame.header, response)
        if mti == "0200" and self.hold:
            self.held.append(out)
            if len(self.held) < self.hold:
                return []
            answers, self.held = list(reversed(self.held)), []
            return answers
        return [out]

    def _frame(self, tpdu: bytes, header: bytes, response: dict[str, str]) -> bytes:
        if response["t"] in ("0210", "0410"):
            assert self.keys is not None
            mak = bytes(16) if self.bad_mac else self.keys.mak
            payload = encode_pos_with_mac(response, lambda data: cup_ecb_mac(mak, data))
        else:
            payload = encode_pos(response)
        return build_pos_frame(response_tpdu(tpdu), response_header(header), payload)


@pytest.fixture
async def host() -> AsyncIterator[FakeHost]:
    fake = FakeHost()
    await fake.start()
    yield fake
    await fake.stop()


async def _started(fake: FakeHost) -> FakeHost:
    await fake.start()
    return fake


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_sign_in_unwraps_and_checks_the_working_keys(host: FakeHost) -> None:
    state = demo_terminal_state()
    async with TerminalClient("127.0.0.1", host.port, state, timeout_s=2) as client:
        result = await client.sign_in()
    assert result.approved and result.mti == "0810" and result.stan == "000001"
    assert host.keys is not None
    assert state.pik_hex == host.keys.pik.hex().upper()
    assert state.mak_hex == host.keys.mak.hex().upper()
    assert state.tdk_hex is None
    assert host.requests[0]["60"] == "00000001003" and "64" not in host.requests[0]


async def test_sign_in_with_tdk(host: FakeHost) -> None:
    state = demo_terminal_state()
    async with TerminalClient("127.0.0.1", host.port, state, timeout_s=2) as client:
        await client.sign_in(with_tdk=True)
    assert host.keys is not None and host.keys.tdk is not None
    assert state.tdk_hex == host.keys.tdk.hex().upper()


async def test_sign_in_rejects_a_wrong_check_value() -> None:
    fake = await _started(FakeHost(corrupt_kcv=True))
    state = demo_terminal_state()
    try:
        async with TerminalClient("127.0.0.1", fake.port, state, timeout_s=2) as client:
            with pytest.raises(SecurityError, match="MAK check value mismatch"):
                await client.sign_in()
    finally:
        await fake.stop()
    assert not state.signed_in


async def test_two_concurrent_sales_answered_out_of_order() -> None:
    fake = await _started(FakeHost(hold=2))
    state = demo_terminal_state()
    try:
        async with TerminalClient("127.0.0.1", fake.port, state, timeout_s=2) as client:
            await client.sign_in()
            first, second = await asyncio.gather(
                client.sale(demo_card("debit-ok"), "123456", 1234),
                client.sale(demo_card("credit-ok"), "123456", 5678),
            )
    finally:
        await fake.stop()
    assert fake.request_macs_ok == [True, True]
    assert (first.stan, first.amount_fen, first.masked_pan) == ("000002", 1234, "622999******0012")
    assert (second.stan, second.amount_fen, second.masked_pan) == ("000003", 5678, "622888******0024")
    assert first.rrn == "251100000200" and second.auth_code == "AU0003"
    assert first.approved and second.approved and first.mac_ok and second.mac_ok
    assert [r["11"] for r in fake.requests[1:]] == ["000002", "000003"]
    assert state.stan == 3


async def test_balance_reads_field_54(host: FakeHost) -> None:
    state = demo_terminal_state()
    async with TerminalClient("127.0.0.1", host.port, state, timeout_s=2) as client:
        await client.sign_in()
        result = await client.balance(demo_card("debit-ok"), "123456")
    assert result.approved and result.balance_fen == 998766
    assert host.requests[-1]["3"] == "310000" and host.request_macs_ok == [True]
    assert state.last is None  # a balance inquiry is not reversible


async def test_a_wrong_response_mac_fails_and_the_sale_is_reversed() -> None:
    fake = await _started(FakeHost(bad_mac=True))
    state = demo_terminal_state()
    try:
        async with TerminalClient("127.0.0.1", fake.port, state, timeout_s=2) as client:
            await client.sign_in()
            sale = await client.sale(demo_card("debit-ok"), "123456", 1234)
            assert sale.mac_ok is False and not sale.approved and sale.needs_reversal
            assert state.last is not None and state.last.stan == sale.stan
            reversal = await client.reverse_last("A0")
    finally:
        await fake.stop()
    request = fake.requests[-1]
    assert request["t"] == "0400" and request["39"] == "A0" and request["11"] == sale.stan
    assert not {"2", "35", "52", "61"} & request.keys()
    assert fake.request_macs_ok == [True, True]
    assert reversal.mac_ok is False  # the fake host MACs the 0410 with the wrong key too
    assert state.last is not None  # not cleared: the reversal was not confirmed


async def test_reversal_clears_the_record(host: FakeHost) -> None:
    state = demo_terminal_state()
    async with TerminalClient("127.0.0.1", host.port, state, timeout_s=2) as client:
        await client.sign_in()
        sale = await client.sale(demo_card("debit-ok"), None, 100)
        assert state.last is not None and state.last.rrn == sale.rrn
        reversal = await client.reverse_last()
        assert reversal.approved and reversal.mti == "0410" and reversal.stan == sale.stan
        assert state.last is None
        with pytest.raises(NothingToReverse):
            await client.reverse_last()


async def test_no_response_times_out_and_leaves_a_reversible_record() -> None:
    fake = await _started(FakeHost(silent=True))
    state = demo_terminal_state()
    try:
        async with TerminalClient("127.0.0.1", fake.port, state, timeout_s=0.2) as client:
            await client.sign_in()
            with pytest.raises(TerminalTimeout, match="no response to 0200 STAN 000002"):
                await client.sale(demo_card("debit-ok"), "123456", 1234)
            assert state.last is not None and state.last.response_code is None
            reversal = await client.reverse_last("98")
    finally:
        await fake.stop()
    assert reversal.approved and fake.requests[-1]["39"] == "98"


async def test_connection_refused_is_one_clear_line() -> None:
    port = _free_port()
    client = TerminalClient("127.0.0.1", port, demo_terminal_state(), timeout_s=2)
    with pytest.raises(TerminalConnectionError) as info:
        await client.connect()
    assert str(info.value) == f"cannot reach posgate host at 127.0.0.1:{port}: connection refused"


async def test_send_raw(host: FakeHost) -> None:
    state = demo_terminal_state()
    async with TerminalClient("127.0.0.1", host.port, state, timeout_s=1) as client:
        payload = encode_pos(echo_request(state, "000077"))
        body = await client.send_raw(build_pos_frame(request_tpdu("0003"), REQUEST_HEADER, payload))
        assert body is not None
        parts = split_pos_frame(body)
        assert parts.tpdu.hex() == "6000000003"
        assert decode_pos(parts.payload)["11"] == "000077"
        assert await client.send_raw(b"\x00\x05garbage") is None  # the host closes the connection
        with pytest.raises(TerminalConnectionError, match="lost"):
            await client.echo()


# ---------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def host_thread() -> Iterator[FakeHost]:
    """The fake host on its own event loop in a thread, for the CLI (which runs its own asyncio loop)."""
    loop = asyncio.new_event_loop()
    fake = FakeHost()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(fake.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    yield fake
    asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_cli_sale_then_reverse(host_thread: FakeHost, tmp_path: Path) -> None:
    runner = CliRunner()
    state_file = tmp_path / "terminal.json"
    common = ["--port", str(host_thread.port), "--state-file", str(state_file)]
    sale = runner.invoke(app, ["sale", "12.34", *common])
    assert sale.exit_code == 0, sale.output
    assert "CNY 12.34" in sale.output and "622999******0012" in sale.output
    assert "6229990000000012" not in sale.output
    state = TerminalState.load(state_file)
    assert state.signed_in and state.stan == 2 and state.last is not None
    assert "6229990000000012" not in state_file.read_text()

    reverse = runner.invoke(app, ["reverse", *common])
    assert reverse.exit_code == 0, reverse.output
    assert host_thread.requests[-1]["t"] == "0400"
    assert TerminalState.load(state_file).last is None
    again = runner.invoke(app, ["reverse", *common])
    assert again.exit_code == 1 and "no transaction to reverse" in again.output


def test_cli_balance_and_manual_entry(host_thread: FakeHost, tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["--port", str(host_thread.port), "--state-file", str(tmp_path / "t.json")]
    balance = runner.invoke(app, ["balance", "--card", "debit-low", *common])
    assert balance.exit_code == 0, balance.output
    assert "BALANCE   CNY 9987.66" in balance.output
    manual = runner.invoke(app, ["sale", "1", "--entry", "manual", "--no-pin", *common])
    assert manual.exit_code == 0, manual.output
    request = host_thread.requests[-1]
    assert (request["22"], request["2"], request["4"]) == ("012", "6229990000000012", "000000000100")


@pytest.mark.parametrize("amount", ["abc", "1.234", "-1", "0", "1e3", "12.", ".5", "0.00"])
def test_cli_rejects_bad_amounts(amount: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sale", amount, "--state-file", str(tmp_path / "t.json")])
    assert result.exit_code == 2
    assert not (tmp_path / "t.json").exists()


def test_cli_connection_refused(tmp_path: Path) -> None:
    port = _free_port()
    result = CliRunner().invoke(app, ["echo", "--port", str(port), "--state-file", str(tmp_path / "t.json")])
    assert result.exit_code == 3
    assert f"cannot reach posgate host at 127.0.0.1:{port}: connection refused" in result.output


def test_cli_unknown_card_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["sale", "1", "--card", "nope", "--state-file", str(tmp_path / "t.json")]
    )
    assert result.exit_code == 2 and "no demo card" in result.output
