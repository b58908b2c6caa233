"""Connection caps per source and in total, and the per-source warning budget (pure, no sockets)."""

from __future__ import annotations

from posgate.host.admission import Admission, WarningBudget, source_of


def test_ipv6_addresses_of_one_slash_64_count_as_one_source() -> None:
    gate = Admission(max_total=100, max_per_source=2)
    assert gate.admit("2001:db8:0:1::1") is None
    assert gate.admit("2001:db8:0:1:ffff::2") is None
    assert gate.admit("2001:db8:0:1:1234:5678:9abc:def0") is not None
    assert gate.admit("2001:db8:0:2::1") is None  # another /64
    assert source_of("fe80::1%eth0") == "fe80::/64"


def test_release_frees_the_slot_and_never_goes_negative() -> None:
    gate = Admission(max_total=1, max_per_source=1)
    assert gate.admit("192.0.2.1") is None
    assert gate.admit("192.0.2.2") == "1 connections in total already (pos_max_connections)"
    gate.release("192.0.2.1")
    gate.release("192.0.2.1")
    assert (gate.total, gate.per_source) == (0, {})
    assert gate.admit("192.0.2.2") is None


def test_the_warning_budget_holds_back_and_then_reports_the_count() -> None:
    budget = WarningBudget(per_window=3, window_s=10.0)
    let_through = [budget.allow("192.0.2.9", float(t)) for t in range(10)]
    assert let_through == [0, 0, 0, None, None, None, None, None, None, None]
    assert budget.allow("192.0.2.10", 5.0) == 0  # another source has its own budget
    assert budget.allow("192.0.2.9", 10.0) == 7


def test_the_warning_budget_forgets_sources_when_full() -> None:
    budget = WarningBudget(per_window=1, window_s=1.0, max_sources=100)
    for n in range(1000):
        assert budget.allow(f"10.0.{n // 256}.{n % 256}", float(n)) == 0
    assert len(budget._spent) <= 100
