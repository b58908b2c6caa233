"""Replay every corpus file of every fuzz target through its `one_input` (part of `make test`).

The corpus (`tests/fuzz/corpus/<target>/`) holds the seeds (public frame, recorded demo traffic) and every
input a fuzzer once found a failure with (`found-*`), so a fixed bug stays fixed. A target whose module sets
`REPLAY_HERE = False` replays its corpus in its own test (it needs a running host, say).
"""

from __future__ import annotations

import importlib
import traceback

import pytest

from tests.fuzz.__main__ import all_targets
from tests.fuzz._harness import corpus_files, one_input_of

TARGETS = all_targets()
REPLAYED = [t for t in TARGETS if getattr(importlib.import_module(f"tests.fuzz.{t}"), "REPLAY_HERE", True)]


def test_every_target_has_a_corpus() -> None:
    assert TARGETS, "no fuzz target found in tests/fuzz"
    empty = [t for t in TARGETS if not corpus_files(t)]
    assert not empty, f"targets without a corpus in tests/fuzz/corpus/: {empty}"


@pytest.mark.parametrize("target", REPLAYED)
def test_corpus_replays_cleanly(target: str) -> None:
    one_input = one_input_of(importlib.import_module(f"tests.fuzz.{target}"))
    failures = []
    for path in corpus_files(target):
        try:
            one_input(path.read_bytes())
        except Exception:
            failures.append(f"{path.name}: {traceback.format_exc(limit=-3)}")
    assert not failures, f"{len(failures)} corpus file(s) fail:\n" + "\n".join(failures)
