"""The host's issuer link (`host.links.IssuerLink`, an asyncio shell over `iso8583.session`) against a small
fake issuer on loopback: replies matched out of order, a late reply, a time-out, and what fails — and how —
when the issuer closes the link or sends a bad frame. No database: the route is built in memory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from posgate.errors import IssuerTimeout, IssuerUnavailable
from posgate.host.links import IssuerLink
from posgate.iso8583.codec import decode_network, encode_network
from posgate.iso8583.framing import FrameBuffer, build_network_frame
from posgate.store.acquirer import RouteRecord

Message = dict[str, str]
#: What the fake issuer does with each non-0800 request: write these frames (possibly none), then maybe close.
Behaviour = Callable[[Message, asyncio.StreamWriter, list[Message]], None]


def reply(msg: Message, code: str = "00") -> bytes:
    fields = {"t": f"{int(msg['t']) + 10:04d}", "11": msg["11"], "39": code}
    if "70" in msg:
        fields["70"] = msg["70"]
    return build_network_frame(encode_network(fields))


class FakeIssuer:
    """Answers sign-on and echo at once; every other request goes to `behaviour`."""

    def __init__(self) -> None:
        self.behaviour: Behaviour = lambda msg, writer, held: writer.write(reply(msg))
        self.held: list[Message] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = FrameBuffer(8192)
        while data := await reader.read(65536):
            frames.receive_data(data)
            while (body := frames.next_frame()) is not None:
                msg = decode_network(body)
                if msg["t"] == "0800":
                    writer.write(reply(msg))
                else:
                    self.behaviour(msg, writer, self.held)
        writer.close()


class Stans:
    def __init__(self) -> None:
        self.n = 0

    async def next(self, issuer_name: str) -> str:
        self.n += 1
        return f"{self.n:06d}"


@pytest.fixture
async def issuer() -> AsyncIterator[FakeIssuer]:
    fake = FakeIssuer()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def link(issuer: FakeIssuer) -> AsyncIterator[IssuerLink]:
    route = RouteRecord("Fake Bank", ("622999",), "127.0.0.1", issuer.port, False, "sim", bytes(16), None)
    issuer_link = IssuerLink(route, "12345678", Stans(), connect_timeout_s=2.0, reconnect_max_s=0.2)
    issuer_link.start()
    await asyncio.wait_for(issuer_link.up.wait(), 5)
    yield issuer_link
    await issuer_link.stop()


def sale(stan: str) -> Message:
    return {"t": "0200", "3": "000000", "4": "000000000100", "11": stan, "32": "12345678"}


async def test_replies_out_of_order_reach_their_requests(issuer: FakeIssuer, link: IssuerLink) -> None:
    def hold_two(msg: Message, writer: asyncio.StreamWriter, held: list[Message]) -> None:
        held.append(msg)
        if len(held) == 2:
            writer.write(reply(held[1], "51") + reply(held[0], "00"))

    issuer.behaviour = hold_two
    first, second = await asyncio.gather(link.request(sale("900001"), 5), link.request(sale("900002"), 5))
    assert (first["11"], first["39"]) == ("900001", "00")
    assert (second["11"], second["39"]) == ("900002", "51")


async def test_no_reply_in_time_is_a_time_out_and_the_late_reply_is_dropped(
    issuer: FakeIssuer, link: IssuerLink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="posgate.host.link")
    issuer.behaviour = lambda msg, writer, held: held.append(msg)
    with pytest.raises(IssuerTimeout, match=r"^issuer Fake Bank did not answer 0200 in 0\.2s$"):
        await link.request(sale("900001"), 0.2)
    issuer.behaviour = lambda msg, writer, held: writer.write(reply(held[0]) + reply(msg))
    answer = await link.request(sale("900002"), 5)  # the late 0210 comes first, and answers nothing
    assert answer["11"] == "900002"
    assert "issuer Fake Bank: late or unmatched reply 0210/900001" in caplog.messages


async def test_requests_in_flight_fail_when_the_issuer_closes_the_link(
    issuer: FakeIssuer, link: IssuerLink
) -> None:
    def close_after_two(msg: Message, writer: asyncio.StreamWriter, held: list[Message]) -> None:
        held.append(msg)
        if len(held) == 2:
            writer.close()

    issuer.behaviour = close_after_two
    results = await asyncio.gather(
        link.request(sale("900001"), 5), link.request(sale("900002"), 5), return_exceptions=True
    )
    expected = "issuer Fake Bank link closed before the answer: closed by the issuer"
    assert [str(r) for r in results] == [expected, expected]
    assert all(isinstance(r, IssuerTimeout) for r in results)  # sent: the issuer may have acted on them
    with pytest.raises(IssuerUnavailable):  # nothing is sent on a link that is down
        await link.request(sale("900003"), 5)


async def test_a_bad_frame_from_the_issuer_closes_the_link_saying_so(
    issuer: FakeIssuer, link: IssuerLink, caplog: pytest.LogCaptureFixture
) -> None:
    issuer.behaviour = lambda msg, writer, held: writer.write(b"\x00\x00")
    with pytest.raises(IssuerTimeout) as failed:
        await link.request(sale("900001"), 5)
    assert str(failed.value) == (
        "issuer Fake Bank link closed before the answer: bad frame from the issuer "
        "(length: frame length is 0 at byte 0)"
    )
    assert any("issuer Fake Bank sent a bad frame, closing the link" in m for m in caplog.messages)

    async def down_and_up_again() -> None:
        while link.is_up:
            await asyncio.sleep(0.01)
        await link.up.wait()

    await asyncio.wait_for(down_and_up_again(), 5)
    issuer.behaviour = lambda msg, writer, held: writer.write(reply(msg))
    assert (await link.request(sale("900002"), 5))["39"] == "00"
