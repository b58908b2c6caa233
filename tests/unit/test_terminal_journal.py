"""The terminal's journal: sealed PANs (never clear in the state file), settlement totals with voids,
refunds and reversed entries, the 0510's codes, batch upload records in groups of 8, closing the batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from posgate.errors import DecodeError, EncodeError, SecurityError
from posgate.fixtures.document import read_demo_fixture
from posgate.terminal.journal import (
    BatchTotals,
    JournalEntry,
    batch_totals,
    is_balanced,
    journal_key,
    open_pan,
    seal_pan,
    settlement_codes,
    upload_groups,
    upload_record,
)
from posgate.terminal.state import TerminalState, demo_terminal_state

TID = "10000001"
CHIP_ENTRY, MAGSTRIPE_ENTRY, CONTACTLESS_ENTRY, FALLBACK_ENTRY = "051", "021", "072", "801"


def _entry(
    state: TerminalState,
    kind: str,
    amount: int,
    stan: str,
    pan: str = "6229990000000012",
    entry_mode: str = MAGSTRIPE_ENTRY,
    **flags: object,
) -> JournalEntry:
    entry = JournalEntry(
        kind=kind,
        mti={"refund": "0220", "preauth": "0100", "preauth_void": "0100"}.get(kind, "0200"),
        processing_code="200000" if "void" in kind or kind == "refund" else "000000",
        condition_code="06" if "preauth" in kind or "completion" in kind else "00",
        entry_mode=entry_mode,
        stan=stan,
        batch=state.batch,
        amount_fen=amount,
        rrn=f"{int(stan):012d}",
        auth_code="A1B2C3",
        date="1126",
        masked_pan=pan[:6] + "******" + pan[-4:],
        pan_sealed=seal_pan(state.journal_key, pan, state.tid),
    )
    for name, value in flags.items():
        setattr(entry, name, value)
    state.journal.append(entry)
    return entry


def test_journal_key_is_hkdf_of_the_tmk() -> None:
    tmk = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"posgate terminal journal").derive(
        tmk
    )
    assert journal_key(tmk) == expected
    assert demo_terminal_state().journal_key == expected


def test_sealed_pans_open_only_in_their_terminal() -> None:
    key = journal_key(bytes(16))
    sealed = seal_pan(key, "6229990000000012", TID)
    assert "6229990000000012" not in sealed
    assert sealed != seal_pan(key, "6229990000000012", TID)  # a fresh nonce each time
    assert open_pan(key, sealed, TID) == "6229990000000012"
    with pytest.raises(SecurityError, match="does not decrypt") as info:
        open_pan(key, sealed, "10000002")
    assert "6229990000000012" not in str(info.value)
    with pytest.raises(SecurityError):
        open_pan(journal_key(bytes(range(16))), sealed, TID)


def test_totals_count_sales_completions_voids_and_refunds() -> None:
    state = demo_terminal_state()
    _entry(state, "sale", 10_000, "000001", voided=True)  # voided later: still a debit
    _entry(state, "void", 10_000, "000002")  # ... and its void a credit
    _entry(state, "sale", 5_000, "000003", refunded_fen=1_500)
    _entry(state, "refund", 1_500, "000004")
    _entry(state, "sale", 7_000, "000005", reversed=True)  # reversed: out
    _entry(state, "preauth", 30_000, "000006", completed=True)  # pre-auths: never counted
    _entry(state, "completion", 34_000, "000007", voided=True)
    _entry(state, "completion_void", 34_000, "000008")
    _entry(state, "preauth", 20_000, "000009", voided=True)
    _entry(state, "preauth_void", 20_000, "000010")
    _entry(state, "void", 5_000, "000011", reversed=True)  # a reversed void: out
    _entry(state, "completion", 1_000, "000012")
    totals = batch_totals(state.journal)
    assert totals == BatchTotals(
        debit_fen=10_000 + 5_000 + 34_000 + 1_000,
        debit_count=4,
        credit_fen=10_000 + 1_500 + 34_000,
        credit_count=3,
    )
    assert totals.field48() == "000000050000004" + "000000045500003" + "0" + "0" * 31
    assert batch_totals([]).field48() == "0" * 62


def test_totals_that_do_not_fit_are_refused() -> None:
    with pytest.raises(EncodeError, match="debit count 1000") as info:
        BatchTotals(debit_fen=1, debit_count=1000).field48()
    assert info.value.field == 48


def test_settlement_codes() -> None:
    answer = "000000050000004000000045500003" + "1" + "0" * 30 + "1"
    assert settlement_codes(answer) == ("1", "1") and is_balanced(("1", "1"))
    unbalanced = answer[:30] + "2" + answer[31:]
    assert settlement_codes(unbalanced) == ("2", "1") and not is_balanced(("2", "1"))
    assert not is_balanced(("1", "2"))
    assert is_balanced(settlement_codes(answer[:31]))
    with pytest.raises(DecodeError):
        settlement_codes("0" * 20)
    with pytest.raises(DecodeError):
        settlement_codes(None)


def test_upload_records_in_groups_of_8_magstripe_then_chip() -> None:
    state = demo_terminal_state()
    for n in range(1, 11):  # 10 swiped sales
        _entry(state, "sale", n * 100, f"{n:06d}")
    _entry(state, "sale", 999, "000011", reversed=True)  # not uploaded
    _entry(state, "preauth", 999, "000012")  # not uploaded
    for n in range(13, 16):  # 3 chip-read: inserted, tapped, and a void by chip
        mode = CONTACTLESS_ENTRY if n == 14 else CHIP_ENTRY
        _entry(state, "void" if n == 15 else "sale", n * 100, f"{n:06d}", "6228880000000016", mode)
    _entry(state, "sale", 1600, "000016", "6228880000000032", FALLBACK_ENTRY)  # fallback is a swipe
    groups = upload_groups(state.journal, state.journal_key, state.tid)
    assert [(g.chip, len(g.records)) for g in groups] == [(False, 8), (False, 3), (True, 3)]
    assert groups[0].records[0] == "00" + "000001" + "0000" + "6229990000000012" + "000000000100"
    assert groups[1].records[-1] == "00" + "000016" + "0000" + "6228880000000032" + "000000001600"
    assert groups[2].records[0] == "00" + "000013" + "0000" + "6228880000000016" + "000000001300"
    assert all(len(r) == 40 for g in groups for r in g.records)
    assert groups[0].field48() == "08" + "".join(groups[0].records)
    assert "6229990000000012" not in repr(groups)
    assert (
        upload_record("000001", "6229990000000012345", 1)
        == "00000001" + "06229990000000012345" + "0" * 11 + "1"
    )


def test_state_file_never_holds_a_demo_pan(tmp_path: Path) -> None:
    state = demo_terminal_state()
    fixture = read_demo_fixture()
    for n, card in enumerate(fixture.cards, start=1):
        _entry(state, "sale", 100 * n, f"{n:06d}", card.pan)
        state.next_atc(card.pan)
    path = tmp_path / "terminal.json"
    state.save(path)
    raw = path.read_bytes()
    for card in fixture.cards:
        assert card.pan.encode("ascii") not in raw
        assert card.pan[-10:].encode("ascii") not in raw
    data = json.loads(raw)
    assert len(data["journal"]) == len(fixture.cards)
    assert data["journal"][0]["masked_pan"] == "622999******0012"
    assert not {"track2", "pin", "pin_block", "pan"} & data["journal"][0].keys()
    loaded = TerminalState.load(path)
    assert loaded == state
    assert [open_pan(loaded.journal_key, e.pan_sealed, loaded.tid) for e in loaded.journal] == [
        c.pan for c in fixture.cards
    ]
    assert all(c.pan not in repr(loaded) for c in fixture.cards)


def test_close_batch_advances_wraps_and_keeps_open_preauths() -> None:
    state = demo_terminal_state()
    _entry(state, "sale", 100, "000001")
    open_preauth = _entry(state, "preauth", 200, "000002")
    _entry(state, "preauth", 300, "000003", completed=True)
    _entry(state, "preauth", 400, "000004", voided=True)
    _entry(state, "preauth", 500, "000005", reversed=True)
    state.last = None
    assert state.close_batch() == "000002"
    assert state.journal == [open_preauth] and open_preauth.batch == "000001"
    state.batch = "999998"
    assert [state.close_batch(), state.close_batch()] == ["999999", "000001"]
