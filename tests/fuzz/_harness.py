"""What every fuzz target in tests/fuzz shares: the corpus folder, the checks on a refusal, the atheris run.

A target is a module `tests/fuzz/<target>.py` with a function `one_input(data: bytes) -> None`. It returns
when the input was handled the way the contract says (decoded, or refused with the project's own error) and
raises anything else: `AssertionError` for a broken property, the unexpected exception itself otherwise.
The same function serves two callers:

- atheris (coverage-guided): `python -m tests.fuzz.<target> [libFuzzer flags] [corpus dirs]`, which calls
  `fuzz("<target>", one_input)` below; `make fuzz` runs every target this way (`tests/fuzz/__main__.py`);
- the replay test (`tests/fuzz/test_replay.py`, part of `make test`), which feeds it every file of
  `tests/fuzz/corpus/<target>/`.

A target module must import without atheris (the replay test and hypothesis do not need it).
"""

from __future__ import annotations

import gc
import re
import sys
import types
from collections.abc import Callable, Iterable
from pathlib import Path

from posgate.errors import PosgateError, ProtocolError

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_ROOT = FUZZ_DIR / "corpus"
# Code whose branches guide the fuzzer: ours, and the parsing libraries we build on (a target may add more).
INSTRUMENTED = ("posgate", "iso8583", "pyemv")

OneInput = Callable[[bytes], None]

_CLEAR_PAN = re.compile(r"(?<!\d)\d{13,19}(?!\d)")


def one_input_of(module: object) -> OneInput:
    """A target module's one-input function: `one_input`, or atheris' `TestOneInput` / `test_one_input`."""
    for name in ("one_input", "TestOneInput", "test_one_input"):
        function = getattr(module, name, None)
        if callable(function):
            return function  # type: ignore[no-any-return]
    raise AttributeError(f"{getattr(module, '__name__', module)} defines no one_input")


def corpus_dir(target: str) -> Path:
    return CORPUS_ROOT / target


def corpus_files(target: str) -> list[Path]:
    folder = corpus_dir(target)
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def check_refusal(
    error: PosgateError, data_len: int | None = None, *, fields: Iterable[int | str] | None = None
) -> None:
    """The properties every refusal has: one line, no clear PAN; a protocol error names its field and, when
    `data_len` is given, a byte position inside the input (or just past its end)."""
    text = str(error)
    assert text and "\n" not in text, f"error message is not one line: {text!r}"
    assert not _CLEAR_PAN.search(text), f"error message carries 13-19 clear digits: {text!r}"
    if isinstance(error, ProtocolError):
        assert error.field is not None, f"{type(error).__name__} without a field: {text!r}"
        if fields is not None:
            assert error.field in set(fields), f"unexpected field {error.field!r}: {text!r}"
        if data_len is not None:
            assert error.pos is not None, f"{type(error).__name__} without a position: {text!r}"
            assert 0 <= error.pos <= data_len, f"position {error.pos} outside 0..{data_len}: {text!r}"


def instrument(packages: Iterable[str] = INSTRUMENTED) -> int:
    """Add atheris coverage instrumentation to every loaded function of `packages`; the number instrumented.

    (atheris.instrument_imports only sees modules imported inside it; the targets import at the top.)
    """
    import atheris

    roots = set(packages)
    count = 0
    for obj in gc.get_objects():
        if not isinstance(obj, types.FunctionType):
            continue
        module = getattr(obj, "__module__", None) or ""
        if module.split(".", 1)[0] not in roots or module not in sys.modules:
            continue
        try:
            atheris.instrument_func(obj)
            count += 1
        except Exception:  # a function atheris cannot patch stays uninstrumented
            continue
    return count


def fuzz(target: str, one_input: OneInput, packages: Iterable[str] = INSTRUMENTED) -> None:
    """Run `one_input` under atheris with the command line's libFuzzer flags; with no corpus folder given,
    the target's corpus in the repo is read (and written: give a scratch folder first to keep it clean)."""
    import atheris

    argv = list(sys.argv)
    # libFuzzer re-runs argv[0] through the shell for -merge, -fork and -jobs: make it this module again
    argv[0] = f"{sys.executable} -m tests.fuzz.{target}"
    if not any(not arg.startswith("-") for arg in argv[1:]):
        argv.append(str(corpus_dir(target)))
    count = instrument(packages)
    sys.stderr.write(f"INFO: instrumented {count} functions of {', '.join(sorted(set(packages)))}\n")
    atheris.Setup(argv, one_input)
    atheris.Fuzz()
