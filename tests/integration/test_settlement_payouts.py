"""Payouts on SQLite and PostgreSQL: the T+1 batch from the merchants' payables (negative balances carried,
never paid), the bank file and its checksum, confirmation imports (paid posts, rejected returns the money
to the next batch), and same-day D0 payouts within their rules, netted by the next T+1."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from posgate.settlement import bankfile
from posgate.settlement.clearing import run_clearing
from posgate.settlement.errors import ClearingNotRun, D0Refused, FileChecksumError, FileFormatError
from posgate.settlement.ledger_store import balances, trial_balance, verify_balances
from posgate.settlement.payouts import (
    CONFIRMATION_HEADER,
    PAYOUT_HEADER,
    build_t1_payouts,
    import_confirmation,
    payable_balances,
    request_d0,
    simulate_bank,
)
from posgate.settlement.rates import Rates, parse_rates
from posgate.store.runtime import Store
from posgate.tools.clearing_day_factory import (
    CREDIT_CARD,
    DEBIT_CARD,
    EXAMPLE_MID,
    EXAMPLE_MID_2,
    DayBuilder,
)

TZ = "Asia/Shanghai"
D = dt.date(2026, 4, 20)
D1 = D + dt.timedelta(days=1)
RATES = Rates()


@pytest.fixture
def store(example_store: Store) -> Store:
    return example_store


def at(day: dt.date, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm))


def clear(store: Store, b: DayBuilder, day: dt.date) -> None:
    run_clearing(store, day, RATES, TZ, now=b.utc(at(day, 23, 30)))


def owed(store: Store, through: dt.date | None = None) -> dict[str, int]:
    return store.transact(lambda s: payable_balances(s, through))


def test_t1_pays_positive_payables_once_and_only_when_confirmed(store: Store, tmp_path: Path) -> None:
    b = DayBuilder()
    with b.writing(store):
        sale = b.sale(at(D, 10), 100_000, EXAMPLE_MID, DEBIT_CARD)  # MDR 500
        b.sale(at(D, 11), 50_000, EXAMPLE_MID, CREDIT_CARD)  # MDR 300
        b.refund(at(D, 12), sale, 20_000)
        cafe = b.sale(at(D - dt.timedelta(days=3), 10), 30_000, EXAMPLE_MID_2, DEBIT_CARD)
        b.refund(at(D, 13), cafe, 30_000)  # a refund of an older sale: the cafe owes us today
    with pytest.raises(ClearingNotRun, match="clearing date 2026-04-20 has not been cleared"):
        build_t1_payouts(store, D, tmp_path)
    clear(store, b, D)

    run = build_t1_payouts(store, D, tmp_path)
    assert len(run.created) == 1 and run.total_fen == 100_000 - 500 + 50_000 - 300 - 20_000
    assert run.carried == {EXAMPLE_MID_2: -30_000}
    assert run.file == tmp_path / "payouts" / f"payouts-{D}.csv"
    rows = bankfile.read(run.file, PAYOUT_HEADER, "amount_fen")
    assert rows == [
        {
            "payout_id": str(run.created[0]),
            "mid": EXAMPLE_MID,
            "merchant_name": "Demo Supermarket",
            "account": f"MID:{EXAMPLE_MID}",
            "amount_fen": str(run.total_fen),
            "currency": "156",
        }
    ]
    assert run.file.read_text().splitlines()[-1].startswith(f"CHECKSUM,1,{run.total_fen},")
    assert owed(store)[EXAMPLE_MID] == run.total_fen  # instructed is not paid
    again = build_t1_payouts(store, D, tmp_path)
    assert (again.created, again.file) == ([], None)
    assert sorted(p.name for p in (tmp_path / "payouts").iterdir()) == [f"payouts-{D}.csv"]

    confirmation = simulate_bank(run.file, tmp_path / "bank" / "confirm.csv")
    result = import_confirmation(store, confirmation)
    assert (result.paid, result.rejected) == (run.created, [])
    assert owed(store)[EXAMPLE_MID] == 0
    assert store.transact(lambda s: balances(s, prefix="settlement_cash")) == {
        "settlement_cash": -run.total_fen
    }
    assert import_confirmation(store, confirmation).already == run.created
    contrary = bankfile.write(
        tmp_path / "contrary.csv",
        CONFIRMATION_HEADER,
        [(run.created[0], "rejected", run.total_fen)],
        "amount_fen",
    )
    assert import_confirmation(store, contrary).conflicts == [
        f"payout {run.created[0]} is paid, the file says rejected"
    ]
    assert store.transact(trial_balance) == 0 and store.transact(verify_balances) == []


def test_a_rejected_payout_and_a_carried_deficit_join_the_next_batch(store: Store, tmp_path: Path) -> None:
    b = DayBuilder()
    with b.writing(store):
        b.sale(at(D, 10), 10_000, EXAMPLE_MID, DEBIT_CARD)  # owed 9,950
        cafe = b.sale(at(D - dt.timedelta(days=2), 9), 20_000, EXAMPLE_MID_2, DEBIT_CARD)
        b.refund(at(D, 10), cafe, 20_000)  # the cafe owes 20,000
    clear(store, b, D)
    first = build_t1_payouts(store, D, tmp_path)
    import_confirmation(store, simulate_bank(first.file, tmp_path / "c1.csv", rejected=first.created))
    assert owed(store)[EXAMPLE_MID] == 9_950  # the money is back in the payable

    with b.writing(store):
        b.sale(at(D1, 10), 40_000, EXAMPLE_MID, DEBIT_CARD)  # owed 39,800 more
        b.sale(at(D1, 11), 50_000, EXAMPLE_MID_2, DEBIT_CARD)  # cafe: 50,000 − 190 MDR (0.38 %)
    clear(store, b, D1)
    second = build_t1_payouts(store, D1, tmp_path)
    amounts = {
        row["mid"]: int(row["amount_fen"]) for row in bankfile.read(second.file, PAYOUT_HEADER, "amount_fen")
    }
    assert amounts == {EXAMPLE_MID: 9_950 + 39_800, EXAMPLE_MID_2: 50_000 - 190 - 20_000}
    import_confirmation(store, simulate_bank(second.file, tmp_path / "c2.csv"))
    assert owed(store) == {EXAMPLE_MID: 0, EXAMPLE_MID_2: 0}


def test_a_confirmation_that_does_not_add_up_is_refused_whole(store: Store, tmp_path: Path) -> None:
    b = DayBuilder()
    with b.writing(store):
        b.sale(at(D, 10), 10_000, EXAMPLE_MID, DEBIT_CARD)
        b.sale(at(D, 10), 10_000, EXAMPLE_MID_2, DEBIT_CARD)
    clear(store, b, D)
    run = build_t1_payouts(store, D, tmp_path)
    good = simulate_bank(run.file, tmp_path / "good.csv").read_text()
    (tmp_path / "tampered.csv").write_text(good.replace(",paid,", ",rejected,", 1))
    with pytest.raises(FileChecksumError, match="SHA-256 does not match"):
        import_confirmation(store, tmp_path / "tampered.csv")
    first, second = run.created
    wrong_amount = bankfile.write(
        tmp_path / "wrong.csv",
        CONFIRMATION_HEADER,
        [(first, "paid", 9_950), (second, "paid", 1)],
        "amount_fen",
    )
    with pytest.raises(
        FileFormatError, match=f"wrong.csv line 3: payout {second} instructed 9962 fen, confirmed 1"
    ):
        import_confirmation(store, wrong_amount)
    assert owed(store) == {EXAMPLE_MID: 9_950, EXAMPLE_MID_2: 9_962}  # nothing applied


def test_d0_advances_todays_credit_volume_within_its_rules(store: Store, tmp_path: Path) -> None:
    b = DayBuilder()
    with b.writing(store):
        b.sale(at(D, 9), 200_000, EXAMPLE_MID, CREDIT_CARD)  # net 198,800
        b.sale(at(D, 9, 30), 500_000, EXAMPLE_MID, DEBIT_CARD)  # debit volume: not for D0
        b.sale(at(D, 9, 40), 100_000, EXAMPLE_MID_2, CREDIT_CARD)  # the cafe has no D0
        sale = b.sale(at(D - dt.timedelta(days=1), 20), 10_000, EXAMPLE_MID, CREDIT_CARD)
        b.refund(at(D, 10), sale, 8_800)  # today's refunds come off
    now = b.utc(at(D, 10, 30))

    # (a MID has 15 digits: error messages mask it like a PAN)
    def d0(
        amount: int,
        mid: str = EXAMPLE_MID,
        rates: Rates = RATES,
        when: dt.datetime = now,
        rid: str | None = None,
    ):  # type: ignore[no-untyped-def]
        return request_d0(store, mid, amount, rates, TZ, tmp_path, now=when, request_id=rid)

    with pytest.raises(D0Refused, match=r"D0 for 898440\*{5}0001: 190000 fen available"):
        d0(190_001)
    with pytest.raises(D0Refused, match=r"merchant 898440\*{5}0002 is not allowed D0"):
        d0(10_000, EXAMPLE_MID_2)
    with pytest.raises(D0Refused, match="D0 is open 09:00-22:00 Asia/Shanghai; it is 08:59"):
        d0(10_000, when=b.utc(at(D, 8, 59)))
    with pytest.raises(D0Refused, match=r"merchant 898440\*{5}0002 is not allowed D0"):
        d0(10_000, EXAMPLE_MID_2, when=b.utc(at(D, 22, 30)))  # its rights first, at any hour
    with pytest.raises(D0Refused, match="must be between 10000 and 5000000 fen"):
        d0(9_999)
    with pytest.raises(D0Refused, match=r"D0 quota of 898440\*{5}0001: 30000 fen a day, 0 fen drawn"):
        d0(30_001, rates=parse_rates({"d0": {"quota_by_mid": {EXAMPLE_MID: 30_000}}}))

    payout = d0(150_000, rid="req-1")
    assert (payout.amount_fen, payout.surcharge_fen, payout.net_fen, payout.value_date) == (
        150_000,
        75,
        149_925,
        D,
    )
    assert d0(150_000, rid="req-1").payout_id == payout.payout_id  # the same request, the same payout
    late = b.utc(at(D, 22, 0))  # retried as the window closes: still its answer, not a refusal
    assert d0(150_000, rid="req-1", when=late).payout_id == payout.payout_id
    with pytest.raises(D0Refused, match="it is 22:00: ask again from 09:00"):
        d0(10_000, rid="req-2", when=late)
    with pytest.raises(D0Refused, match="40000 fen available"):
        d0(40_001)
    rows = bankfile.read(payout.file, PAYOUT_HEADER, "amount_fen")
    assert [(r["mid"], r["amount_fen"]) for r in rows] == [(EXAMPLE_MID, "149925")]
    import_confirmation(store, simulate_bank(payout.file, tmp_path / "d0-confirm.csv"))
    assert store.transact(lambda s: balances(s, prefix="fee_income:d0")) == {"fee_income:d0_surcharge": -75}
    assert owed(store)[EXAMPLE_MID] == -150_000  # advanced before the day cleared

    clear(store, b, D)
    t1 = build_t1_payouts(store, D, tmp_path)
    amounts = {
        row["mid"]: int(row["amount_fen"]) for row in bankfile.read(t1.file, PAYOUT_HEADER, "amount_fen")
    }
    day_net = (200_000 - 1_200) + (500_000 - 2_000) - 8_800
    assert amounts[EXAMPLE_MID] == day_net - 150_000  # T+1 nets the D0
    assert store.transact(trial_balance) == 0
