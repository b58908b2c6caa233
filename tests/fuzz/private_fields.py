"""Fuzz target: the POS private fields 60 and 61 (`parse_field60`, `parse_field61`, and building them).

Input: text (Latin-1) that a decoded field 60 or 61 might hold — the codec lets through only digits, but the
parsers are public and must refuse anything else cleanly.
Contract: each parser returns its dataclass or raises `DecodeError` naming its field; a parsed value encodes
back to the exact input and parses to the same dataclass; building the dataclass from any split of the input
either works or raises `EncodeError` naming the field.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from posgate.errors import DecodeError, EncodeError
from posgate.iso8583.private_fields import Field60, Field61, parse_field60, parse_field61
from tests.fuzz._harness import check_refusal, fuzz


def one_input(data: bytes) -> None:
    text = data.decode("latin-1")
    for field, parse in ((60, parse_field60), (61, parse_field61)):
        try:
            parsed = parse(text)
        except DecodeError as error:
            check_refusal(error, len(text), fields=[field])
            continue
        assert parsed.encode() == text
        assert parse(parsed.encode()) == parsed
    cuts = [0, *sorted(b % (len(text) + 1) for b in data[:5]), len(text)]
    parts = [text[a:b] for a, b in itertools.pairwise(cuts)] + [""] * 6
    for cls, field in ((Field60, 60), (Field61, 61)):
        arity = 6 if cls is Field60 else 4
        try:
            built = cls(*parts[:arity])  # type: ignore[arg-type]
        except EncodeError as error:
            check_refusal(error, fields=[field])
            continue
        assert built.encode() == "".join(parts[:arity])


if __name__ == "__main__":
    fuzz(Path(__file__).stem, one_input)
