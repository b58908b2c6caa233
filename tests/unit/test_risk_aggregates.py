"""Risk aggregates, pure: what a finished request adds, in lock order; requests without a card; the reads a
rule set plans; window sums over buckets at each resolution."""

from __future__ import annotations

import datetime as dt

from posgate.risk.aggregates import CounterRow, Outcome, Request, counter_rows, plan, seen_rows, summarize

NOW = dt.datetime(2026, 12, 3, 14, 10, 30)


def test_a_sale_adds_to_every_key_at_every_resolution_in_primary_key_order() -> None:
    rows = counter_rows(Outcome(NOW, "sale", True, "00", 500, "h" * 64, "622202", "10000001", "M1", 22))
    keys = [(r.key_kind, r.resolution) for r in rows]
    assert len(rows) == 5 * 3 + 1
    assert keys == sorted(keys)
    assert ("merchant_hour", "d") in keys
    assert next(r for r in rows if r.key_kind == "merchant_hour").key_value == "M1:22"
    assert next(r.key_value for r in rows if r.key_kind == "card_merchant") == "h" * 64 + ":M1"


def test_a_request_without_a_card_counts_for_terminal_and_merchant_only() -> None:
    outcome = Outcome(NOW, "sale", False, "30", 500, None, None, "10000001", "M1", 22)
    assert {r.key_kind for r in counter_rows(outcome)} == {"terminal", "merchant"}
    assert seen_rows(outcome) == []


def test_a_balance_inquiry_adds_nothing_but_a_wrong_pin_counts() -> None:
    assert counter_rows(Outcome(NOW, "balance", True, "00", 0, "h", "622202", "T", "M", 1)) == []
    wrong_pin = counter_rows(Outcome(NOW, "balance", False, "55", 0, "h", "622202", "T", "M", 1))
    assert {r.values for r in wrong_pin} == {(0, 0, 0, 0, 0, 0, 1, 0)}


def test_plan_reads_each_key_once_per_resolution_from_its_oldest_window() -> None:
    needed = [("card", "approved", "10m"), ("card", "approved", "1h"), ("card", "amount", "24h")]
    reads = plan(Request("h", "622202", "T", "M", 9), needed, NOW, baseline=False)
    assert [(r.key_kind, r.resolution, r.since) for r in reads.counters] == [
        ("card", "h", dt.datetime(2026, 12, 2, 14, 0)),
        ("card", "m", dt.datetime(2026, 12, 3, 13, 10)),
    ]


def test_summarize_sums_the_buckets_of_each_window_and_zero_for_a_key_without_value() -> None:
    def row(resolution: str, at: dt.datetime, approved: int) -> CounterRow:
        return CounterRow("card", "h", resolution, at, (approved, approved, 0, 0, 0, 0, 0, 0))

    rows = [
        row("m", dt.datetime(2026, 12, 3, 14, 0), 1),  # first bucket of the 10 min window
        row("m", dt.datetime(2026, 12, 3, 13, 59), 1),  # outside it
        row("m", dt.datetime(2026, 12, 3, 14, 10), 1),
    ]
    needed = [("card", "approved", "10m"), ("card", "approved", "1h"), ("card_merchant", "approved", "10m")]
    facts = summarize(Request("h", None, "T", "M", 9), needed, NOW, rows, {}, baseline=False)
    assert facts["card"] == {"approved_10m": 2, "approved_1h": 3}
    no_card = summarize(Request(None, None, "T", "M", 9), needed, NOW, [], {}, baseline=False)
    assert no_card["card_merchant"] == {"approved_10m": 0}
