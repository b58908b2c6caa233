"""Fuzz target: the POS port of a running host, over real TCP (the host's shell, not just the codec).

Input: the bytes a terminal sends on one connection (length-prefixed frames; the corpus holds the requests
of a recorded demo terminal day). The fuzzer sends them on a fresh connection, half-closes it (so the host
sees the end of the stream) and reads until the host closes.

Contract (pos-8583.md "Frame"; issue 9 finding 5):
- the host closes the connection within `ANSWER_WAIT_S` of the end of the stream — never a silent hang;
- every answer is a well-formed POS response (it splits, decodes, has a response MTI and a field 39 from the
  dialect's table) and never `96` (an unexpected exception inside the host);
- when every frame of the input splits, each decodable request gets an answer carrying its field 11, and
  each undecodable one whose MTI, 11 and 41 can be salvaged gets `30`; anything else gets `30` or nothing;
- the host logs no traceback, no ERROR and no raw control character;
- a legitimate terminal is still served: an echo on a new connection gets `00`.

`check_input(address, data, log)` returns the problems found (empty when the contract held); `one_input`
raises on the first problem, starting a host in-process (SQLite in a temporary folder) on first use.
Atheris: `python -m tests.fuzz.posport -runs=N .fuzz/work/posport tests/fuzz/corpus/posport`. With
`POSPORT_KEEP_GOING=<file>`, problems are appended to that file instead of stopping the run (to list every
kind of failure in one run). The replay of this corpus runs against the e2e stack in test_posport.py.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

from posgate.errors import FramingError, ProtocolError
from posgate.iso8583.codec import decode_pos, encode_pos, salvage_pos
from posgate.iso8583.framing import FrameBuffer, build_pos_frame, split_pos_frame
from posgate.iso8583.pos_dialect import POS_RESPONSE_TEXT
from posgate.terminal.messages import echo_request
from posgate.terminal.state import demo_terminal_state
from tests.fuzz._harness import fuzz

REPLAY_HERE = False  # needs a running host: tests/fuzz/test_posport.py replays the corpus
RUNS_CAP = 20_000  # make fuzz: TCP + store per input, a few dozen a second (--uncapped for more)
ANSWER_WAIT_S = 3.0
TPDU = bytes.fromhex("6000030000")
HEADER = bytes.fromhex("603210320072")


class LogWatch(logging.Handler):
    """Collects what the host must never log: tracebacks, ERROR and above, raw control characters."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception as exc:  # a record whose arguments do not format is a problem too
            text = f"<unformattable: {exc!r}>"
        first = text.splitlines()[0][:160] if text else ""
        if "exception was never retrieved" in first:  # logged when collected: maybe an earlier input's
            self.problems.append(
                f"traceback logged by {record.name}: {first} (a task of this or an earlier input)"
            )
        elif record.exc_info:
            kind = record.exc_info[0].__name__ if record.exc_info[0] else "?"
            self.problems.append(f"traceback logged by {record.name}: {kind}: {first}")
        elif record.levelno >= logging.ERROR:
            self.problems.append(f"{record.levelname} logged by {record.name}: {first}")
        if any(ord(c) < 0x20 or c == "\x7f" for c in text) and not record.exc_info:
            self.problems.append(f"raw control character in a log line of {record.name}: {text[:120]!r}")

    def take(self, collect: bool = False) -> list[str]:
        """The problems so far, cleared. `collect`: run the garbage collector first — "Task exception was
        never retrieved" is logged only when the task is collected (about 0.3 s with a host loaded)."""
        if collect:
            gc.collect()
        problems, self.problems = self.problems, []
        return problems


def _exchange(address: tuple[str, int], data: bytes, wait_s: float) -> tuple[list[bytes], bool]:
    """Send `data`, half-close, read frames until the host closes; (frame bodies, closed in time)."""
    with socket.create_connection(address, timeout=wait_s) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the host may close before it has read everything
        buffer, bodies = FrameBuffer(65535), []
        deadline = time.monotonic() + wait_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bodies, False
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return bodies, False
            except OSError:
                return bodies, True  # reset by the host: closed
            if not chunk:
                return bodies, True
            buffer.receive_data(chunk)
            try:
                while (body := buffer.next_frame()) is not None:
                    bodies.append(body)
            except FramingError:
                return bodies, True


def _expected(data: bytes, max_frame_bytes: int) -> tuple[list[tuple[str, str | None]], bool]:
    """What the host owes: (kind, STAN) per frame — kind `answer` (a decodable request), `30` (undecodable,
    MTI/11/41 salvaged) or `any` (30 or nothing); and whether every frame split cleanly.

    A frame the host cannot answer at all (undecodable without MTI/11/41, or a response MTI) closes the
    connection (pos-8583.md "Frame"): the frames after it are owed nothing — they may have been dispatched
    before the close and answered, or not."""
    buffer = FrameBuffer(max_frame_bytes)
    buffer.receive_data(data)
    owed: list[tuple[str, str | None]] = []
    clean = True
    try:
        while (body := buffer.next_frame()) is not None:
            if any(kind == "any" for kind, _ in owed):
                owed.append(("any", None))
                continue
            try:
                payload = split_pos_frame(body).payload
            except FramingError:
                clean = False
                continue
            try:
                request = decode_pos(payload)
            except ProtocolError:
                salvaged = salvage_pos(payload)
                mti = salvaged.get("t", "")
                if mti and int(mti[2]) % 2 == 0 and "11" in salvaged and "41" in salvaged:
                    owed.append(("30", salvaged["11"]))
                else:
                    owed.append(("any", None))
                continue
            if int(request["t"][2]) % 2 == 0:
                owed.append(("answer", request.get("11")))
            else:
                owed.append(("any", None))
    except FramingError:
        clean = False
    if buffer.pending_bytes:
        clean = False
    return owed, clean


def decode_answer(payload: bytes) -> dict[str, str]:
    """An answer as the codec decodes it, with any response MTI: an unknown request type (`0900`) is answered
    `0910` with `30`, and `0910` is in no table of the dialect."""
    mti = payload[:2].hex()
    if len(mti) != 4 or not mti.isdigit():
        return decode_pos(payload)  # raises the codec's own error
    answer = decode_pos(bytes.fromhex("0210") + payload[2:])
    answer["t"] = mti
    return answer


def legit_echo(stan: str = "999999") -> bytes:
    return build_pos_frame(TPDU, HEADER, encode_pos(echo_request(demo_terminal_state(), stan)))


def check_input(
    address: tuple[str, int], data: bytes, log: LogWatch, max_frame_bytes: int = 2048, collect: bool = False
) -> list[str]:
    """Every way the host broke the contract on this input (module docstring); empty when it held."""
    bodies, closed = _exchange(address, data, ANSWER_WAIT_S)
    problems = check_answers(data, bodies, closed, max_frame_bytes)
    problems += log.take(collect)
    echo, echo_closed = _exchange(address, legit_echo(), ANSWER_WAIT_S)
    codes = [decode_pos(split_pos_frame(b).payload).get("39") for b in echo]
    if codes != ["00"]:
        problems.append(f"a legitimate echo afterwards got {codes} (closed: {echo_closed})")
    return problems


def check_answers(data: bytes, bodies: list[bytes], closed: bool, max_frame_bytes: int = 2048) -> list[str]:
    """What the host sent back for `data` (frame bodies; whether it closed in time), against the contract;
    the problems found (the log and the legitimate echo are the caller's)."""
    problems: list[str] = []
    if not closed:
        problems.append(f"connection still open {ANSWER_WAIT_S:g} s after the end of the stream (hang)")
    answers: list[dict[str, str]] = []
    for body in bodies:
        try:
            answer = decode_answer(split_pos_frame(body).payload)
        except ProtocolError as exc:
            problems.append(f"an answer does not decode: {exc}")
            continue
        answers.append(answer)
        mti, code = answer.get("t", ""), answer.get("39")
        if int(mti[2]) % 2 == 0:
            problems.append(f"an answer with a request MTI {mti}")
        if code not in POS_RESPONSE_TEXT:
            problems.append(f"answer {mti} with field 39 {code!r} not in the response-code table")
        elif code == "96":
            problems.append(f"answer {mti} with 96 (system error: an exception inside the host)")
    owed, clean = _expected(data, max_frame_bytes)
    if clean and closed:
        stans = [a.get("11") for a in answers]
        for kind, stan in owed:
            if kind == "answer" and stan not in stans:
                problems.append(f"a decodable request (STAN {stan}) got no answer")
            if kind == "30" and not any(a.get("11") == stan and a.get("39") == "30" for a in answers):
                problems.append(f"an undecodable request (STAN {stan}, MTI and 41 readable) got no 30")
        if len(answers) > len(owed):
            problems.append(f"{len(answers)} answers to {len(owed)} frames")
    return problems


# ---------------------------------------------------------------------------------------- atheris mode

_HOST: dict[str, object] = {"inputs": 0}
COLLECT_EVERY = 200


def _start_host() -> tuple[tuple[str, int], LogWatch]:
    """A whole stack (issuer simulator + host) on SQLite in a background thread's event loop."""
    from posgate.bootstrap.stack import start_all
    from posgate.config import Settings
    from posgate.logs import configure_logging

    workdir = Path(tempfile.mkdtemp(prefix="posgate-fuzz-posport-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    settings = Settings(
        data_dir=workdir / "data",
        database_url=f"sqlite:///{workdir / 'posgate.sqlite'}",
        pos_port=0,
        issuer_ports=[0, 0],
        env="test",
        terminal_cache_s=0.0,
        issuer_timeout_s=1.0,
    )
    configure_logging(settings.data_dir, "INFO", console=False)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="posport-host", daemon=True).start()
    running = asyncio.run_coroutine_threadsafe(start_all(settings), loop).result(60)
    watch = LogWatch()
    logging.getLogger().addHandler(watch)
    _HOST.update(address=running.pos_address, watch=watch, running=running, loop=loop)
    return running.pos_address, watch


def one_input(data: bytes) -> None:
    if "address" not in _HOST:
        _start_host()
    address, watch = _HOST["address"], _HOST["watch"]
    _HOST["inputs"] = count = int(_HOST["inputs"]) + 1  # type: ignore[call-overload]
    problems = check_input(address, data, watch, collect=count % COLLECT_EVERY == 0)  # type: ignore[arg-type]
    if not problems:
        return
    keep_going = os.environ.get("POSPORT_KEEP_GOING")
    if keep_going:
        with open(keep_going, "a", encoding="utf-8") as out:
            out.writelines(f"{p}\t{data.hex()}\n" for p in problems)
        return
    raise AssertionError("; ".join(problems))


if __name__ == "__main__":
    fuzz(Path(__file__).stem, one_input)
