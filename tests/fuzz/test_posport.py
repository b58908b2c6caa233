"""The POS-port fuzzer against the in-process stack of the e2e tests (tests/e2e/conftest.py `stack`).

Replays the posport corpus (recorded requests of a demo terminal day, and inputs that once broke the host),
then a fixed number of mutations of those frames (seeded, so a failure reproduces): bit flips, truncations,
lying length prefixes, response and unknown MTIs, control characters in field 41, pipelined and spliced
frames. Each input must meet `tests.fuzz.posport.check_input`'s contract; then a legitimate terminal signs
in and sells. `make fuzz FUZZ_TARGETS=posport` is the coverage-guided long version.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from posgate.bootstrap.stack import Running
from posgate.iso8583.codec import decode_pos, encode_pos
from posgate.iso8583.framing import build_pos_frame, split_pos_frame
from posgate.terminal import TerminalClient, demo_terminal_state
from posgate.terminal.cards import demo_card
from tests.e2e.conftest import stack  # noqa: F401  (the e2e fixture, used here as is)
from tests.fuzz import posport_mem
from tests.fuzz._harness import corpus_files
from tests.fuzz.posport import HEADER, TPDU, LogWatch, _expected, check_input, legit_echo

MUTATIONS = 300
SEED = 9


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: this fuzzes the POS port, the store is not the target."""
    return f"sqlite:///{tmp_path / 'posgate.sqlite'}"


@pytest.fixture
def log_watch(stack: Running) -> Iterator[LogWatch]:  # noqa: F811
    watch = LogWatch()
    logging.getLogger().addHandler(watch)
    try:
        yield watch
    finally:
        logging.getLogger().removeHandler(watch)


def _frame(payload: bytes) -> bytes:
    return build_pos_frame(TPDU, HEADER, payload)


def mutate(rng: random.Random, seeds: list[bytes]) -> tuple[str, bytes]:
    """One mutated input and the name of the mutation."""
    frame = rng.choice(seeds)
    payload = split_pos_frame(frame[2:]).payload
    kind = rng.choice(
        [
            "flip",
            "truncate",
            "length",
            "response_mti",
            "unknown_mti",
            "tid_control",
            "pipeline",
            "splice",
            "noise",
        ]
    )
    if kind == "flip":
        out = bytearray(payload)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return kind, _frame(bytes(out))
    if kind == "truncate":
        return kind, _frame(payload[: rng.randrange(2, len(payload))])
    if kind == "length":
        lie = rng.choice([0, 1, len(frame) - 3, len(frame) + 5, 2049, 0xFFFF])
        return kind, lie.to_bytes(2, "big") + frame[2:]
    msg = decode_pos(payload)
    if kind == "response_mti":
        msg["t"] = msg["t"][:2] + str(int(msg["t"][2]) | 1) + msg["t"][3]
        return kind, _frame(encode_pos(msg))
    if kind == "unknown_mti":
        return kind, _frame(rng.choice([b"\x09\x00", b"\x02\x40", b"\x99\x99"]) + payload[2:])
    if kind == "tid_control":  # written over the encoded bytes: the codec refuses to encode them
        tid = rng.choice([b"\n1000000", b"1000\r\n01", b"\x1b[2J1000", b"1000000\x00"])
        raw = encode_pos({**msg, "41": "\x7e" * 8})
        return kind, _frame(raw.replace(b"\x7e" * 8, tid))
    if kind == "pipeline":
        return kind, b"".join(rng.choice(seeds) for _ in range(rng.randint(2, 6)))
    if kind == "splice":
        other = split_pos_frame(rng.choice(seeds)[2:]).payload
        cut = rng.randrange(2, len(payload))
        return kind, _frame(payload[:cut] + other[rng.randrange(2, len(other)) :])
    return kind, _frame(payload[:2] + rng.randbytes(rng.randint(0, 120)))


async def _run(stack: Running, watch: LogWatch, inputs: list[tuple[str, bytes]]) -> list[str]:  # noqa: F811
    failures = []
    for name, data in inputs:
        problems = await asyncio.to_thread(check_input, stack.pos_address, data, watch)
        failures += [f"{name}: {p} — input {data.hex()}" for p in problems]
    failures += [f"after all inputs: {p}" for p in watch.take(collect=True)]
    return failures


async def _legitimate_terminal_sells(stack: Running) -> None:  # noqa: F811
    host, port = stack.pos_address
    async with TerminalClient(host, port, demo_terminal_state(), timeout_s=5.0) as client:
        assert (await client.sign_in()).approved
        sale = await client.sale(demo_card("6229990000000012"), "123456", 100)
        assert sale.response_code == "00", sale.summary()


async def test_the_recorded_corpus_is_answered_cleanly(stack: Running, log_watch: LogWatch) -> None:  # noqa: F811
    seeds = [("seed", p.read_bytes()) for p in corpus_files("posport") if p.name.startswith("seed-")]
    assert seeds
    failures = await _run(stack, log_watch, seeds)
    assert not failures, "\n".join(failures)
    await _legitimate_terminal_sells(stack)


@pytest.mark.parametrize("tid", ["\n1000000", "1000\r\n01", "\x1b[2J1000", "1000000\x00"])
async def test_control_characters_in_field_41_are_refused_and_never_reach_the_log(
    stack: Running,  # noqa: F811
    log_watch: LogWatch,
    tid: str,
) -> None:
    # before the codec checked "ans" for printable ASCII: `0200 sale tid=\n1000000 …` — a forged log line
    echo = decode_pos(split_pos_frame(legit_echo()[2:]).payload)
    raw = _frame(encode_pos({**echo, "41": "10000001"}))
    at = raw.index(b"10000001")
    frame = raw[:at] + tid.encode("ascii") + raw[at + 8 :]
    problems = await asyncio.to_thread(check_input, stack.pos_address, frame, log_watch, collect=True)
    assert problems == []


def _summary(failures: list[str]) -> str:
    kinds: dict[str, int] = {}
    for failure in failures:
        key = failure.split(" — ")[0]
        kinds[key] = kinds.get(key, 0) + 1
    return "\n".join(f"{n:4d} × {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))


async def test_mutated_frames_get_30_or_a_close_and_the_host_keeps_serving(
    stack: Running,  # noqa: F811
    log_watch: LogWatch,
) -> None:
    seeds = [p.read_bytes() for p in corpus_files("posport") if p.name.startswith("seed-")]
    rng = random.Random(SEED)
    inputs = [mutate(rng, seeds) for _ in range(MUTATIONS)]
    inputs += [("found", p.read_bytes()) for p in corpus_files("posport") if p.name.startswith("found-")]
    failures = await _run(stack, log_watch, inputs)
    await _legitimate_terminal_sells(stack)
    assert not failures, f"{len(failures)} failures of {len(inputs)} inputs:\n{_summary(failures)}"


async def test_the_in_memory_connection_path_answers_like_the_socket(
    stack: Running,  # noqa: F811
    log_watch: LogWatch,
) -> None:
    """The `posport_mem` target drives the POS port's connection handler without a socket: what it sees must
    be what a terminal sees (an echo gets `00`, a broken field gets `30`, a response MTI a close), and the
    corpus and the seeded mutations meet the contract through it too."""
    server = stack.host.server  # type: ignore[union-attr]
    assert await posport_mem.echo_problems(server) == []
    echo = decode_pos(split_pos_frame(legit_echo()[2:]).payload)
    bodies, closed = await posport_mem.exchange(server, _frame(encode_pos({**echo, "t": "0830"})))
    assert (bodies, closed) == ([], True)
    broken = _frame(encode_pos(echo).replace(b"898440153110001", b"89844015311000\x1b"))
    bodies, closed = await posport_mem.exchange(server, broken)
    answers = [decode_pos(split_pos_frame(b).payload) for b in bodies]
    assert closed and [(a["t"], a["39"]) for a in answers] == [("0830", "30")]
    log_watch.take()  # the warnings above are expected
    seeds = [p.read_bytes() for p in corpus_files("posport") if p.name.startswith("seed-")]
    rng = random.Random(SEED + 1)
    inputs = [("corpus", p.read_bytes()) for p in corpus_files("posport")]
    inputs += [mutate(rng, seeds) for _ in range(MUTATIONS)]
    failures = []
    for name, data in inputs:
        problems = await posport_mem.check_input(server, data, log_watch)
        failures += [f"{name}: {p} — input {data.hex()}" for p in problems]
    failures += [f"after all inputs: {p}" for p in log_watch.take(collect=True)]
    failures += await posport_mem.echo_problems(server)
    assert not failures, f"{len(failures)} failures of {len(inputs)} inputs:\n{_summary(failures)}"


def test_frames_after_one_that_closes_the_connection_are_owed_nothing() -> None:
    # found by posport_mem: a junk frame (no MTI/11/41: the host closes) then a sale, pipelined; the checker
    # owed the sale an answer, but the host had closed (pos-8583.md "Frame") — a false report, not a host bug
    data = (Path(__file__).parent / "corpus/posport/found-garbage-frame-before-a-sale").read_bytes()
    assert _expected(data, 2048) == ([("any", None), ("any", None), ("any", None)], True)
    sale = data[-(227 + 2) :]  # the third frame alone (227 bytes and its length) is owed its answer
    assert _expected(sale, 2048) == ([("answer", "000008")], True)
