"""Terminal state: STAN counter, JSON state file (atomic, 0600, no card data), the demo terminal."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from posgate.errors import ConfigError
from posgate.terminal.cards import demo_card
from posgate.terminal.messages import last_transaction, sale_request
from posgate.terminal.state import LastTransaction, TerminalState, demo_terminal_state


def test_next_stan_counts_from_one_and_wraps() -> None:
    state = demo_terminal_state()
    assert [state.next_stan() for _ in range(3)] == ["000001", "000002", "000003"]
    state.stan = 999_998
    assert [state.next_stan() for _ in range(3)] == ["999999", "000001", "000002"]
    assert state.stan == 2


def test_demo_terminal_state() -> None:
    state = demo_terminal_state()
    assert (state.tid, state.mid, state.nii, state.batch, state.stan) == (
        "10000001",
        "898440153110001",
        "0003",
        "000001",
        0,
    )
    assert state.tmk_hex == "404142434445464748494A4B4C4D4E4F"
    assert not state.signed_in
    with pytest.raises(ConfigError, match="no demo terminal"):
        demo_terminal_state("99999999")


def test_state_file_round_trips_without_card_data(tmp_path: Path) -> None:
    card = demo_card("debit-ok")
    state = demo_terminal_state()
    state.pik_hex, state.mak_hex = "11" * 16, "22" * 16
    sale = sale_request(state, state.next_stan(), card, 1234, "00112233445566AA")
    state.last = last_transaction(sale)
    state.last.rrn = "123456789012"
    path = tmp_path / "data" / "terminal-10000001.json"
    state.save(path)

    text = path.read_text()
    assert card.pan not in text
    assert card.pan[-10:] not in text
    assert card.track2 is not None and card.track2 not in text
    assert "00112233445566AA" not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind

    loaded = TerminalState.load(path)
    assert loaded == state
    assert isinstance(loaded.last, LastTransaction)
    assert loaded.last.stan == "000001"
    assert loaded.last.amount_fen == 1234
    assert json.loads(text)["last"]["field60"] == "2200000100060"


def test_save_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = demo_terminal_state()
    state.save(path)
    state.next_stan()
    state.save(path)
    assert TerminalState.load(path).stan == 1


def test_repr_hides_working_keys() -> None:
    state = demo_terminal_state()
    state.pik_hex = "ABCDEF" * 5 + "AB"
    assert state.pik_hex not in repr(state)


def test_load_rejects_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with pytest.raises(ConfigError, match="cannot read terminal state"):
        TerminalState.load(path)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        TerminalState.load(path)
    path.write_text('{"tid": "10000001"}')
    with pytest.raises(ConfigError, match="missing mid, tmk_hex"):
        TerminalState.load(path)


def test_the_mac_algorithm_comes_from_the_state_and_defaults_to_cup_ecb(tmp_path: Path) -> None:
    from posgate.security.pos_mac import MacAlgorithm

    assert demo_terminal_state().mac is MacAlgorithm.CUP_ECB  # the demo fixture's terminal keeps CUP ECB
    legacy = tmp_path / "legacy.json"  # a state file written before X9.19 support
    legacy.write_text(json.dumps({"tid": "10000002", "mid": "898440153110001", "tmk_hex": "40" * 16}))
    assert TerminalState.load(legacy).mac is MacAlgorithm.CUP_ECB
    x919 = TerminalState("10000003", "898440153110001", "40" * 16, mac_algorithm="x919")
    x919.save(tmp_path / "x919.json")
    assert TerminalState.load(tmp_path / "x919.json").mac is MacAlgorithm.X919
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tid": "1", "mid": "2", "tmk_hex": "40" * 16, "mac_algorithm": "md5"}))
    with pytest.raises(
        ConfigError, match=r"^terminal state: MAC algorithm must be cup_ecb or x919, got 'md5'$"
    ):
        TerminalState.load(bad)
