"""The pure core of settlement: fees and their rounding, the rates document, the clearing day, journal
entries, the checksum files, CNY amounts, the reconciliation matcher."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posgate.errors import ConfigError
from posgate.settlement import bankfile
from posgate.settlement.clearing import Cleared, adjustment, clear_one
from posgate.settlement.clearing_day import clearing_date, clearing_window
from posgate.settlement.errors import FileChecksumError, FileFormatError, SettlementError, UnbalancedEntry
from posgate.settlement.fees import FeePlan, FeeTable, ppm_of, transaction_fees
from posgate.settlement.ledger import Entry, account_type, clearing_lines, payout_entry
from posgate.settlement.payouts import parse_cny
from posgate.settlement.rates import Rates, load_rates, parse_rates
from posgate.settlement.reconcile import HostRecord, IssuerLine, Matcher

SHANGHAI = ZoneInfo("Asia/Shanghai")
PLAN = FeePlan(debit_ppm=5000, debit_cap_fen=2000, credit_ppm=6000)


# ---- fees


@pytest.mark.parametrize(
    ("amount", "ppm", "cap", "fee"),
    [
        (100, 5000, None, 1),  # 0.5 fen: half-up
        (99, 5000, None, 0),  # 0.495 fen: down
        (300, 5000, None, 2),  # 1.5 fen: up
        (10_000, 3500, 1300, 35),
        (371_429, 3500, 1300, 1300),  # 1300.0015 fen: capped
        (371_428, 3500, 1300, 1300),  # 1299.998 → 1300
        (371_400, 3500, 1300, 1300),  # 1299.9 → 1300
        (371_000, 3500, 1300, 1299),  # 1298.5 → 1299
        (1_000_000_000, 325, 325, 325),
        (0, 5000, None, 0),
    ],
)
def test_a_fee_is_rounded_half_up_to_the_fen_then_capped(
    amount: int, ppm: int, cap: int | None, fee: int
) -> None:
    assert ppm_of(amount, ppm, cap) == fee


def test_the_regulated_defaults_split_a_debit_and_a_credit_sale() -> None:
    rates = Rates()
    debit = transaction_fees(1_000_000, "debit", PLAN, rates)  # 10,000.00 CNY
    assert (debit.mdr_fen, debit.interchange_fen, debit.network_fen) == (2000, 1300, 325)
    credit = transaction_fees(1_000_000, "credit", PLAN, rates)
    assert (credit.mdr_fen, credit.interchange_fen, credit.network_fen) == (6000, 4500, 325)
    small = transaction_fees(2_000, "credit", PLAN, rates)  # 20.00 CNY
    assert (small.mdr_fen, small.interchange_fen, small.network_fen, small.network_issuer_fen) == (
        12,
        9,
        1,
        1,
    )


@given(st.integers(min_value=1, max_value=10**10), st.sampled_from(["debit", "credit"]))
def test_the_fee_table_agrees_with_the_reference_fees(amount: int, card_kind: str) -> None:
    rates = Rates()
    fees = transaction_fees(amount, card_kind, PLAN, rates)
    assert FeeTable(rates).fees(amount, card_kind, PLAN) == (
        fees.mdr_fen,
        fees.interchange_fen,
        fees.network_fen,
        fees.network_issuer_fen,
    )


def test_fees_refuse_a_negative_amount() -> None:
    with pytest.raises(ValueError, match="positive amount"):
        ppm_of(-1, 5000)


# ---- rates document


def test_the_packaged_rates_load_with_the_regulated_defaults() -> None:
    rates = load_rates()
    assert rates.clearing.cut_off_local == dt.time(23, 0)
    assert (rates.interchange.debit_ppm, rates.interchange.debit_cap_fen, rates.interchange.credit_ppm) == (
        3500,
        1300,
        4500,
    )
    assert (rates.network.acquirer_ppm, rates.network.acquirer_cap_fen) == (325, 325)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"clearing": {"cut_of_local": "22:00"}},
            "rates: clearing.cut_of_local: Extra inputs are not permitted",
        ),
        ({"network": {"issuer_pmm": 1}}, "rates: network.issuer_pmm: Extra inputs are not permitted"),
        (
            {"d0": {"window_start_local": "9h"}},
            "rates: d0.window_start_local: Value error, '9h' is not a local",
        ),
        ({"clearing": {"cut_off_local": "00:00"}}, "rates: clearing.cut_off_local: Value error, the cut-off"),
        ({"interchange": {"debit_ppm": -1}}, "rates: interchange.debit_ppm: Input should be greater than"),
        ({"d0": {"min_fen": 10, "max_fen": 5}}, "rates: d0: Value error, max_fen must be at least min_fen"),
        ({"surprise": 1}, "rates: surprise: Extra inputs are not permitted"),
    ],
)
def test_a_bad_rates_document_names_the_key(document: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rates(document)
    assert str(caught.value).startswith(message)


def test_a_deployment_overrides_only_what_it_names(tmp_path: Path) -> None:
    (tmp_path / "settlement-rates.toml").write_text(
        '[clearing]\ncut_off_local = "22:30"\n[d0.quota_by_mid]\n"898440153110001" = 123\n'
    )
    rates = load_rates(data_dir=tmp_path)
    assert rates.clearing.cut_off_local == dt.time(22, 30)
    assert rates.clearing.chunk_size == 5000
    assert rates.d0.quota_fen("898440153110001") == 123
    assert rates.d0.quota_fen("other") == rates.d0.daily_quota_fen
    bad = tmp_path / "bad.toml"
    bad.write_text("[clearing]\nchunk = 1\n")
    with pytest.raises(ConfigError, match=r"bad.toml: clearing.chunk: Extra inputs are not permitted"):
        load_rates(bad)


# ---- the clearing day


def test_late_transactions_go_to_the_next_day() -> None:
    cut = dt.time(23, 0)
    local = dt.datetime(2026, 11, 26, 22, 59, 59, 999999, tzinfo=SHANGHAI)
    utc = local.astimezone(dt.UTC).replace(tzinfo=None)
    assert clearing_date(utc, SHANGHAI, cut) == dt.date(2026, 11, 26)
    assert clearing_date(utc + dt.timedelta(microseconds=1), SHANGHAI, cut) == dt.date(2026, 11, 27)
    assert clearing_date(dt.datetime(2026, 11, 26, 16, 0), SHANGHAI, cut) == dt.date(
        2026, 11, 27
    )  # 00:00 local
    assert clearing_date(dt.datetime(2026, 11, 26, 15, 0), SHANGHAI, dt.time(23, 30)) == dt.date(2026, 11, 26)


@given(st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1)))
def test_every_moment_falls_in_the_window_of_its_clearing_date(moment: dt.datetime) -> None:
    cut = dt.time(23, 0)
    start, end = clearing_window(clearing_date(moment, SHANGHAI, cut), SHANGHAI, cut)
    assert start <= moment < end


# ---- journal entries


def test_an_entry_must_balance_to_the_fen() -> None:
    day = dt.date(2026, 1, 1)
    with pytest.raises(UnbalancedEntry, match="entry clear:1: debits and credits differ by 1 fen"):
        Entry("clear:1", "clear", day, (("a", 100), ("b", -99)))
    with pytest.raises(UnbalancedEntry, match="entry clear:2: debits and credits differ by -1 fen"):
        Entry("clear:2", "clear", day, (("a", 99), ("b", -100)))  # more credit than debit
    with pytest.raises(UnbalancedEntry, match="entry clear:3: debits and credits differ by -30 fen"):
        Entry("clear:3", "clear", day, (("a", -10), ("b", -20)))
    with pytest.raises(UnbalancedEntry, match="entry z: line on a must be non-zero fen"):
        Entry("z", "clear", day, (("a", 0), ("b", 0)))
    with pytest.raises(UnbalancedEntry, match="entry f: line on a must be non-zero fen"):
        Entry("f", "clear", day, (("a", 1.0), ("b", -1)))  # type: ignore[arg-type]  # fen are integers
    with pytest.raises(UnbalancedEntry, match="entry one: needs at least two lines"):
        Entry("one", "clear", day, (("a", 5),))
    with pytest.raises(UnbalancedEntry, match="entry x: needs at least two lines"):
        Entry("x", "clear", day, (("a", 0),))
    with pytest.raises(UnbalancedEntry, match="entry y: line on b must be non-zero fen"):
        Entry("y", "clear", day, (("a", 5), ("b", 0), ("c", -5)))


@given(
    st.integers(min_value=1, max_value=10**10),
    st.sampled_from(["debit", "credit"]),
    st.sampled_from(["sale", "refund"]),
)
def test_every_clearing_entry_balances_and_splits_as_documented(
    amount: int, card_kind: str, kind: str
) -> None:
    cleared = clear_one(1, kind, "M1", "Bank A", amount, card_kind, PLAN, FeeTable(Rates()))
    entry = cleared.entry(dt.date(2026, 1, 1))
    lines = dict(entry.lines)
    assert sum(lines.values()) == 0
    if kind == "refund":
        assert lines == {"merchant_payable:M1": amount, "issuer_receivable:Bank A": -amount}
        return
    assert -lines["merchant_payable:M1"] == amount - cleared.mdr_fen
    fee_income = -lines.get("fee_income:mdr", 0) - lines.get("interchange_expense", 0)
    assert fee_income - lines.get("network_fee_expense", 0) == (
        cleared.mdr_fen - cleared.interchange_fen - cleared.network_fen
    )
    assert lines["issuer_receivable:Bank A"] == amount - cleared.interchange_fen - cleared.network_fen
    undo = adjustment(2, cleared, -1, 1).entry(dt.date(2026, 1, 2))
    assert dict(undo.lines) == {account: -amount_fen for account, amount_fen in lines.items()}


def test_unknown_merchants_and_issuers_go_to_suspense() -> None:
    cleared = Cleared(1, "sale", "M?", None, "debit", 1000, 5, 4, 1, 1, known_merchant=False)
    assert cleared.entry(dt.date(2026, 1, 1)).lines == (
        ("suspense", 995),
        ("interchange_expense", 4),
        ("network_fee_expense", 1),
        ("suspense", -995),
        ("fee_income:mdr", -5),
    )
    assert clearing_lines(1000, 5, 4, 1, "m", "i")[0] == ("i", 995)


def test_a_payout_entry_takes_the_surcharge_as_income() -> None:
    entry = payout_entry(3, "M1", dt.date(2026, 1, 2), 10_000, 5, "d0")
    assert entry.key == "payout:3"
    assert dict(entry.lines) == {
        "merchant_payable:M1": 10_000,
        "settlement_cash": -9_995,
        "fee_income:d0_surcharge": -5,
    }
    assert (entry.kind, entry.value_date, entry.payout_id, entry.transaction_id, entry.memo) == (
        "payout",
        dt.date(2026, 1, 2),
        3,
        None,
        "d0",
    )


def test_account_types_come_from_the_chart_by_code_or_by_its_head() -> None:
    assert account_type("merchant_payable:898440153110001") == "liability"
    assert account_type("issuer_receivable:Bank:with:colons") == "asset"  # only the first colon splits
    assert account_type("fee_income:mdr") == account_type("fee_income:d0_surcharge") == "income"
    assert account_type("interchange_expense") == account_type("network_fee_expense") == "expense"
    assert (account_type("settlement_cash"), account_type("suspense")) == ("asset", "suspense")
    with pytest.raises(ValueError, match=r"^'cash_drawer' is not an account of the chart$"):
        account_type("cash_drawer")
    with pytest.raises(ValueError, match=r"^'suspense_x:1' is not an account of the chart$"):
        account_type("suspense_x:1")


# ---- checksum files


HEADER = ("payout_id", "status", "amount_fen")


def test_a_checksum_file_round_trips_and_names_what_is_wrong() -> None:
    text = bankfile.render(HEADER, [(1, "paid", 100), (2, "rejected", 250)], "amount_fen")
    assert bankfile.parse(text, HEADER, "amount_fen")[1] == {
        "payout_id": "2",
        "status": "rejected",
        "amount_fen": "250",
    }
    body, last = text.rstrip("\n").rsplit("\n", 1)
    digest = last.split(",")[3]
    with pytest.raises(FileChecksumError, match="3 in the checksum line"):
        bankfile.parse(f"{body}\nCHECKSUM,3,350,{digest}\n", HEADER, "amount_fen")
    with pytest.raises(FileChecksumError, match="sum 350 in the rows, 351 in the checksum line"):
        bankfile.parse(f"{body}\nCHECKSUM,2,351,{digest}\n", HEADER, "amount_fen")
    with pytest.raises(FileChecksumError, match="SHA-256 does not match"):
        bankfile.parse(text.replace("rejected", "paid"), HEADER, "amount_fen")
    with pytest.raises(FileFormatError, match="the last line must be CHECKSUM"):
        bankfile.parse(body + "\n", HEADER, "amount_fen")
    with pytest.raises(FileFormatError, match="line 1: header must be 'payout_id,status,amount_fen'"):
        bankfile.parse(text.replace("payout_id", "id", 1), HEADER, "amount_fen")


def test_a_merchant_name_with_a_comma_is_quoted() -> None:
    text = bankfile.render(("id", "name", "amount_fen"), [(1, 'Tea, "Best" & Co', 5)], "amount_fen")
    assert bankfile.parse(text, ("id", "name", "amount_fen"), "amount_fen")[0]["name"] == 'Tea, "Best" & Co'


@pytest.mark.parametrize(
    ("text", "fen"), [("1", 100), ("0.01", 1), ("12345.6", 1234560), ("5000.00", 500000)]
)
def test_cny_amounts_become_fen_exactly(text: str, fen: int) -> None:
    assert parse_cny(text) == fen


@pytest.mark.parametrize("text", ["0", "-1", "1.001", "abc", "NaN", "inf"])
def test_bad_cny_amounts_are_refused(text: str) -> None:
    with pytest.raises(SettlementError):
        parse_cny(text)


# ---- reconciliation matcher


def test_the_matcher_uses_the_rrn_then_stan_and_amount() -> None:
    m = Matcher()
    m.add_issuer(IssuerLine(2, "000000000001", "000001", 100, "0200", "000000"))
    m.add_issuer(IssuerLine(3, "999999999999", "000002", 200, "0200", "000000"))  # RRN garbled: STAN+amount
    m.add_issuer(IssuerLine(4, "", "000003", 300, "0200", "000000"))  # no RRN at all
    m.add_issuer(IssuerLine(5, "000000000004", "000004", 400, "0200", "000000"))  # we never saw it
    m.see_host(HostRecord(1, "000000000001", "000001", 100, "sale"))
    m.see_host(HostRecord(2, "000000000002", "000002", 200, "sale"))
    m.see_host(HostRecord(3, "000000000003", "000003", 300, "refund"))
    m.see_host(HostRecord(5, "000000000005", "000005", 500, "sale"))  # the issuer never saw it
    m.finish()
    assert m.matched == 3
    assert [(d.status, d.rrn) for d in m.differences] == [
        ("missing_on_host", "000000000004"),
        ("missing_on_issuer", "000000000005"),
    ]
    assert len(m.notes) == 2
