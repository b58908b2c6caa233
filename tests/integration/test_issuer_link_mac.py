"""The MAC on the host's issuer link (`host.links.IssuerLink`, network-8583.md "Keys and security") against a
small fake issuer on loopback: a financial reply is an answer only when its MAC — the last field — verifies
under the route's ZAK (else the request fails with `IssuerReplyUnverified`, which AskIssuer answers 96 and
reverses: nothing in the reply is trusted), requests carry a MAC
over every field before it, and the first sign-on answer tells, in one log line, when the route's `mac`
setting and the issuer do not agree. No database: the route is built in memory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from posgate.errors import IssuerReplyUnverified
from posgate.host.links import IssuerLink
from posgate.iso8583.codec import decode_network, encode_network, encode_network_with_mac, split_network_mac
from posgate.iso8583.framing import FrameBuffer, build_network_frame
from posgate.security.keys import kcv
from posgate.security.network_mac import network_mac, verify_network_mac
from posgate.store.acquirer import RouteRecord

Message = dict[str, str]
ZAK = bytes.fromhex("89ABCDEF0123456776543210FEDCBA98")
OTHER_ZAK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
#: how the fake issuer MACs a reply: "good" (under ZAK), "bad" (under another key), "absent", "misplaced"
#: (a good MAC in field 64 with field 90 after it)
Mac = str


def _reply(msg: Message, mac: Mac, code: str = "00") -> bytes:
    fields = {"t": f"{int(msg['t']) + 10:04d}", "11": msg["11"], "39": code}
    if "70" in msg:
        fields["70"] = msg["70"]
    if mac == "absent":
        return build_network_frame(encode_network(fields))
    if mac == "misplaced":
        fields |= {"64": network_mac(ZAK, b"whatever").hex().upper(), "90": "0" * 42}
        return build_network_frame(encode_network(fields))
    key = ZAK if mac == "good" else OTHER_ZAK
    return build_network_frame(encode_network_with_mac(fields, lambda data: network_mac(key, data)))


class MacIssuer:
    """Answers sign-on with `sign_on_mac`, every other request with `reply_mac`; keeps what it received."""

    def __init__(self, sign_on_mac: Mac = "good", reply_mac: Mac = "good") -> None:
        self.sign_on_mac, self.reply_mac = sign_on_mac, reply_mac
        self.received: list[tuple[Message, bytes]] = []
        self.sign_ons = 0
        self.close_after_sign_on = False
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
                self.received.append((msg, body))
                if msg["t"] == "0800":
                    writer.write(_reply(msg, self.sign_on_mac if msg.get("70") == "001" else "absent"))
                    if msg.get("70") == "001":
                        self.sign_ons += 1
                        if self.close_after_sign_on:
                            await writer.drain()
                            writer.close()
                            return
                else:
                    writer.write(_reply(msg, self.reply_mac))
        writer.close()


class Stans:
    def __init__(self) -> None:
        self.n = 0

    async def next(self, issuer_name: str) -> str:
        self.n += 1
        return f"{self.n:06d}"


@pytest.fixture
async def started() -> AsyncIterator[Callable[..., object]]:
    """Start a fake issuer and a link to it: `await started(issuer, mac_enabled, zak)`."""
    issuers: list[MacIssuer] = []
    links: list[IssuerLink] = []

    async def start(
        issuer: MacIssuer, mac_enabled: bool = True, zak: bytes | None = ZAK, echo_interval_s: float = 30.0
    ) -> IssuerLink:
        await issuer.start()
        issuers.append(issuer)
        route = RouteRecord(
            "Mac Bank", ("622999",), "127.0.0.1", issuer.port, mac_enabled, "sim", bytes(16), zak
        )
        link = IssuerLink(
            route,
            "12345678",
            Stans(),
            connect_timeout_s=2.0,
            echo_interval_s=echo_interval_s,
            reconnect_max_s=0.2,
        )
        links.append(link)
        link.start()
        await asyncio.wait_for(link.up.wait(), 5)
        return link

    yield start
    for link in links:
        await link.stop()
    for issuer in issuers:
        await issuer.stop()


def sale(stan: str) -> Message:
    return {"t": "0200", "3": "000000", "4": "000000000100", "11": stan, "32": "12345678"}


async def test_a_reply_whose_mac_verifies_is_the_answer_and_requests_carry_a_mac_over_every_field(
    started: Callable[..., object],
) -> None:
    issuer = MacIssuer()
    link = await started(issuer)  # type: ignore[operator]
    answer = await link.request(sale("000101") | {"90": "0" * 42}, 5)
    assert (answer["11"], answer["39"]) == ("000101", "00")
    request, body = issuer.received[-1]
    assert request["t"] == "0200" and "128" in request and "64" not in request  # the MAC is the last field
    parts = split_network_mac(request, body)
    assert parts is not None and verify_network_mac(ZAK, *parts)
    sign_on = next(msg for msg, _ in issuer.received if msg.get("70") == "001")
    assert "64" not in sign_on and "128" not in sign_on  # the host does not MAC 0800s


@pytest.mark.parametrize("mac", ["bad", "misplaced", "absent"])
async def test_a_reply_whose_mac_does_not_verify_is_unverified_not_an_approval(
    started: Callable[..., object], mac: Mac, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="posgate.host.link")
    link = await started(MacIssuer(reply_mac=mac))  # type: ignore[operator]
    for stan in ("000201", "000202"):
        with pytest.raises(IssuerReplyUnverified, match=f"reply 0210/{stan} failed MAC verification"):
            await link.request(sale(stan), 5)
    assert caplog.messages.count("issuer Mac Bank reply 0210/000202 failed MAC verification") == 1
    lacking = [m for m in caplog.messages if "sends replies without a MAC" in m]
    if mac == "absent":  # said once, however many replies lack it
        assert lacking == [
            "issuer Mac Bank sends replies without a MAC but its route has mac = true: every transaction"
            " gets 96 until you set mac = false for issuer Mac Bank ([[issuers]] in posgate.toml or"
            " POSGATE_ISSUERS) or the issuer MACs its replies with the ZAK"
        ]
    else:
        assert lacking == []


async def test_without_a_zak_no_reply_mac_verifies(started: Callable[..., object]) -> None:
    link = await started(MacIssuer(), mac_enabled=True, zak=None)  # type: ignore[operator]
    with pytest.raises(IssuerReplyUnverified):
        await link.request(sale("000301"), 5)


@pytest.mark.parametrize("mac", ["good", "bad", "absent"])
async def test_with_mac_false_replies_are_not_judged(started: Callable[..., object], mac: Mac) -> None:
    issuer = MacIssuer(sign_on_mac="absent", reply_mac=mac)
    link = await started(issuer, mac_enabled=False, zak=None)  # type: ignore[operator]
    assert (await link.request(sale("000401"), 5))["39"] == "00"
    request, _ = issuer.received[-1]
    assert "64" not in request and "128" not in request


SIGN_ON_ABSENT = (
    "issuer Mac Bank answered sign-on without a MAC but its route has mac = true: if it MACs no replies,"
    " every transaction will get 96; then set mac = false for issuer Mac Bank ([[issuers]] in posgate.toml"
    " or POSGATE_ISSUERS)"
)
SIGN_ON_BAD = (
    f"issuer Mac Bank: the MAC of its sign-on answer does not verify under the ZAK configured for it (KCV"
    f" {kcv(ZAK)}): every transaction will get 96 until zak for issuer Mac Bank matches the issuer's"
)
SIGN_ON_UNEXPECTED = (
    "issuer Mac Bank MACs its sign-on answer but its route has mac = false: if it expects MACs on requests,"
    " set mac = true and zak for issuer Mac Bank ([[issuers]] in posgate.toml or POSGATE_ISSUERS)"
)


@pytest.mark.parametrize(
    ("mac_enabled", "sign_on_mac", "expected"),
    [
        (True, "good", []),
        (True, "absent", [SIGN_ON_ABSENT]),
        (True, "bad", [SIGN_ON_BAD]),
        (True, "misplaced", [SIGN_ON_BAD]),  # a MAC in 64 with 90 after it covers nothing: it does not verify
        (False, "absent", []),
        (False, "good", [SIGN_ON_UNEXPECTED]),
        (False, "bad", [SIGN_ON_UNEXPECTED]),
    ],
)
async def test_the_sign_on_answer_says_once_when_the_mac_setting_does_not_fit(
    started: Callable[..., object],
    caplog: pytest.LogCaptureFixture,
    mac_enabled: bool,
    sign_on_mac: Mac,
    expected: list[str],
) -> None:
    """The issuer closes the link after each sign-on, so the host signs on again: still one line."""
    caplog.set_level(logging.INFO, logger="posgate.host.link")
    issuer = MacIssuer(sign_on_mac=sign_on_mac)
    issuer.close_after_sign_on = True
    await started(issuer, mac_enabled=mac_enabled, zak=ZAK)  # type: ignore[operator]
    for _ in range(100):
        if issuer.sign_ons >= 3:
            break
        await asyncio.sleep(0.05)
    assert issuer.sign_ons >= 3
    said = [m for m in caplog.messages if "sign-on answer" in m or "answered sign-on" in m]
    assert said == expected


async def test_echo_answers_without_a_mac_keep_the_link_up(started: Callable[..., object]) -> None:
    """The host MACs no 0800 and judges only the first sign-on answer's MAC: an issuer that answers its
    echo tests (0810, 70 = 301) without a MAC is not cut off and signed on again at every echo."""
    issuer = MacIssuer()  # sign-on and financial replies MACed, echo answers not
    link = await started(issuer, echo_interval_s=0.05)  # type: ignore[operator]

    def echoes() -> int:
        return sum(1 for msg, _ in issuer.received if msg.get("70") == "301")

    for _ in range(200):
        if echoes() >= 5:
            break
        await asyncio.sleep(0.05)
    assert echoes() >= 5
    assert issuer.sign_ons == 1 and link.is_up
    reply = await link.request(sale("000900"), 2.0)
    assert reply["39"] == "00"
