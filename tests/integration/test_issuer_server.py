"""The issuer simulator over real TCP sockets, against a fresh store seeded with the demo fixture.

The client here is independent of posgate's codec, as the network spec promises any issuer or acquirer
can be: pyiso8583's `default_ascii` + a 2-byte big-endian length, the MAC computed by hand over the bytes
before field 64. Only the PIN block and the MAC primitive come from posgate.security.
The main sale/reversal test also runs on PostgreSQL (`POSGATE_TEST_PG_URL`), in a database of its own:
skipped when the server cannot be reached, failed when the `CI` environment variable is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import pathlib
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import iso8583
import iso8583.specs
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from posgate.bootstrap.seed import load_demo_fixture
from posgate.errors import ConfigError
from posgate.fixtures.document import read_demo_fixture
from posgate.issuer.server import IssuerSimulator
from posgate.security.at_rest import CardVault
from posgate.security.network_mac import network_mac, verify_network_mac
from posgate.security.pin import encode_pin_block
from posgate.store.db import make_engine, migrate
from posgate.store.runtime import Store

SPEC = iso8583.specs.default_ascii
VECTORS = json.loads(pathlib.Path("/work/shared/spec/fixture-vectors.json").read_text())
TRACKS = {card["pan"]: card["track2"] for card in VECTORS["cards"]}
BANK_A, BANK_B = "Demo Bank A", "Demo Bank B"
ZPK = {
    BANK_A: bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"),
    BANK_B: bytes.fromhex("FEDCBA98765432100123456789ABCDEF"),
}
ZAK = {
    BANK_A: bytes.fromhex("89ABCDEF0123456776543210FEDCBA98"),
    BANK_B: bytes.fromhex("76543210FEDCBA9889ABCDEF01234567"),
}
ACQUIRER = "49990000"
TRANSMISSION_DT = "1126101500"
NOW = dt.datetime(2026, 11, 26, 10, 15, tzinfo=dt.UTC)
PG_URL = os.environ.get("POSGATE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SILENCE_S = 0.3

_stans = itertools.count(1)


def next_stan() -> str:
    return f"{next(_stans) % 1_000_000:06d}"


# ---- stores


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A database of its own for this test session on the PostgreSQL at POSGATE_TEST_PG_URL."""
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        conn = admin.connect()
    except OperationalError as exc:
        admin.dispose()
        reason = f"PostgreSQL not reachable at POSGATE_TEST_PG_URL: {type(exc).__name__}"
        if os.environ.get("CI"):  # as tests/conftest.py: CI has PostgreSQL, so missing it is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"posgate_issuer_{secrets.token_hex(4)}"
    conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.close()
        admin.dispose()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'posgate.sqlite'}"
    url: str = request.getfixturevalue("pg_database_url")
    engine = create_engine(url)
    with engine.begin() as conn:  # a fresh schema for every test
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@dataclass
class Harness:
    sim: IssuerSimulator
    store: Store
    vault: CardVault

    def port(self, bank: str) -> int:
        return self.sim.ports[bank]

    @contextlib.asynccontextmanager
    async def client(self, bank: str = BANK_A) -> AsyncIterator[Client]:
        client = await Client.connect(self.port(bank), bank)
        try:
            yield client
        finally:
            await client.close()


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    engine = make_engine(database_url)
    migrate(engine)
    vault = CardVault(os.urandom(32))
    store = Store(engine, threads=8)
    store.transact(lambda session: load_demo_fixture(session, vault, read_demo_fixture(), "test"))
    sim = IssuerSimulator(store, vault, clock=lambda: NOW)
    await sim.start(ports={BANK_A: 0, BANK_B: 0})
    try:
        yield Harness(sim, store, vault)
    finally:
        await sim.stop()
        store.close()


# ---- client


def encode(msg: dict[str, str], zak: bytes | None) -> bytes:
    """pyiso8583 encoding; with `zak`, the MAC as the last field — 64, or 128 when the message has a
    secondary bitmap — the retail MAC of every byte before it (network-8583.md)."""
    doc = dict(msg)
    if zak is None:
        raw, _ = iso8583.encode(doc, SPEC)
        return bytes(raw)
    doc["128" if any(key.isdigit() and int(key) > 64 for key in doc) else "64"] = "0" * 16
    raw, _ = iso8583.encode(doc, SPEC)
    covered = bytes(raw[:-16])
    return covered + network_mac(zak, covered).hex().upper().encode()


def encode_mac_before_90(msg: dict[str, str], zak: bytes) -> bytes:
    """The layout network-8583.md no longer allows: the MAC in field 64, over the bytes before it, with
    field 90 after it (uncovered)."""
    doc = {**msg, "64": "0" * 16}
    raw, enc = iso8583.encode(doc, SPEC)
    start = sum(
        len(part["len"]) + len(part["data"])
        for key, part in enc.items()
        if key in ("t", "p", "1") or (key.isdigit() and int(key) < 64)
    )
    mac = network_mac(zak, bytes(raw[:start])).hex().upper().encode()
    return bytes(raw[:start] + mac + raw[start + 16 :])


class Client:
    """A network-dialect peer: send framed messages, collect answers by field 11."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bank: str) -> None:
        self.reader, self.writer, self.bank = reader, writer, bank
        self.zak: bytes | None = ZAK[bank]
        self._answers: dict[str, dict[str, str]] = {}
        self.raw_answers: list[bytes] = []

    @classmethod
    async def connect(cls, port: int, bank: str) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, bank)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    async def send_raw(self, payload: bytes) -> None:
        self.writer.write(len(payload).to_bytes(2, "big") + payload)
        await self.writer.drain()

    async def send(self, msg: dict[str, str], mac: bool = True) -> None:
        await self.send_raw(encode(msg, self.zak if mac else None))

    async def read_one(self, timeout: float = 2.0) -> dict[str, str]:
        head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        body = await asyncio.wait_for(self.reader.readexactly(int.from_bytes(head, "big")), timeout)
        self.raw_answers.append(body)
        decoded, _ = iso8583.decode(body, SPEC)
        return decoded

    async def answer(self, stan: str, timeout: float = 2.0) -> dict[str, str]:
        while stan not in self._answers:
            msg = await self.read_one(timeout)
            self._answers[msg["11"]] = msg
        return self._answers.pop(stan)

    async def call(self, msg: dict[str, str], mac: bool = True) -> dict[str, str]:
        await self.send(msg, mac)
        return await self.answer(msg["11"])

    async def silent(self, seconds: float = SILENCE_S) -> bool:
        """True when nothing arrives for `seconds`."""
        try:
            await self.read_one(seconds)
        except TimeoutError:
            return True
        return False

    async def closed_by_peer(self, timeout: float = 2.0) -> bool:
        try:
            data = await asyncio.wait_for(self.reader.read(1), timeout)
        except (ConnectionError, OSError):
            return True
        return data == b""


def financial(
    pan: str,
    amount_fen: int,
    processing_code: str = "000000",
    mti: str = "0200",
    pin: str | None = None,
    bank: str = BANK_A,
    track: str | None = "fixture",
    stan: str | None = None,
    **extra: str,
) -> dict[str, str]:
    msg = {
        "t": mti,
        "3": processing_code,
        "4": f"{amount_fen:012d}",
        "7": TRANSMISSION_DT,
        "11": stan or next_stan(),
        "12": "101500",
        "13": "1126",
        "22": "021" if pin else "022",
        "25": "00",
        "32": ACQUIRER,
        "37": f"{secrets.randbelow(10**12):012d}",
        "41": "10000001",
        "42": "898440153110001",
        "49": "156",
    }
    if track == "fixture":
        msg["35"] = TRACKS[pan]
    elif track:
        msg["35"] = track
    else:
        msg["2"] = pan
    if pin is not None:
        msg["52"] = encode_pin_block(pin, pan, ZPK[bank]).hex().upper()
    msg.update(extra)
    return msg


def balance_inquiry(pan: str, bank: str = BANK_A) -> dict[str, str]:
    msg = financial(pan, 0, "310000", pin="123456" if pan != "6229990000000053" else "888888", bank=bank)
    del msg["4"]
    return msg


def reversal_of(original: dict[str, str], stan: str | None = None) -> dict[str, str]:
    field90 = original["t"] + original["11"] + original["7"] + ACQUIRER.zfill(11) + "0" * 11
    msg = {key: original[key] for key in ("3", "4", "32", "37", "41", "42", "49") if key in original}
    msg.update({"t": "0420", "7": TRANSMISSION_DT, "11": stan or next_stan(), "39": "98", "90": field90})
    return msg


async def available(client: Client, pan: str) -> int:
    answer = await client.call(balance_inquiry(pan, client.bank))
    assert answer["39"] == "00", answer
    field54 = answer["54"]
    assert field54[2:8] == "02156C" and len(field54) == 20
    return int(field54[8:])


# ---- network management


async def test_sign_on_echo_sign_off(harness: Harness) -> None:
    async with harness.client() as client:
        for code in ("001", "301", "002"):
            stan = next_stan()
            answer = await client.call({"t": "0800", "7": TRANSMISSION_DT, "11": stan, "70": code}, mac=False)
            assert (answer["t"], answer["11"], answer["39"], answer["70"]) == ("0810", stan, "00", code)
        stan = next_stan()
        answer = await client.call({"t": "0800", "7": TRANSMISSION_DT, "11": stan, "70": "999"}, mac=False)
        assert answer["39"] == "30"


async def test_responses_carry_a_good_mac(harness: Harness) -> None:
    async with harness.client() as client:
        await client.call(financial("6229990000000012", 100, pin="123456"))
        raw = client.raw_answers[-1]
        assert verify_network_mac(ZAK[BANK_A], raw[:-16], bytes.fromhex(raw[-16:].decode()))


# ---- sales and reversals


BOTH_BACKENDS = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@BOTH_BACKENDS
async def test_sale_then_reversal_restores_the_balance_once(
    harness: Harness, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="posgate")
    pan = "6229990000000012"
    async with harness.client() as client:
        assert await available(client, pan) == 1_000_000
        sale = financial(pan, 12_345, pin="123456")
        answer = await client.call(sale)
        assert answer["t"] == "0210" and answer["39"] == "00"
        assert len(answer["38"]) == 6 and answer["38"].isdigit()
        for key in ("3", "4", "7", "11", "12", "13", "32", "37", "41", "42", "49"):
            assert answer[key] == sale[key]
        assert not {"2", "14", "35", "52", "55"} & answer.keys()
        assert await available(client, pan) == 1_000_000 - 12_345

        repeat = await client.call(sale)  # the same request again: same answer, not applied again
        assert (repeat["39"], repeat["38"]) == ("00", answer["38"])
        assert await available(client, pan) == 1_000_000 - 12_345

        for _ in range(3):
            reply = await client.call(reversal_of(sale))
            assert (reply["t"], reply["39"]) == ("0430", "00")
        assert await available(client, pan) == 1_000_000

        late = await client.call(sale)  # the original again after its reversal: declined, not applied
        assert late["39"] == "05" and "38" not in late
        assert await available(client, pan) == 1_000_000
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "posgate.issuer" in {record.name for record in caplog.records}
    assert pan not in logged and TRACKS[pan] not in logged and sale["52"] not in logged


@BOTH_BACKENDS
async def test_reversal_before_its_original_declines_the_original(harness: Harness, backend: str) -> None:
    pan = "6229990000000012"
    async with harness.client() as client:
        sale = financial(pan, 5_000, pin="123456")
        reply = await client.call(reversal_of(sale))
        assert reply["39"] == "00"
        answer = await client.call(sale)
        assert answer["39"] == "05" and "38" not in answer
        assert await available(client, pan) == 1_000_000
        assert (await client.call(reversal_of(sale)))["39"] == "00"
        assert await available(client, pan) == 1_000_000


async def test_reversal_of_a_decline_changes_nothing(harness: Harness) -> None:
    pan = "6229990000000020"
    async with harness.client() as client:
        sale = financial(pan, 1_001, pin="123456")
        assert (await client.call(sale))["39"] == "51"
        assert (await client.call(reversal_of(sale)))["39"] == "00"
        assert await available(client, pan) == 1_000


async def test_same_key_other_request_is_94(harness: Harness) -> None:
    pan = "6229990000000012"
    async with harness.client() as client:
        sale = financial(pan, 100, pin="123456")
        assert (await client.call(sale))["39"] == "00"
        assert (await client.call({**sale, "4": "000000000200"}))["39"] == "94"
        assert await available(client, pan) == 1_000_000 - 100


async def test_credit_card_sale_and_refund(harness: Harness) -> None:
    pan = "6228880000000024"
    async with harness.client(BANK_B) as client:
        assert await available(client, pan) == 200_000
        assert (await client.call(financial(pan, 150_000, pin="123456", bank=BANK_B)))["39"] == "00"
        assert (await client.call(financial(pan, 50_001, pin="123456", bank=BANK_B)))["39"] == "51"
        refund = financial(pan, 20_000, "200000", mti="0220", bank=BANK_B)
        assert (await client.call(refund))["t"] == "0230"
        assert await available(client, pan) == 70_000
        balance = await client.call(balance_inquiry(pan, BANK_B))
        assert balance["54"] == "3002156C000000070000"


async def test_preauthorization_completion_and_void(harness: Harness) -> None:
    pan = "6229990000000012"
    async with harness.client() as client:
        preauth = financial(pan, 10_000, "030000", mti="0100", pin="123456", **{"25": "06"})
        hold = await client.call(preauth)
        assert (hold["t"], hold["39"]) == ("0110", "00")
        assert await available(client, pan) == 990_000
        completion = financial(pan, 8_000, "000000", **{"25": "06", "38": hold["38"]})
        done = await client.call(completion)
        assert (done["39"], done["38"]) == ("00", hold["38"])
        assert await available(client, pan) == 992_000
        assert (await client.call(reversal_of(completion)))["39"] == "00"
        assert await available(client, pan) == 990_000  # the hold is back, the posting undone

        void = financial(pan, 10_000, "200000", mti="0100", **{"25": "06", "38": hold["38"]})
        assert (await client.call(void))["39"] == "00"
        assert await available(client, pan) == 1_000_000
        again = financial(pan, 10_000, "200000", mti="0100", **{"25": "06", "38": hold["38"]})
        assert (await client.call(again))["39"] == "25"


# ---- declines


async def test_insufficient_funds_51(harness: Harness) -> None:
    async with harness.client() as client:
        assert (await client.call(financial("6229990000000020", 1_001, pin="123456")))["39"] == "51"
        assert (await client.call(financial("6229990000000020", 1_000, pin="123456")))["39"] == "00"
        assert await available(client, "6229990000000020") == 0


async def test_wrong_pin_55_third_75_and_reset_by_a_right_pin(harness: Harness) -> None:
    pan = "6229990000000053"  # PIN 888888

    async def sale(pin: str) -> str:
        return (await client.call(financial(pan, 100, pin=pin)))["39"]

    async with harness.client() as client:
        assert [await sale("123456"), await sale("123456")] == ["55", "55"]
        assert await sale("888888") == "00"  # resets the count
        assert [await sale("123456"), await sale("123456"), await sale("123456")] == ["55", "55", "75"]
        assert await sale("888888") == "75"  # blocked now
        assert await available(client, "6229990000000012") == 1_000_000  # other cards unaffected


@pytest.mark.parametrize(
    ("pan", "code"),
    [("6229990000000038", "54"), ("6229990000000046", "41")],
)
async def test_card_state_declines(harness: Harness, pan: str, code: str) -> None:
    async with harness.client() as client:
        answer = await client.call(financial(pan, 100, pin="123456"))
        assert answer["39"] == code and "38" not in answer


async def test_unknown_card_14(harness: Harness) -> None:
    async with harness.client() as client:
        answer = await client.call(financial("6229990000000095", 100, track=None, **{"14": "3012"}))
        assert answer["39"] == "14"
        # a card of the other bank is unknown here too
        other = await client.call(financial("6228880000000024", 100, track=None, **{"14": "3012"}))
        assert other["39"] == "14"


async def test_bad_cvv_in_track_2_is_05(harness: Harness) -> None:
    pan = "6229990000000012"
    bad_track = TRACKS[pan][:-5] + "10400"  # CVV 104 instead of 103
    async with harness.client() as client:
        assert (await client.call(financial(pan, 100, pin="123456", track=bad_track)))["39"] == "05"
        assert await available(client, pan) == 1_000_000


async def test_bad_or_missing_mac_is_a0_and_not_applied(harness: Harness) -> None:
    pan = "6229990000000012"
    async with harness.client() as client:
        sale = financial(pan, 100, pin="123456")
        payload = bytearray(encode(sale, ZAK[BANK_A]))
        payload[-1] = ord("0") if payload[-1] != ord("0") else ord("1")
        await client.send_raw(bytes(payload))
        assert (await client.answer(sale["11"]))["39"] == "A0"
        unsigned = financial(pan, 100, pin="123456")
        assert (await client.call(unsigned, mac=False))["39"] == "A0"
        assert await available(client, pan) == 1_000_000


async def test_the_mac_is_the_last_field_and_covers_every_field_before_it(harness: Harness) -> None:
    pan = "6229990000000012"
    async with harness.client() as client:
        sale = financial(pan, 100, pin="123456")
        mac = encode(sale, ZAK[BANK_A])[-16:].decode()
        forged = {**sale, "4": f"{200:012d}", "64": mac}  # the MAC of the 100 fen sale on a 200 fen one
        await client.send_raw(encode(forged, None))
        assert (await client.answer(sale["11"]))["39"] == "A0"
        assert await available(client, pan) == 1_000_000

        assert (await client.call(sale))["39"] == "00"
        reversal = reversal_of(sale)  # field 90: a secondary bitmap, the MAC is field 128
        await client.send_raw(encode(reversal, ZAK[BANK_B]))  # MACed under another bank's key
        assert (await client.answer(reversal["11"]))["39"] == "A0"
        assert await available(client, pan) == 1_000_000 - 100

        other = financial(pan, 300, pin="123456")
        assert (await client.call(other))["39"] == "00"
        # the MAC of a reversal of `other`, its field 90 then changed to name `sale`
        of_other = reversal_of(other)
        forged_90 = encode(of_other, ZAK[BANK_A]).replace(of_other["90"].encode(), reversal["90"].encode())
        await client.send_raw(forged_90)
        assert (await client.answer(of_other["11"]))["39"] == "A0"
        # the old layout: a good MAC in field 64, over the bytes before it, field 90 after it
        await client.send_raw(encode_mac_before_90(reversal, ZAK[BANK_A]))
        assert (await client.answer(reversal["11"]))["39"] == "A0"
        assert await available(client, pan) == 1_000_000 - 100 - 300

        assert (await client.call(reversal))["39"] == "00"
        assert await available(client, pan) == 1_000_000 - 300


# ---- chip


def chip_field55(arqc: str) -> str:
    tags = [
        ("9F26", arqc),
        ("9F27", "80"),
        ("9F10", "07010103A00000"),
        ("9F37", "11223344"),
        ("9F36", "0001"),
        ("95", "0000000000"),
        ("9A", "261126"),
        ("9C", "00"),
        ("9F02", "000000008800"),
        ("5F2A", "0156"),
        ("82", "7C00"),
        ("9F1A", "0156"),
        ("9F03", "000000000000"),
        ("9F33", "E0E1C8"),
        ("9F34", "420300"),
        ("84", "A000000333010102"),
    ]
    return "".join(tag + f"{len(value) // 2:02X}" + value for tag, value in tags)


async def test_chip_arqc_verified_and_arpc_returned(harness: Harness) -> None:
    chip = VECTORS["chip"]
    pan = chip["pan"]
    async with harness.client(BANK_B) as client:
        chip_fields = {"22": "051", "23": "001"}
        good = financial(pan, 8_800, bank=BANK_B, **chip_fields, **{"55": chip_field55(chip["arqc"])})
        answer = await client.call(good)
        assert answer["39"] == "00"
        assert answer["55"] == "910A" + chip["arpc"] + chip["arc"]

        bad = financial(pan, 8_800, bank=BANK_B, **chip_fields, **{"55": chip_field55("00" * 8)})
        declined = await client.call(bad)
        assert declined["39"] == "05"
        assert declined["55"].startswith("910A") and declined["55"].endswith("3035")
        assert await available(client, pan) == 5_000_000 - 8_800


# ---- concurrency


@BOTH_BACKENDS
async def test_fifty_concurrent_sales_never_overdraw(harness: Harness, backend: str) -> None:
    pan = "6229990000000020"  # 10.00 CNY

    async def burst(n: int) -> list[str]:
        async with harness.client() as client:
            sales = [financial(pan, 100) for _ in range(n)]
            for sale in sales:  # pipelined on one connection
                await client.send(sale)
            return [(await client.answer(sale["11"]))["39"] for sale in sales]

    results = await asyncio.gather(*(burst(5) for _ in range(10)))
    codes = [code for batch in results for code in batch]
    assert codes.count("00") == 10 and codes.count("51") == 40
    async with harness.client() as client:
        assert await available(client, pan) == 0


@BOTH_BACKENDS
async def test_concurrent_copies_of_one_request_apply_once(harness: Harness, backend: str) -> None:
    pan = "6229990000000012"
    sale = financial(pan, 700, pin="123456")

    async def send_copy() -> dict[str, str]:
        async with harness.client() as client:
            return await client.call(sale)

    answers = await asyncio.gather(*(send_copy() for _ in range(8)))
    assert {(answer["39"], answer["38"]) for answer in answers} == {("00", answers[0]["38"])}
    async with harness.client() as client:
        assert await available(client, pan) == 1_000_000 - 700


@BOTH_BACKENDS
async def test_concurrent_reversals_and_originals_undo_exactly_once(harness: Harness, backend: str) -> None:
    pan = "6229990000000012"
    sales = [financial(pan, 1_000 + i, pin="123456") for i in range(6)]

    async def send(msg: dict[str, str]) -> dict[str, str]:
        async with harness.client() as client:
            return await client.call(msg)

    # each sale races two copies of its reversal
    jobs = [send(msg) for sale in sales for msg in (sale, reversal_of(sale), reversal_of(sale))]
    answers = await asyncio.gather(*jobs)
    assert all(answer["39"] in ("00", "05") for answer in answers)
    async with harness.client() as client:
        assert await available(client, pan) == 1_000_000


# ---- faults


async def test_drop_replies_applies_without_answering(harness: Harness) -> None:
    pan = "6229990000000012"
    async with harness.client() as client:
        harness.sim.set_fault(BANK_A, "drop_replies")
        sale = financial(pan, 2_500, pin="123456")
        await client.send(sale)
        assert await client.silent()
        echo = await client.call({"t": "0800", "7": TRANSMISSION_DT, "11": next_stan(), "70": "301"}, False)
        assert echo["39"] == "00"  # the link itself is up
        harness.sim.set_fault(BANK_A, "none")
        assert await available(client, pan) == 1_000_000 - 2_500
        assert (await client.call(reversal_of(sale)))["39"] == "00"
        assert await available(client, pan) == 1_000_000


async def test_drop_requests_neither_applies_nor_answers(harness: Harness) -> None:
    pan = "6229990000000012"
    async with harness.client() as client:
        harness.sim.set_fault(BANK_A, "drop_requests")
        assert harness.sim.fault(BANK_A) == "drop_requests"
        await client.send(financial(pan, 2_500, pin="123456"))
        assert await client.silent()
        harness.sim.set_fault(BANK_A, "none")
        assert await available(client, pan) == 1_000_000


async def test_link_down_and_up_again(harness: Harness) -> None:
    port = harness.port(BANK_A)
    async with harness.client() as client:
        await harness.sim.set_online(BANK_A, False)
        assert await client.closed_by_peer()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    async with harness.client(BANK_B) as other:  # the other bank is still up
        assert await available(other, "6228880000000024") == 200_000
    await harness.sim.set_online(BANK_A, True)
    assert harness.port(BANK_A) == port
    async with harness.client() as client:
        assert await available(client, "6229990000000012") == 1_000_000


async def test_close_fault_then_none_listens_again(harness: Harness) -> None:
    harness.sim.set_fault(BANK_A, "close")
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", harness.port(BANK_A))
    harness.sim.set_fault(BANK_A, "none")
    for _ in range(50):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", harness.port(BANK_A))
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        break
    else:
        pytest.fail("the bank did not listen again")


def test_unknown_fault_is_refused(harness: Harness) -> None:
    with pytest.raises(ConfigError, match="unknown fault 'slow'"):
        harness.sim.set_fault(BANK_A, "slow")


# ---- bad input


async def test_undecodable_message_answered_30_when_mti_and_stan_read(harness: Harness) -> None:
    async with harness.client() as client:
        stan = next_stan()
        good = encode({"t": "0200", "3": "000000", "11": stan, "41": "10000001"}, None)
        bad = good[:-8] + b"1000000\xff"  # field 41 is not text
        await client.send_raw(bad)
        answer = await client.answer(stan)
        assert (answer["t"], answer["39"]) == ("0210", "30")
        # a request missing what the issuer needs is a format error too
        stan = next_stan()
        incomplete = {"t": "0200", "3": "000000", "7": TRANSMISSION_DT, "11": stan}
        assert (await client.call(incomplete))["39"] == "30"
        # and the connection keeps serving
        assert await available(client, "6229990000000012") == 1_000_000


async def test_unreadable_message_closes_only_that_connection(harness: Harness) -> None:
    async with harness.client() as other, harness.client() as client:
        await client.send_raw(b"hello, issuer")
        assert await client.closed_by_peer()
        assert await available(other, "6229990000000012") == 1_000_000


async def test_bad_frame_length_closes_the_connection(harness: Harness) -> None:
    async with harness.client() as client:
        client.writer.write(b"\xff\xff" + b"0" * 10)
        await client.writer.drain()
        assert await client.closed_by_peer()
    async with harness.client() as client:
        assert await available(client, "6229990000000012") == 1_000_000


async def test_pipelined_requests_each_answered_with_its_stan(harness: Harness) -> None:
    async with harness.client() as client:
        requests = [balance_inquiry("6229990000000012") for _ in range(3)]
        requests.append({"t": "0800", "7": TRANSMISSION_DT, "11": next_stan(), "70": "301"})
        frames = b""
        for msg in requests:
            payload = encode(msg, ZAK[BANK_A] if msg["t"] != "0800" else None)
            frames += len(payload).to_bytes(2, "big") + payload
        client.writer.write(frames)
        await client.writer.drain()
        for msg in requests:
            assert (await client.answer(msg["11"]))["39"] == "00"
