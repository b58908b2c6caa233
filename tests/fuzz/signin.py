"""Fuzz target: field 62 of the 0810 as the terminal unwraps it (`unwrap_working_keys`).

Input: the bytes of a field 62.
Contract: returns the working keys or raises `SecurityError` (one line, naming field 62) — a wrong length, a
key whose check value does not match; the fuzzer also gets a real field 62 issued under the same TMK with one
byte replaced by the input's first byte, which must still be refused or yield keys that re-encrypt to it.
"""

from __future__ import annotations

from pathlib import Path

from posgate.errors import SecurityError
from posgate.security.keys import encrypt_under, kcv_bytes
from posgate.security.signin import issue_working_keys, unwrap_working_keys
from posgate.terminal.state import demo_terminal_state
from tests.fuzz._harness import check_refusal, fuzz

_TMK = demo_terminal_state().tmk  # the corpus holds 0810s recorded from the demo terminal
_KEYS, _FIELD62 = issue_working_keys(_TMK, with_tdk=True)


def _check(field62: bytes) -> None:
    try:
        keys = unwrap_working_keys(_TMK, field62)
    except SecurityError as error:
        check_refusal(error)
        assert str(error).startswith("field 62: "), str(error)
        return
    clear = [keys.pik, keys.mak] + ([keys.tdk] if keys.tdk is not None else [])
    assert b"".join(encrypt_under(_TMK, k) + kcv_bytes(k) for k in clear) == field62


def one_input(data: bytes) -> None:
    _check(data)
    if data:
        at = data[0] % len(_FIELD62)
        _check(_FIELD62[:at] + data[1:2] + _FIELD62[at + 1 :] if len(data) > 1 else _FIELD62[:at])


if __name__ == "__main__":
    fuzz(Path(__file__).stem, one_input)
