"""Each failure the fuzzers found (tests/fuzz, docs/testing.md "Fuzzing"), pinned with its exact message.

The inputs are also in the corpus (`tests/fuzz/corpus/<target>/found-*`), replayed by
tests/fuzz/test_replay.py.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from posgate.cards.tlv import decode_tlv
from posgate.config import load_settings
from posgate.errors import ConfigError, DecodeError, EncodeError
from posgate.iso8583.private_fields import Field60, parse_field60, parse_field61
from posgate.store.batches import Totals, parse_totals, parse_upload_records

# --- field 48: settlement totals and batch upload records (store/batches.py) -----------------------------


@pytest.mark.parametrize(
    ("field48", "message", "pos"),
    [
        ("", "field 48: expected 31 digits of settlement totals, got 0 at byte 0", 0),
        ("0" * 30, "field 48: expected 31 digits of settlement totals, got 30 at byte 30", 30),
        ("0" * 32, "field 48: expected 31 digits of settlement totals, got 32 at byte 31", 31),
        ("0" * 12 + "AB" + "0" * 17, "field 48: settlement totals must be digits at byte 12", 12),
        (
            "０" * 31,
            "field 48: settlement totals must be digits at byte 0",
            0,
        ),  # fullwidth digits: int() takes them
    ],
)
def test_bad_settlement_totals_raise_decode_error_not_value_error(
    field48: str, message: str, pos: int
) -> None:
    with pytest.raises(DecodeError) as info:
        parse_totals(field48)
    assert (str(info.value), info.value.field, info.value.pos) == (message, 48, pos)


@pytest.mark.parametrize(
    ("field48", "message", "pos"),
    [
        ("", "field 48: expected the n2 record count, got 0 digits", 0),
        ("00", "field 48: record count must be 1 to 8, got 0 at byte 0", 0),
        ("09" + "0" * 360, "field 48: record count must be 1 to 8, got 9 at byte 0", 0),
        ("02" + "0" * 40, "field 48: 2 records need 82 digits, got 42 at byte 42", 42),
        ("01" + "0" * 41, "field 48: 1 records need 42 digits, got 43 at byte 42", 42),
        ("01" + "0" * 39 + "x", "field 48: batch upload records must be digits at byte 41", 41),
    ],
)
def test_bad_upload_records_raise_decode_error_not_value_error(field48: str, message: str, pos: int) -> None:
    with pytest.raises(DecodeError) as info:
        parse_upload_records(field48)
    assert (str(info.value), info.value.field, info.value.pos) == (message, 48, pos)


def test_a_count_over_999_is_refused_instead_of_shifting_the_settlement_code() -> None:
    # before: f"{1000:03d}" wrote 4 digits, so field 48 grew to 32 digits and the code moved to position 32
    with pytest.raises(EncodeError, match=r"^field 48: debit count 1000 does not fit n3 \(0 to 999\)$"):
        Totals(debit_count=1_000).field48_part("1")
    # 13 digits look like a PAN to the error masking, which hides them: the message stays safe
    with pytest.raises(EncodeError, match=r"^field 48: debit amount 100000\*\*\*0000 does not fit n12"):
        Totals(debit_fen=10**12).field48_part("1")
    assert len(Totals(999_999_999_999, 999, 999_999_999_999, 999).field48_part("1")) == 31


# --- field 55 (cards/tlv.py) -----------------------------------------------------------------------------

LONG_TAG = base64.b64decode("AAAf/4iIiIj/gKSIiIiIiIiIYP//99QgAIiIiIj/gKSIiIiIiIiI///31CAAAAAA")


def test_a_tlv_error_does_not_quote_a_tag_longer_than_four_bytes() -> None:
    # before: "... tag '1FFF88888888FF80A48888888888888860', offset 20." — sender bytes, 16 digits in a row
    with pytest.raises(DecodeError) as info:
        decode_tlv(LONG_TAG)
    assert str(info.value) == (
        "field 55: Tag length malformed, expecting 127 byte(s): a 17-byte tag (not shown), offset 20."
    )
    assert (info.value.field, info.value.pos) == (55, 20)


def test_a_tlv_error_still_quotes_a_real_emv_tag() -> None:
    with pytest.raises(
        DecodeError, match=r"^field 55: Tag value malformed, expecting 8 byte\(s\): tag '9F26', "
    ):
        decode_tlv(bytes.fromhex("9F2608A40C"))


# --- fields 60 and 61 (iso8583/private_fields.py) --------------------------------------------------------


def test_a_field60_error_shows_a_shortened_value() -> None:
    value = base64.b64decode("MzYzMxszMzMzMzEzMzMzMzMz//87MzMzMzM=").decode("latin-1")
    # before: the whole value, 13 digits after an escape sequence that hid them from the masking
    with pytest.raises(EncodeError) as info:
        Field60("36", "331333", value)
    assert (
        str(info.value) == "field 60: 60.3 network management code must be 3 digits, got '3633\\x1b3333313…'"
    )


@pytest.mark.parametrize(
    ("parse", "value", "message", "pos"),
    [
        (parse_field60, "2200000A000", "field 60: expected digits, got '2200000A000'", 7),
        (parse_field60, "", "field 60: expected digits, got ''", 0),
        (
            parse_field60,
            "220000010",
            "field 60: expected 8 or at least 11 digits (60.1, 60.2, 60.3), got 9",
            9,
        ),
        (
            parse_field61,
            "00000100012",
            "field 61: expected 12 or at least 16 digits (61.1, 61.2, 61.3), got 11",
            11,
        ),
        (parse_field61, "0000010001231126¹", "field 61: expected digits, got '000001000123…'", 16),
    ],
)
def test_private_field_errors_name_the_byte(parse, value: str, message: str, pos: int) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DecodeError) as info:
        parse(value)
    assert (str(info.value), info.value.pos) == (message, pos)


# --- the configuration loader (config.py load_settings, cli.build_settings) ------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    import os

    for name in [k for k in os.environ if k.startswith("POSGATE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _config_error(monkeypatch: pytest.MonkeyPatch, toml: bytes | None, **env: str) -> str:
    if toml is not None:
        Path("posgate.toml").write_bytes(toml)
        monkeypatch.setenv("POSGATE_CONFIG", str(Path("posgate.toml").resolve()))
    for name, value in env.items():
        monkeypatch.setenv(f"POSGATE_{name}", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    return str(info.value)


def test_toml_that_does_not_parse_is_one_config_error(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _config_error(monkeypatch, b'pos_port = "x\n')
    assert text == (
        f"invalid configuration: {clean_env / 'posgate.toml'} is not valid TOML: "
        "Illegal character '\\n' (at line 1, column 14)"
    )


def test_a_key_pasted_as_a_toml_key_is_not_echoed_by_the_parse_error(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tomllib quotes the keys of a table declared twice or of an inline table extended: found by the fuzzer
    zak = "0123456789ABCDEF0123456789ABCDEF"
    text = _config_error(monkeypatch, f"[{zak}]\nport = 1\n[{zak}]\n".encode())
    assert zak not in text and "0123456789ABC" not in text, text
    assert text == (
        f"invalid configuration: {clean_env / 'posgate.toml'} is not valid TOML: "
        "Cannot declare ('…',) twice (at line 3, column 34)"
    )
    text = _config_error(monkeypatch, b"x = {R = {}, R.a.1111111111111111111111.b = 1}\n")
    assert "1111111111111" not in text, text
    assert text.endswith("Cannot mutate immutable namespace ('R', 'a', '…', 'b') (at line 1, column 46)"), (
        text
    )


def test_toml_that_is_not_utf8_is_one_config_error(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = _config_error(monkeypatch, b'timezone = "\xff\xfe"\n')
    assert text == f"invalid configuration: {clean_env / 'posgate.toml'} is not UTF-8 text"


def test_a_toml_path_that_is_a_folder_is_one_config_error(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSGATE_CONFIG", str(clean_env))
    with pytest.raises(
        ConfigError, match=r"^invalid configuration: POSGATE_CONFIG names .*, which is not a file$"
    ):
        load_settings()


def test_issuers_from_the_environment_that_are_not_json_are_one_config_error(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _config_error(monkeypatch, None, ISSUERS="not json")
    assert text == 'invalid configuration: error parsing value for field "issuers"'


def test_an_invalid_issuer_names_the_setting_and_never_the_key(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zak = "0123456789ABCDEF0123456789ABCDEF"
    toml = f'[[issuers]]\nname = "B"\nbins = ["62"]\nport = 70000\nzpk = "00"\nzak = "{zak}"\n'.encode()
    text = _config_error(monkeypatch, toml)
    assert text == (
        "invalid configuration: issuers.0.port: Input should be less than or equal to 65535; "
        "issuers.0.zpk: Value error, must be 32 hex digits (a double-length 3DES key)"
    )
    assert zak not in text


def test_the_command_line_prints_one_line_and_exits_2_on_bad_toml(clean_env: Path) -> None:
    (clean_env / "posgate.toml").write_bytes(b"pos_port = [\n")
    env = {"PATH": "/usr/bin:/bin", "POSGATE_CONFIG": str(clean_env / "posgate.toml")}
    run = subprocess.run(
        [sys.executable, "-m", "posgate", "host"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        f"posgate: invalid configuration: {clean_env / 'posgate.toml'} is not valid TOML: "
        "Invalid value (at end of document)"
    ]


def test_an_unknown_key_is_shown_shortened_and_escaped(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # found by tests/fuzz/config.py: the key name went into the message whole — 100 characters, a newline,
    # or a 32-hex key pasted as a name
    long_key = "f" * 40 + "pos_port"
    text = _config_error(monkeypatch, f'{long_key} = 7000\n"a\\nb" = 1\n'.encode())
    assert text == (
        "invalid configuration: 'ffffffffffffffffffffffff…': Extra inputs are not permitted; "
        "'a\\nb': Extra inputs are not permitted"
    )


def test_a_control_character_in_a_text_field_is_refused_by_the_codec() -> None:
    from posgate.iso8583.codec import decode_pos, encode_pos, salvage_pos

    # found by tests/fuzz/test_posport.py: `0200 sale tid=\n1000000 …` — a TID that forges a log line
    raw = encode_pos({"t": "0200", "11": "000001", "41": "10000001"}).replace(b"10000001", b"1000\r\n01")
    with pytest.raises(DecodeError) as info:
        decode_pos(raw)
    assert str(info.value) == "field 41: expected printable characters, got '1000\\r\\n01' at byte 13"
    assert salvage_pos(raw) == {"t": "0200", "11": "000001"}  # no 41: the host closes instead of answering
    with pytest.raises(EncodeError, match=r"^field 41: expected printable characters, got '\\x1b\[2J1000'"):
        encode_pos({"t": "0200", "41": "\x1b[2J1000"})


@pytest.mark.parametrize("prefix", [b" 8", b"+8", b"8 "])
def test_a_network_length_prefix_must_be_digits(prefix: bytes) -> None:
    from posgate.iso8583.codec import decode_network

    # found by tests/fuzz/network_codec.py: pyiso8583 reads an LLVAR prefix with int(), so " 8" was 8
    raw = b"0200" + b"0000000100000000" + prefix + b"49990000"
    with pytest.raises(DecodeError) as info:
        decode_network(raw)
    assert (str(info.value), info.value.field, info.value.pos) == (
        "field 32: length prefix is not digits at byte 20",
        32,
        20,
    )


def test_bit_65_is_refused_instead_of_silently_dropping_a_tertiary_bitmap() -> None:
    from posgate.iso8583.codec import decode_network, decode_pos

    # found by tests/fuzz/network_codec.py: pyiso8583 read 16 more bitmap characters (a tertiary bitmap), the
    # codec dropped them, and the message re-encoded to other bytes
    raw = (Path(__file__).parents[1] / "fuzz/corpus/network_codec/found-field-65").read_bytes()
    with pytest.raises(DecodeError) as info:
        decode_network(raw)
    assert (str(info.value), info.value.field, info.value.pos) == (
        "field 65: set in the secondary bitmap, but a tertiary bitmap is not used by this dialect at byte 20",
        65,
        20,
    )
    pos = bytes.fromhex("080080000000000000008000000000000000") + bytes(8)
    with pytest.raises(DecodeError, match=r"^field 65: set in the secondary bitmap, .* at byte 10$"):
        decode_pos(pos)


@pytest.mark.parametrize(
    ("bitmaps", "pos"),
    [
        (b"8220000002000001" + b"04000000 00 0000", 20),  # found: bytes.fromhex skips the spaces
        (b"8220000002000001" + b"04000000\t0000000", 20),
        (b"82200000 2000001" + b"0400000000000000", 4),
        (b"8220000002000001" + b"0400000000000\n00", 20),
    ],
)
def test_a_network_bitmap_must_be_hex_digits(bitmaps: bytes, pos: int) -> None:
    from posgate.iso8583.codec import decode_network

    # found by tests/fuzz/network_codec.py: pyiso8583 reads a hex bitmap with bytes.fromhex, which skips
    # whitespace, so the 0810 below decoded and re-encoded to other bytes: a second spelling of one message
    raw = (
        Path(__file__).parents[1] / "fuzz/corpus/network_codec/found-space-in-secondary-bitmap"
    ).read_bytes()
    assert raw[4:36] == b"8220000002000001" + b"04000000 00 0000"
    with pytest.raises(DecodeError) as info:
        decode_network(raw[:4] + bitmaps + raw[36:])
    assert (str(info.value), info.value.field, info.value.pos) == (
        f"bitmap: expected hex digits at byte {pos}",
        "bitmap",
        pos,
    )
    assert decode_network(raw[:4] + b"8220000002000001" + b"0400000000000000" + raw[36:])["70"] == "001"


def test_bad_issuer_ports_are_not_echoed(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # found by tests/fuzz/config.py: "invalid literal for int() with base 10: '…'" echoed the whole value
    text = _config_error(monkeypatch, None, ISSUER_PORTS="6001,x0123456789ABCDEF0123456789ABCDEF")
    assert (
        text == "invalid configuration: issuer_ports: Value error, must be port numbers separated by commas"
    )


def test_issuer_ports_over_65535_are_a_config_error_not_a_bind_traceback(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # before: accepted, then `posgate issuer` died with "OverflowError: bind(): port must be 0-65535"
    text = _config_error(monkeypatch, None, ISSUER_PORTS="6001,70000")
    assert text == "invalid configuration: issuer_ports.1: Input should be less than or equal to 65535"


def test_a_bad_bin_prefix_is_named_by_its_number_not_echoed(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zak = "0123456789ABCDEF0123456789ABCDEF"
    toml = f'[[issuers]]\nname = "B"\nbins = ["62", "{zak}"]\nport = 7001\nzpk = "{zak}"\nzak = "{zak}"\n'
    text = _config_error(monkeypatch, toml.encode())
    assert text == "invalid configuration: issuers.0.bins: Value error, BIN prefix 2 must be 1-11 digits"


@pytest.mark.parametrize(
    ("toml", "where"),
    [
        (b'data_dir = "data\\u0000"\n', "data_dir"),
        (b'pos_tls_cert = "c"\npos_tls_key = "k\\u0000"\n', "pos_tls_key"),
        (b'console_tls_cert = "c"\nconsole_tls_key = "k\\u0000"\n', "console_tls_key"),
        (
            b'[[issuers]]\nname = "B"\nbins = ["62"]\nport = 7001\nzpk = "'
            + b"0" * 32
            + b'"\nzak = "'
            + b"0" * 32
            + b'"\n[issuers.tls]\nca = "\\u0000"\n',
            "issuers.0.tls.ca",
        ),
    ],
)
def test_a_path_with_a_nul_character_is_a_config_error_not_a_traceback_later(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, toml: bytes, where: str
) -> None:
    # found reading the loader for the config target: `data_dir = "a\u0000b"` was accepted, then
    # `posgate host` died with "ValueError: embedded null byte" (a traceback) when it made the folder
    text = _config_error(monkeypatch, toml)
    assert text == f"invalid configuration: {where}: Value error, a path cannot contain a NUL character"
