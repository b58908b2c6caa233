"""Property-based tests (hypothesis) of the same targets the atheris fuzzers cover, in the normal suite.

Where atheris mutates bytes, these generate valid values from the specs and check that round trips are
identities (encode → decode, build → parse, issue → unwrap), and that arbitrary input is refused only with the
project's own errors. `max_examples` is modest so the suite stays fast; `make fuzz` is the long version.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posgate.cards.tlv import decode_tlv, encode_tlv
from posgate.config import load_settings
from posgate.errors import ConfigError, DecodeError, EncodeError, FramingError, SecurityError
from posgate.iso8583.codec import DIALECTS, decode, encode, salvage_network, salvage_pos
from posgate.iso8583.content import kind_of
from posgate.iso8583.framing import FrameBuffer, build_pos_frame, split_pos_frame
from posgate.iso8583.private_fields import Field60, Field61, parse_field60, parse_field61
from posgate.security.signin import issue_working_keys, unwrap_working_keys
from posgate.store.batches import Totals, UploadRecord, parse_totals, parse_upload_records
from tests.fuzz._harness import check_refusal

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DIGITS = "0123456789"
HEX = "0123456789ABCDEF"


def _value(kind: str, fspec: Mapping[str, Any]) -> st.SearchStrategy[str]:
    """A valid value of one field, from its content class and pyiso8583 spec (see `content.problem`)."""
    fixed = fspec["len_type"] == 0
    binary = fspec["data_enc"] == "b"
    in_nibbles = not binary or fspec.get("len_count", "bytes") == "nibbles"
    if kind in ("n", "z"):
        limit = fspec["max_len"] if in_nibbles else fspec["max_len"] * 2
        alphabet = DIGITS + ("D" if binary else "D=") if kind == "z" else DIGITS
        text = st.text(alphabet, min_size=limit if fixed else 0, max_size=limit)
        return text if in_nibbles else text.filter(lambda v: len(v) % 2 == 0)
    if kind == "b":
        limit = fspec["max_len"] if binary and not in_nibbles else fspec["max_len"] // 2
        size = st.just(limit) if fixed else st.integers(0, limit)
        return size.flatmap(lambda n: st.text(HEX, min_size=2 * n, max_size=2 * n))
    chars = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    return st.text(chars, min_size=fspec["max_len"] if fixed else 0, max_size=fspec["max_len"])


@st.composite
def messages(draw: st.DrawFn, dialect_name: str) -> dict[str, str]:
    dialect = DIALECTS[dialect_name]
    keys = sorted((k for k in dialect.spec if dialect.is_data_field(k)), key=int)
    chosen = draw(st.lists(st.sampled_from(keys), min_size=1, max_size=12, unique=True))
    msg = {"t": draw(st.sampled_from(sorted(dialect.mtis)))}
    for key in chosen:
        msg[key] = draw(_value(kind_of(dialect.field_types, key, dialect.spec[key]), dialect.spec[key]))
    return msg


@pytest.mark.parametrize("dialect_name", ["pos", "network"])
def test_encode_then_decode_is_the_identity(dialect_name: str) -> None:
    dialect = DIALECTS[dialect_name]

    @FAST
    @given(messages(dialect_name))
    def check(msg: dict[str, str]) -> None:
        raw, _ = encode(msg, dialect)
        decoded, _ = decode(raw, dialect)
        assert decoded == msg
        salvage = salvage_pos if dialect_name == "pos" else salvage_network
        assert salvage(raw) == msg

    check()


@pytest.mark.parametrize("dialect_name", ["pos", "network"])
def test_arbitrary_bytes_decode_or_raise_decode_error(dialect_name: str) -> None:
    dialect = DIALECTS[dialect_name]
    salvage = salvage_pos if dialect_name == "pos" else salvage_network

    @FAST
    @given(st.binary(max_size=300))
    def check(data: bytes) -> None:
        assert isinstance(salvage(data), dict)
        try:
            msg, _ = decode(data, dialect)
        except DecodeError as error:
            check_refusal(error, len(data))
            return
        assert decode(encode(msg, dialect)[0], dialect)[0] == msg

    check()


@FAST
@given(
    st.lists(
        st.tuples(
            st.binary(min_size=5, max_size=5),
            st.binary(min_size=6, max_size=6),
            st.binary(min_size=2, max_size=80),
        ),
        max_size=5,
    ),
    st.integers(1, 64),
)
def test_frames_come_back_however_the_stream_is_cut(
    parts: list[tuple[bytes, bytes, bytes]], chunk: int
) -> None:
    parts = [(b"\x60" + tpdu[1:], header, payload) for tpdu, header, payload in parts]
    stream = b"".join(build_pos_frame(*p) for p in parts)
    buffer, bodies = FrameBuffer(), []
    for start in range(0, len(stream), chunk):
        buffer.receive_data(stream[start : start + chunk])
        while (body := buffer.next_frame()) is not None:
            bodies.append(body)
    assert buffer.pending_bytes == 0
    assert [(f.tpdu, f.header, f.payload) for f in map(split_pos_frame, bodies)] == parts


@FAST
@given(st.binary(max_size=40))
def test_a_frame_body_splits_or_raises_framing_error(body: bytes) -> None:
    try:
        frame = split_pos_frame(body)
    except FramingError as error:
        check_refusal(error, len(body), fields=["frame", "tpdu"])
        return
    assert frame.tpdu + frame.header + frame.payload == body


EMV_TAGS = [
    "5A",
    "5F24",
    "5F2A",
    "5F34",
    "82",
    "84",
    "95",
    "9A",
    "9C",
    "9F02",
    "9F03",
    "9F10",
    "9F1A",
    "9F26",
    "9F27",
    "9F33",
    "9F34",
    "9F36",
    "9F37",
    "91",
]


@FAST
@given(st.dictionaries(st.sampled_from(EMV_TAGS), st.binary(max_size=300), max_size=8))
def test_tlv_encode_then_decode_is_the_identity(tags: dict[str, bytes]) -> None:
    assert decode_tlv(encode_tlv(tags)) == tags


@FAST
@given(st.binary(max_size=120))
def test_tlv_decodes_or_raises_decode_error_of_field_55(data: bytes) -> None:
    try:
        decode_tlv(data)
    except DecodeError as error:
        check_refusal(error, len(data), fields=[55])


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text(DIGITS, min_size=n, max_size=n)


@FAST
@given(_digits(2), _digits(6), st.one_of(st.just(""), _digits(3)), st.data())
def test_field60_build_then_parse_is_the_identity(
    type_code: str, batch: str, nmc: str, data: st.DataObject
) -> None:
    tail = data.draw(
        st.just(("", "", "")) if not nmc else st.tuples(_digits(1), _digits(1), st.text(DIGITS, max_size=20))
    )
    field = Field60(type_code, batch, nmc, *tail)
    assert parse_field60(field.encode()) == field


@FAST
@given(
    _digits(6), _digits(6), st.one_of(st.just(("", "")), st.tuples(_digits(4), st.text(DIGITS, max_size=13)))
)
def test_field61_build_then_parse_is_the_identity(batch: str, stan: str, tail: tuple[str, str]) -> None:
    field = Field61(batch, stan, *tail)
    assert parse_field61(field.encode()) == field


@FAST
@given(st.text(max_size=40))
def test_fields_60_and_61_parse_or_raise_decode_error(text: str) -> None:
    for field, parse in ((60, parse_field60), (61, parse_field61)):
        try:
            assert parse(text).encode() == text
        except DecodeError as error:
            check_refusal(error, len(text), fields=[field])


AMOUNT = st.integers(0, 10**12 - 1)
COUNT = st.integers(0, 999)


@FAST
@given(st.builds(Totals, AMOUNT, COUNT, AMOUNT, COUNT), st.sampled_from("0123"))
def test_settlement_totals_render_then_parse_is_the_identity(totals: Totals, code: str) -> None:
    part = totals.field48_part(code)
    assert len(part) == 31 and part[30] == code
    assert parse_totals(part) == totals


@FAST
@given(st.integers(1000, 10**6))
def test_a_count_over_999_does_not_fit_field_48(count: int) -> None:
    with pytest.raises(EncodeError, match=rf"^field 48: credit count {count} does not fit n3 \(0 to 999\)$"):
        Totals(credit_count=count).field48_part()


RECORD = st.builds(
    UploadRecord,
    _digits(2),
    _digits(6),
    st.text(DIGITS, min_size=13, max_size=19).filter(lambda p: p[0] != "0"),
    AMOUNT,
)


@FAST
@given(st.lists(RECORD, min_size=1, max_size=8))
def test_upload_records_render_then_parse_is_the_identity(records: list[UploadRecord]) -> None:
    field48 = f"{len(records):02d}" + "".join(
        f"{r.card_org}{r.stan}{r.pan:0>20}{r.amount_fen:012d}" for r in records
    )
    assert parse_upload_records(field48) == records


@FAST
@given(st.text(max_size=100))
def test_field48_parsers_refuse_with_decode_error(text: str) -> None:
    for parse in (parse_totals, parse_upload_records):
        try:
            parse(text)
        except DecodeError as error:
            check_refusal(error, len(text), fields=[48])


@SLOW
@given(st.binary(min_size=16, max_size=16), st.booleans(), st.binary(min_size=16, max_size=16))
def test_field62_issue_then_unwrap_is_the_identity(tmk: bytes, with_tdk: bool, other: bytes) -> None:
    keys, field62 = issue_working_keys(tmk, with_tdk)
    assert unwrap_working_keys(tmk, field62) == keys
    if other != tmk:
        with pytest.raises(SecurityError, match=r"^field 62: PIK check value mismatch$"):
            unwrap_working_keys(other, field62)


ENV_VALUES = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=30)


@SLOW
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "POS_PORT",
                "ISSUER_PORTS",
                "ISSUER_TIMEOUT_S",
                "ENV",
                "ISSUERS",
                "ACQUIRER_ID",
                "MAX_FRAME_BYTES",
                "DATA_DIR",
            ]
        ),
        ENV_VALUES,
        max_size=4,
    )
)
def test_settings_from_the_environment_load_or_raise_one_config_error(env: dict[str, str]) -> None:
    saved = dict(os.environ)
    try:
        os.environ.pop("POSGATE_CONFIG", None)
        os.environ.update({f"POSGATE_{k}": v for k, v in env.items()})
        try:
            load_settings()
        except ConfigError as error:
            check_refusal(error)
            assert str(error).startswith("invalid configuration: ")
    finally:
        os.environ.clear()
        os.environ.update(saved)


@SLOW
@given(
    st.integers(0, 65535), st.lists(st.integers(0, 65535), max_size=3), st.floats(0.01, 120, allow_nan=False)
)
def test_settings_from_the_environment_keep_their_values(
    port: int, issuer_ports: list[int], timeout_s: float
) -> None:
    saved = dict(os.environ)
    try:
        os.environ.pop("POSGATE_CONFIG", None)
        os.environ.update(
            POSGATE_POS_PORT=str(port),
            POSGATE_ISSUER_PORTS=",".join(map(str, issuer_ports)),
            POSGATE_ISSUER_TIMEOUT_S=repr(timeout_s),
            # the in-doubt window must outlast the issuer time-out (a validated rule of its own)
            POSGATE_IN_DOUBT_AFTER_S="125",
        )
        loaded = load_settings()
        assert (loaded.pos_port, loaded.issuer_ports, loaded.issuer_timeout_s) == (
            port,
            issuer_ports,
            timeout_s,
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
