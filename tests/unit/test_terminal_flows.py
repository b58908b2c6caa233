"""The terminal's transaction set end to end against `BookHost`, an in-process stand-in for the acquirer host
and its issuers (the wire contract, a ledger per card, ARQC/ARPC, settlement with batch upload): voids,
refunds, pre-authorizations and completions, reversals, chip cards, settlement, a whole day — and the CLI
over loopback. No real host: these tests only pin down what the terminal sends and books."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from posgate.cards.tlv import decode_tlv, encode_tlv
from posgate.cards.track2 import parse_track2
from posgate.cli.terminal import app
from posgate.iso8583.codec import (
    decode_pos,
    encode_pos,
    encode_pos_with_mac,
    mac_payload,
    parse_field60,
    parse_field61,
)
from posgate.iso8583.framing import (
    FrameBuffer,
    build_pos_frame,
    response_header,
    response_tpdu,
    split_pos_frame,
)
from posgate.security.emv import arqc_data, generate_arpc, icc_master_key, session_key, verify_arqc
from posgate.security.pin import encode_pin_block
from posgate.security.pos_mac import cup_ecb_mac, verify_cup_ecb_mac
from posgate.security.signin import WorkingKeys, issue_working_keys
from posgate.terminal import (
    PendingReversal,
    TerminalClient,
    TerminalState,
    TerminalTimeout,
    UnknownOriginal,
    demo_card,
    demo_terminal_state,
    play_day,
)
from posgate.terminal.day import _Day
from posgate.terminal.journal import open_pan
from posgate.terminal.messages import MACED_RESPONSE_MTIS
from posgate.terminal.result import TxnResult, response_mac_ok, result_from_message

TMK = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
IMK_AC = bytes.fromhex("9E15204313F7318ACB79B90BD986AD29")
WRONG_PIN = "000000"
LOW_FUNDS_FEN = 10_000_000
DEBIT, CREDIT = frozenset({"sale", "completion"}), frozenset({"void", "refund", "completion_void"})


@dataclass
class Booked:
    kind: str
    pan: str
    amount_fen: int
    request: dict[str, str]
    rrn: str
    auth_code: str
    chip: bool
    reversed: bool = False
    preauth: Booked | None = None


@dataclass
class BookHost:
    """Answers every request of the wire contract in process, keeps a ledger, and settles."""

    keys: WorkingKeys | None = None
    rrn: int = 0
    booked: list[Booked] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    request_macs_ok: list[bool] = field(default_factory=list)
    skew_totals: bool = False  # the host's totals differ: 0510 answers "2"
    refuse_settlement: bool = False
    corrupt_arpc: bool = False
    silent_once: bool = False  # the next financial request gets no answer
    silent_every: int = 0  # every n-th financial request gets no answer
    financials: int = 0
    bad_mac_for: str | None = None  # approvals of requests with this processing code get a wrong MAC

    @staticmethod
    def kind(request: dict[str, str]) -> str:
        return {
            "01": "balance",
            "22": "sale",
            "23": "void",
            "25": "refund",
            "10": "preauth",
            "11": "preauth_void",
            "20": "completion",
            "21": "completion_void",
        }[parse_field60(request["60"]).type_code]

    @staticmethod
    def pan(request: dict[str, str]) -> str:
        return request.get("2") or parse_track2(request["35"]).pan

    def find(self, rrn: str, kind: str) -> Booked | None:
        return next((b for b in self.booked if b.rrn == rrn and b.kind == kind and not b.reversed), None)

    def answer(self, request: dict[str, str], payload: bytes) -> dict[str, str] | None:
        self.requests.append(request)
        mti = request["t"]
        if "64" in request:
            assert self.keys is not None
            ok = verify_cup_ecb_mac(self.keys.mak, mac_payload(payload), bytes.fromhex(request["64"]))
            self.request_macs_ok.append(ok)
        echo = {k: request[k] for k in ("3", "4", "11", "25", "41", "42", "49", "60") if k in request}
        response = {**echo, "t": f"{int(mti) + 10:04d}", "39": "00"}
        if mti == "0800":
            self.keys, field62 = issue_working_keys(TMK, with_tdk=False)
            response["62"] = field62.hex().upper()
        elif mti in ("0100", "0200", "0220"):
            self.financials += 1
            if self.silent_once or (self.silent_every and self.financials % self.silent_every == 0):
                self.silent_once = False
                return None
            self.financial(request, response)
        elif mti == "0400":
            self.reverse(request)
        elif mti == "0500":
            self.settle(request, response)
        return response

    def financial(self, request: dict[str, str], response: dict[str, str]) -> None:
        kind, pan = self.kind(request), self.pan(request)
        amount = int(request.get("4", "0"))
        self.rrn += 1
        response.update({"37": f"{self.rrn:012d}", "38": f"AU{self.rrn:04d}", "13": "1126"})
        code = "00"
        session = arqc = None
        if "55" in request:
            tags = decode_tlv(bytes.fromhex(request["55"]))
            session = session_key(icc_master_key(IMK_AC, pan, request["23"][-2:]), tags["9F36"])
            arqc = tags["9F26"]
            if not verify_arqc(session, arqc_data(tags), arqc):
                code = "05"
        if code == "00" and "52" in request:
            assert self.keys is not None
            if request["52"] == encode_pin_block(WRONG_PIN, pan, self.keys.pik).hex().upper():
                code = "55"
        if code == "00" and kind in ("sale", "preauth") and amount >= LOW_FUNDS_FEN:
            code = "51"
        preauth = None
        if code == "00" and kind in ("void", "completion_void", "preauth_void", "completion"):
            original_kind = {"void": "sale", "completion_void": "completion"}.get(kind, "preauth")
            original = self.find(request["37"], original_kind)
            if original is None or original.pan != pan or original.auth_code != request.get("38"):
                code = "25"
            elif kind == "completion" and amount > original.amount_fen * 115 // 100:
                code = "61"
            elif kind != "completion" and amount != original.amount_fen:
                code = "64"
            preauth = original if original_kind == "preauth" else None
            if original is not None and code == "00":
                field61 = parse_field61(request["61"])
                assert (field61.batch, field61.stan) == (original.request["60"][2:8], original.request["11"])
        if code == "00" and kind == "refund":
            assert parse_field61(request["61"]).date
        response["39"] = code
        if session is not None and arqc is not None:
            arpc = generate_arpc(session, arqc, code.encode())
            if self.corrupt_arpc:
                arpc = bytes(8)
            response["55"] = encode_tlv({"91": arpc + code.encode()}).hex().upper()
        if code == "00" and kind == "balance":
            response["54"] = "1002156C000000100000"
        if code == "00" and kind != "balance":
            chip = request["22"][:2] in ("05", "07")
            self.booked.append(
                Booked(kind, pan, amount, request, response["37"], response["38"], chip, preauth=preauth)
            )

    def reverse(self, request: dict[str, str]) -> None:
        """Undo the approved original with the same STAN and field 60 (once); it must match field by field."""
        for booked in self.booked:
            original = booked.request
            if (original["11"], original["60"]) == (request["11"], request["60"]) and not booked.reversed:
                for key in ("3", "4", "22", "25", "37", "38", "61"):
                    assert original.get(key) == request.get(key), key
                booked.reversed = True

    def totals(self, batch: str) -> str:
        debit = [
            b for b in self.booked if not b.reversed and b.kind in DEBIT and b.request["60"][2:8] == batch
        ]
        credit = [
            b for b in self.booked if not b.reversed and b.kind in CREDIT and b.request["60"][2:8] == batch
        ]
        extra = 1 if self.skew_totals else 0
        return (
            f"{sum(b.amount_fen for b in debit) + extra:012d}{len(debit):03d}"
            f"{sum(b.amount_fen for b in credit):012d}{len(credit):03d}"
        )

    def settle(self, request: dict[str, str], response: dict[str, str]) -> None:
        if self.refuse_settlement:
            response["39"] = "96"
            return
        batch = request["60"][2:8]
        domestic = "1" if request["48"][:30] == self.totals(batch) else "2"
        response["48"] = request["48"][:30] + domestic + request["48"][31:61] + "1"

    def uploads(self) -> list[dict[str, str]]:
        return [r for r in self.requests if r["t"] == "0320"]

    def effect(self) -> tuple[Counter[str], Counter[str]]:
        """Posted (debits − credits) and held per PAN, from what the host approved and saw not reversed."""
        posted: Counter[str] = Counter()
        held: Counter[str] = Counter()
        for b in self.booked:
            if b.reversed:
                continue
            if b.kind in DEBIT:
                posted[b.pan] += b.amount_fen
            elif b.kind in CREDIT:
                posted[b.pan] -= b.amount_fen
            if b.kind == "preauth":
                held[b.pan] += b.amount_fen
            if b.kind in ("preauth_void", "completion") and b.preauth is not None:
                held[b.pan] -= b.preauth.amount_fen
        return posted, held

    def encode_response(self, response: dict[str, str]) -> bytes:
        if response["t"] in MACED_RESPONSE_MTIS and response["39"] == "00":
            assert self.keys is not None
            spoiled = self.bad_mac_for is not None and response.get("3") == self.bad_mac_for
            mak = bytes(16) if spoiled else self.keys.mak
            return encode_pos_with_mac(response, lambda data: cup_ecb_mac(mak, data))
        return encode_pos(response)


def attach(client: TerminalClient, host: BookHost) -> None:
    """Route the client's exchanges to `host` in process (the real encode, MAC and decode paths)."""

    async def exchange(msg: dict[str, str]) -> TxnResult:
        payload = client._encode(msg)
        answer = host.answer(decode_pos(payload), payload)
        if answer is None:
            raise TerminalTimeout(f"no response to {msg['t']} STAN {msg['11']}")
        raw = host.encode_response(answer)
        fields = decode_pos(raw)
        return result_from_message(fields, response_mac_ok(raw, fields, client.state.mak))

    client.exchange = exchange  # type: ignore[method-assign]


@pytest.fixture
def host() -> BookHost:
    return BookHost()


@pytest.fixture
async def client(host: BookHost) -> TerminalClient:
    terminal = TerminalClient("127.0.0.1", 1, demo_terminal_state())
    attach(terminal, host)
    assert (await terminal.sign_in()).approved
    return terminal


OK = demo_card("debit-ok")
CREDIT_OK = demo_card("credit-ok")
CHIP = demo_card("credit-chip")
CHIP_2 = demo_card("credit-chip-2")


async def test_void_of_a_sale_from_the_journal(client: TerminalClient, host: BookHost) -> None:
    sale = await client.sale(OK, "123456", 12_345)
    assert sale.approved and sale.kind == "sale"
    [entry] = client.state.journal
    assert (entry.kind, entry.amount_fen, entry.rrn, entry.masked_pan) == (
        "sale",
        12_345,
        sale.rrn,
        OK.masked_pan,
    )
    assert entry.date == "1126" and entry.stan == sale.stan
    assert sale.rrn is not None

    void = await client.void(sale.rrn, OK)
    assert void.approved, void.summary()
    request = host.requests[-1]
    assert (request["3"], request["4"], request["37"], request["38"]) == (
        "200000",
        "000000012345",
        sale.rrn,
        "AU0001",
    )
    assert request["61"] == "000001" + sale.stan and "52" not in request
    assert [e.kind for e in client.state.journal] == ["sale", "void"]
    assert client.state.journal[0].voided and client.state.journal[1].original_rrn == sale.rrn
    assert client.state.last is not None and client.state.last.kind == "void"

    with pytest.raises(UnknownOriginal, match="already voided"):
        await client.void(sale.rrn, OK)
    with pytest.raises(UnknownOriginal, match="no sale with RRN 999999999999"):
        await client.void("999999999999", OK)


async def test_void_needs_the_same_card(client: TerminalClient) -> None:
    sale = await client.sale(OK, "123456", 100)
    with pytest.raises(UnknownOriginal, match=r"not the original's \(622999\*\*\*\*\*\*0012\)"):
        await client.void(sale.rrn or "", CREDIT_OK)


async def test_amount_override_reaches_the_host(client: TerminalClient, host: BookHost) -> None:
    sale = await client.sale(OK, "123456", 100)
    void = await client.void(sale.rrn or "", OK, amount_fen=99)
    assert void.response_code == "64" and not client.state.journal[0].voided
    assert len(client.state.journal) == 1


async def test_partial_refunds(client: TerminalClient, host: BookHost) -> None:
    sale = await client.sale(CREDIT_OK, "123456", 10_000)
    first = await client.refund(sale.rrn or "", CREDIT_OK, 2_500)
    assert first.approved and first.mti == "0230"
    request = host.requests[-1]
    assert (request["t"], request["3"], request["4"], request["37"]) == (
        "0220",
        "200000",
        "000000002500",
        sale.rrn,
    )
    assert request["61"] == "000001" + sale.stan + "1126" and "38" not in request and "52" not in request
    assert client.state.journal[0].refunded_fen == 2_500
    await client.refund(sale.rrn or "", CREDIT_OK, 1_000)
    assert client.state.journal[0].refunded_fen == 3_500
    with pytest.raises(UnknownOriginal, match="partly refunded"):
        await client.void(sale.rrn or "", CREDIT_OK)
    assert client.state.last is None  # a refund was sent since: the sale can no longer be reversed


async def test_refund_of_an_earlier_batch_needs_the_date(client: TerminalClient, host: BookHost) -> None:
    with pytest.raises(UnknownOriginal, match="give the original date"):
        await client.refund("000000000077", OK, 100)
    result = await client.refund("000000000077", OK, 100, "1120")
    assert host.requests[-1]["61"] == "000000" + "000000" + "1120"
    assert result.approved and client.state.journal[-1].kind == "refund"


async def test_preauth_completion_and_their_voids(client: TerminalClient, host: BookHost) -> None:
    preauth = await client.preauth(OK, "123456", 30_000)
    assert preauth.approved and preauth.mti == "0110"
    assert host.requests[-1]["t"] == "0100" and host.requests[-1]["25"] == "06"
    completion = await client.complete(preauth.rrn or "", OK, 34_500)  # 115 %
    assert completion.approved, completion.summary()
    request = host.requests[-1]
    assert (request["t"], request["3"], request["25"], request["37"], request["38"]) == (
        "0200",
        "000000",
        "06",
        preauth.rrn,
        preauth.auth_code,
    )
    assert request["61"] == "000001" + preauth.stan + "1126" and "52" not in request
    assert client.state.journal[0].completed
    with pytest.raises(UnknownOriginal, match="is completed"):
        await client.complete(preauth.rrn or "", OK, 100)

    void = await client.complete_void(completion.rrn or "", OK)
    assert void.approved
    request = host.requests[-1]
    assert (request["3"], request["25"], request["4"], request["37"], request["38"]) == (
        "200000",
        "06",
        "000000034500",
        completion.rrn,
        completion.auth_code,
    )
    assert request["61"] == "000001" + completion.stan

    other = await client.preauth(OK, "123456", 5_000)
    released = await client.preauth_void(other.rrn or "", OK)
    assert released.approved and released.mti == "0110"
    request = host.requests[-1]
    assert (request["t"], request["3"], request["25"], request["4"], request["38"]) == (
        "0100",
        "200000",
        "06",
        "000000005000",
        other.auth_code,
    )
    assert request["61"] == "000001" + other.stan + "1126"
    assert [e.kind for e in client.state.journal] == [
        "preauth",
        "completion",
        "completion_void",
        "preauth",
        "preauth_void",
    ]


async def test_over_115_percent_is_the_hosts_to_refuse(client: TerminalClient) -> None:
    preauth = await client.preauth(OK, "123456", 10_000)
    assert (await client.complete(preauth.rrn or "", OK, 11_501)).response_code == "61"
    assert not client.state.journal[0].completed


async def test_reversals_mark_the_journal_and_undo_what_they_did(
    client: TerminalClient, host: BookHost
) -> None:
    sale = await client.sale(OK, "123456", 700)
    reversal = await client.reverse_last("98")
    assert reversal.approved and reversal.mti == "0410"
    assert client.state.journal[0].reversed and client.state.last is None

    sale = await client.sale(OK, "123456", 800)
    await client.void(sale.rrn or "", OK)
    await client.reverse_last("98")  # the void is reversed: the sale can be voided again
    journal = client.state.journal
    assert (journal[1].voided, journal[2].reversed) == (False, True)
    assert host.requests[-1]["37"] == sale.rrn and host.requests[-1]["61"] == "000001" + sale.stan

    preauth = await client.preauth(OK, "123456", 900)
    await client.complete(preauth.rrn or "", OK, 900)
    await client.reverse_last("A0")
    assert not client.state.journal[3].completed and client.state.journal[4].reversed
    assert host.requests[-1]["39"] == "A0" and host.requests[-1]["25"] == "06"


async def test_a_timeout_leaves_the_record_and_books_nothing(client: TerminalClient, host: BookHost) -> None:
    host.silent_once = True
    with pytest.raises(TerminalTimeout):
        await client.sale(OK, "123456", 100)
    assert client.state.journal == [] and client.state.last is not None
    with pytest.raises(PendingReversal, match="STAN 000002 got no answer"):
        await client.settle()
    assert (await client.reverse_last("98")).approved
    assert (await client.settle()).balanced


async def test_chip_sale_sends_the_cards_arqc_and_checks_the_arpc(
    client: TerminalClient, host: BookHost
) -> None:
    result = await client.sale(CHIP, "123456", 8_800, "chip")
    assert result.approved and result.arpc_ok is True
    request = host.requests[-1]
    assert (request["22"], request["23"], request["60"]) == ("051", "001", "2200000100060")
    tags = decode_tlv(bytes.fromhex(request["55"]))
    assert (
        tags["9F36"] == b"\x00\x01"
        and tags["9C"] == b"\x00"
        and tags["9F02"] == bytes.fromhex("000000008800")
    )
    assert client.state.journal[0].chip_read

    tap = await client.sale(CHIP, None, 500, "contactless")
    assert tap.approved and host.requests[-1]["22"] == "072"
    assert decode_tlv(bytes.fromhex(host.requests[-1]["55"]))["9F36"] == b"\x00\x02"
    balance = await client.balance(CHIP, "123456", "chip")
    tags = decode_tlv(bytes.fromhex(host.requests[-1]["55"]))
    assert balance.approved and tags["9C"] == b"\x30" and tags["9F36"] == b"\x00\x03"
    await client.preauth(CHIP_2, "123456", 100, "chip")
    assert decode_tlv(bytes.fromhex(host.requests[-1]["55"]))["9F36"] == b"\x00\x01"  # ATCs are per card

    void = await client.void(tap.rrn or "", CHIP)  # the chip is read, but no cryptogram is sent
    assert void.approved and host.requests[-1]["22"] == "052" and "55" not in host.requests[-1]
    assert void.arpc_ok is None


async def test_fallback_is_a_swipe_with_ic_condition_2(client: TerminalClient, host: BookHost) -> None:
    result = await client.sale(CHIP, "123456", 100, "fallback")
    assert result.approved and result.arpc_ok is None
    request = host.requests[-1]
    assert (request["22"], request["60"]) == ("801", "2200000100062")
    assert "55" not in request and "23" not in request and request["35"] == CHIP.track2


async def test_a_tampered_arqc_is_declined_and_the_arpc_still_checks(client: TerminalClient) -> None:
    result = await client.sale(CHIP, "123456", 100, "chip", tamper_arqc=True)
    assert result.response_code == "05" and result.arpc_ok is True and not result.approved
    assert client.state.journal == []


async def test_a_bad_arpc_is_a_failure_to_reverse(client: TerminalClient, host: BookHost) -> None:
    host.corrupt_arpc = True
    result = await client.sale(CHIP, "123456", 100, "chip")
    assert result.response_code == "00" and result.mac_ok is True and result.arpc_ok is False
    assert not result.approved and result.needs_reversal and result.reversal_reason == "96"
    assert client.state.journal == []
    assert (await client.reverse_last(result.reversal_reason)).approved
    assert host.booked[-1].reversed


async def test_settlement_balanced_closes_the_batch(client: TerminalClient, host: BookHost) -> None:
    sale = await client.sale(OK, "123456", 10_000)
    await client.void(sale.rrn or "", OK)
    sale2 = await client.sale(CREDIT_OK, "123456", 5_000)
    await client.refund(sale2.rrn or "", CREDIT_OK, 1_000)
    await client.sale(OK, "123456", 333)
    await client.reverse_last()
    open_preauth = await client.preauth(OK, "123456", 2_000)
    result = await client.settle()
    assert result.settled and result.balanced and result.uploaded == 0 and result.batch == "000001"
    request = host.requests[-1]
    assert (request["t"], request["60"], request["49"]) == ("0500", "00000001201", "156")
    assert request["48"] == "000000015000002" + "000000011000002" + "0" + "0" * 31
    assert client.state.batch == "000002" and client.state.last is None
    assert [e.rrn for e in client.state.journal] == [open_preauth.rrn]  # the open pre-auth stays
    # the next sale is in batch 000002, and the pre-auth of batch 000001 can still be completed
    await client.complete(open_preauth.rrn or "", OK, 2_000)
    assert host.requests[-1]["61"] == "000001" + open_preauth.stan + "1126"
    assert host.requests[-1]["60"] == "2000000200060"


async def test_unbalanced_settlement_uploads_the_batch(client: TerminalClient, host: BookHost) -> None:
    for n in range(10):
        await client.sale(OK, "123456", 100 + n)
    for n in range(3):
        await client.sale(CHIP, "123456", 200 + n, "chip")
    await client.sale(OK, "123456", 999)
    await client.reverse_last()  # not uploaded
    host.skew_totals = True
    result = await client.settle()
    assert result.settled and not result.balanced and result.uploaded == 13
    uploads = host.uploads()
    assert [(u["60"], u["48"][:2], len(u["48"])) for u in uploads] == [
        ("00000001201", "08", 2 + 8 * 40),
        ("00000001201", "02", 2 + 2 * 40),
        ("00000001203", "03", 2 + 3 * 40),
        ("00000001207", "00", 4),
    ]
    assert uploads[-1]["48"] == "0013"
    first = uploads[0]["48"][2:42]
    assert first == "00" + client_stan(host, 0) + "0000" + OK.pan + "000000000100"
    assert uploads[2]["48"][2 + 8 : 2 + 28] == "0000" + CHIP.pan
    assert all("64" in u for u in uploads) and all(host.request_macs_ok)
    assert client.state.batch == "000002" and client.state.journal == []


def client_stan(host: BookHost, index: int) -> str:
    return [b for b in host.booked if b.kind == "sale"][index].request["11"]


async def test_a_refused_settlement_keeps_the_batch(client: TerminalClient, host: BookHost) -> None:
    await client.sale(OK, "123456", 100)
    host.refuse_settlement = True
    result = await client.settle()
    assert not result.settled and result.response_code == "96"
    assert client.state.batch == "000001" and len(client.state.journal) == 1


async def test_a_day_settles_balanced_and_predicts_the_ledger(host: BookHost) -> None:
    state = demo_terminal_state()
    terminal = TerminalClient("127.0.0.1", 1, state)
    attach(terminal, host)
    cards = [demo_card(p) for p in ("debit-ok", "debit-pin888", "credit-ok", "credit-chip", "credit-chip-2")]
    # the day's own mechanics on a host without risk rules: 300 steps on five cards, no resting cards
    report = await play_day(terminal, cards, 300, random.Random(7), batch_limit=60, mind_risk_rules=False)
    assert report.transactions == 300
    assert report.balanced and len(report.settlements) >= 2, report.settlements
    kinds = {kind for kind, _ in report.counts}
    assert {"sale", "void", "refund", "preauth", "completion", "preauth_void", "reversal"} <= kinds
    assert report.counts[("sale", "55")] > 0 and report.counts[("sale", "51")] > 0
    assert report.unresolved == 0
    posted, held = host.effect()
    assert {c.pan: report.effect_fen[c] for c in cards} == {c.pan: posted[c.pan] for c in cards}
    assert {c.pan: report.held_fen[c] for c in cards} == {c.pan: held[c.pan] for c in cards}
    modes = Counter(r["22"][:2] for r in host.requests if r["t"] in ("0100", "0200"))
    assert {"02", "05", "07"} <= modes.keys()
    # completions stay within 115 % (the host would answer 61)
    assert report.counts[("completion", "61")] == 0
    # the state never holds a clear PAN
    text = json.dumps(state.to_dict())
    assert all(c.pan not in text for c in cards)
    assert all(open_pan(state.journal_key, e.pan_sealed, state.tid) for e in state.journal)

    again = BookHost()
    replay = TerminalClient("127.0.0.1", 1, demo_terminal_state())
    attach(replay, again)
    again_report = await play_day(replay, cards, 300, random.Random(7), batch_limit=60, mind_risk_rules=False)
    assert again_report.counts == report.counts


async def test_a_day_with_lost_answers_reverses_them(host: BookHost) -> None:
    host.silent_every = 13
    terminal = TerminalClient("127.0.0.1", 1, demo_terminal_state())
    attach(terminal, host)
    cards = [demo_card(p) for p in ("debit-ok", "credit-ok", "credit-chip")]
    report = await play_day(terminal, cards, 120, random.Random(11), mind_risk_rules=False)
    timeouts = sum(n for (kind, code), n in report.counts.items() if code == "timeout")
    assert timeouts >= 5 and report.unresolved == 0
    assert report.balanced
    posted, held = host.effect()
    assert {c.pan: report.effect_fen[c] for c in cards} == {c.pan: posted[c.pan] for c in cards}
    assert {c.pan: report.held_fen[c] for c in cards} == {c.pan: held[c.pan] for c in cards}


async def test_a_day_never_reverses_a_sale_because_a_balance_answer_fails_its_mac(
    client: TerminalClient, host: BookHost
) -> None:
    """A balance inquiry is not reversible: reversing on its bad MAC sent the 0400 of `state.last`, the
    sale before it, and took an approved sale back (the day's own rule before the POS policy was shared)."""
    host.bad_mac_for = "310000"
    day = _Day(client, [OK], random.Random(1), batch_limit=500)
    sale = await day.send("sale", lambda: client.sale(OK, OK.default_pin, 1_00))
    balance = await day.send("balance", lambda: client.balance(OK, OK.default_pin))
    assert sale is not None and sale.approved
    assert balance is not None and balance.mac_ok is False and not balance.approved
    assert [r["t"] for r in host.requests].count("0400") == 0
    assert not any(b.reversed for b in host.booked)
    assert day.report.counts[("balance", "00!")] == 1 and day.report.unresolved == 0


# ------------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def tcp_host() -> Iterator[BookHost]:
    """`BookHost` behind a real TCP port, on its own loop in a thread (the CLI runs its own asyncio loop)."""
    book = BookHost()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = FrameBuffer()
        try:
            while data := await reader.read(4096):
                frames.receive_data(data)
                while (body := frames.next_frame()) is not None:
                    frame = split_pos_frame(body)
                    answer = book.answer(decode_pos(frame.payload), frame.payload)
                    if answer is not None:
                        raw = book.encode_response(answer)
                        writer.write(
                            build_pos_frame(response_tpdu(frame.tpdu), response_header(frame.header), raw)
                        )
                await writer.drain()
        finally:
            writer.close()

    async def start() -> asyncio.Server:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        return server

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    book.port = port[0]  # type: ignore[attr-defined]
    yield book
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_cli_transaction_set(tcp_host: BookHost, tmp_path: Path) -> None:
    runner = CliRunner()
    state_file = tmp_path / "terminal.json"
    common = ["--port", str(tcp_host.port), "--state-file", str(state_file)]  # type: ignore[attr-defined]

    def run(*args: str) -> str:
        result = runner.invoke(app, [*args, *common])
        assert result.exit_code == 0, result.output
        return result.output

    def last_rrn() -> str:
        return TerminalState.load(state_file).journal[-1].rrn or ""

    run("sale", "100.00")
    run("void", last_rrn())
    assert tcp_host.requests[-1]["3"] == "200000" and tcp_host.requests[-1]["22"] == "022"
    run("sale", "50.00", "--card", "credit-chip")  # a chip card is read by its chip by default
    assert tcp_host.requests[-1]["22"] == "051" and "55" in tcp_host.requests[-1]
    sale_rrn = last_rrn()
    assert "REFUND" in run("refund", sale_rrn, "10.00")
    assert tcp_host.requests[-1]["t"] == "0220"
    run("preauth", "200", "--entry", "contactless", "--card", "credit-chip-2")
    assert tcp_host.requests[-1]["22"] == "071"
    preauth_rrn = last_rrn()
    assert "COMPLETION" in run("complete", preauth_rrn, "230.00")
    run("complete-void", last_rrn())
    run("preauth", "20")
    run("preauth-void", last_rrn())
    run("sale", "1", "--entry", "fallback", "--card", "credit-chip")
    assert tcp_host.requests[-1]["60"].endswith("62")
    output = run("settle")
    assert "settlement balanced" in output
    state = TerminalState.load(state_file)
    assert state.batch == "000002"
    raw = state_file.read_bytes()
    assert all(demo_card(c).pan.encode() not in raw for c in ("debit-ok", "credit-chip", "credit-chip-2"))

    bad = runner.invoke(app, ["void", "000000000999", *common])
    assert bad.exit_code == 2 and "no transaction with RRN 000000000999" in bad.output


def test_cli_day(tcp_host: BookHost, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "day",
            "--transactions",
            "60",
            "--seed",
            "3",
            "--port",
            str(tcp_host.port),  # type: ignore[attr-defined]
            "--state-file",
            str(tmp_path / "t.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "settlement balanced" in result.output and "trading day: 60 transactions" in result.output
    assert "622999******0012" in result.output


def test_cli_unbalanced_settle_exits_0_after_upload(tcp_host: BookHost, tmp_path: Path) -> None:
    common = ["--port", str(tcp_host.port), "--state-file", str(tmp_path / "t.json")]  # type: ignore[attr-defined]
    assert CliRunner().invoke(app, ["sale", "1", *common]).exit_code == 0
    tcp_host.skew_totals = True
    result = CliRunner().invoke(app, ["settle", *common])
    assert result.exit_code == 0, result.output
    assert "unbalanced: 1 records uploaded" in result.output
