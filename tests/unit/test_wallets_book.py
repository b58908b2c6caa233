"""The simulated provider's books (pure: `now` is a parameter), the bill files round trip, and payment-code
routing."""

from __future__ import annotations

import datetime as dt

import pytest

from posgate.wallets import bills, codes
from posgate.wallets.errors import UnknownCodePrefix
from posgate.wallets.sim.book import CLOSED, PAID, PAYING, REVERSED, WAIT, Book, BookError

T0 = dt.datetime(2026, 12, 3, 4, 0, tzinfo=dt.UTC)  # 12:00 in Beijing


def _at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def _book() -> Book:
    book = Book("wechat")
    book.add_customer("demo", 1_000_000)
    book.add_customer("slow", 1_000_000, confirm_after_s=5)
    book.add_customer("poor", 100)
    return book


def test_order_paid_once_and_notified() -> None:
    book = _book()
    trade = book.create_order("M", "O1", 2372, "d", T0, _at(600), "http://n")
    assert trade.state == WAIT and book.create_order("M", "O1", 2372, "d", _at(1), _at(600), None) is trade
    book.pay_order(trade.code_token or "", "demo", _at(2))
    assert trade.state == PAID and book.customers["demo"].balance_fen == 1_000_000 - 2372
    assert [(n.event, n.out_trade_no) for n in book.outbox] == [("paid", "O1")]
    with pytest.raises(BookError) as info:
        book.pay_order(trade.code_token or "", "demo", _at(3))
    assert info.value.code == "ORDER_PAID"
    with pytest.raises(BookError) as info:
        book.create_order("M", "O1", 9999, "d", _at(4), _at(600), None)
    assert info.value.code == "DUPLICATE"


def test_order_expires_and_cannot_be_paid() -> None:
    book = _book()
    trade = book.create_order("M", "O1", 100, "d", T0, _at(60), None)
    assert book.trade("M", "O1", _at(59)).state == WAIT
    assert book.trade("M", "O1", _at(60)).state == CLOSED
    with pytest.raises(BookError) as info:
        book.pay_order(trade.code_token or "", "demo", _at(61))
    assert info.value.code == "ORDER_CLOSED"


def test_code_is_single_use_and_expires_after_a_minute() -> None:
    book = _book()
    code = book.issue_code("demo", T0)
    assert codes.route_code(code).provider == "wechat"
    assert book.charge_code("M", "C1", code, 500, "d", _at(1)).state == PAID
    assert book.charge_code("M", "C1", code, 500, "d", _at(2)).state == PAID  # the same charge again
    with pytest.raises(BookError) as info:
        book.charge_code("M", "C2", code, 500, "d", _at(3))
    assert info.value.code == "CODE_USED"
    late = book.issue_code("demo", T0)
    with pytest.raises(BookError) as info:
        book.charge_code("M", "C3", late, 500, "d", _at(60))
    assert info.value.code == "CODE_EXPIRED"
    with pytest.raises(BookError) as info:
        book.charge_code("M", "C4", book.issue_code("poor", T0), 101, "d", _at(1))
    assert info.value.code == "BALANCE"


def test_user_paying_confirms_later_or_is_reversed() -> None:
    book = _book()
    trade = book.charge_code("M", "C1", book.issue_code("slow", T0), 700, "d", _at(1))
    assert trade.state == PAYING and book.customers["slow"].balance_fen == 1_000_000
    assert book.trade("M", "C1", _at(5.9)).state == PAYING
    assert book.trade("M", "C1", _at(6)).state == PAID
    other = book.charge_code("M", "C2", book.issue_code("slow", T0), 300, "d", _at(1))
    book.reverse("M", "C2", _at(2))
    assert other.state == REVERSED and book.trade("M", "C2", _at(10)).state == REVERSED
    assert book.customers["slow"].balance_fen == 1_000_000 - 700


def test_refunds_sum_never_above_the_amount_and_are_idempotent() -> None:
    book = _book()
    book.charge_code("M", "C1", book.issue_code("demo", T0), 10_000, "d", _at(1))
    book.refund("M", "C1", "R1", 3_000, _at(2))
    book.refund("M", "C1", "R1", 3_000, _at(3))  # again: the same refund
    with pytest.raises(BookError) as info:
        book.refund("M", "C1", "R2", 7_001, _at(4))
    assert (info.value.code, str(info.value)) == (
        "REFUND_EXCEEDS",
        "refund of 7001 fen is more than the 7000 fen left to refund",
    )
    with pytest.raises(BookError) as info:
        book.refund("M", "C1", "R1", 2_000, _at(4))
    assert info.value.code == "DUPLICATE"
    book.refund("M", "C1", "R3", 7_000, _at(5))
    trade = book.trade("M", "C1", _at(6))
    assert trade.refunded_fen == 10_000 and trade.refundable_fen == 0
    assert book.customers["demo"].balance_fen == 1_000_000
    with pytest.raises(BookError) as info:
        book.reverse("M", "C1", _at(7))
    assert info.value.code == "STATE"


@pytest.mark.parametrize("provider", ["wechat", "alipay", "unionpay"])
def test_bills_round_trip_in_fen(provider: str) -> None:
    book = Book(provider)
    book.add_customer("demo", 1_000_000)
    book.charge_code("M", "C1", book.issue_code("demo", T0), 10_000, "晚餐", _at(1))
    book.refund("M", "C1", "R1", 2_500, _at(2))
    order = book.create_order("M", "O1", 4_321, "咖啡", _at(3), _at(600), None)
    book.pay_order(order.code_token or "", "demo", _at(4))
    rows = book.bill("M", T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=1))
    rate = 6000
    if provider == "wechat":
        lines = bills.parse_wechat(bills.write_wechat(rows, "wx1", "M", rate))
    elif provider == "alipay":
        text = bills.write_alipay(rows, "2088000000000001", T0.date(), rate, _at(10))
        assert bills.encode_alipay(text).decode("gbk") == text
        lines = bills.parse_alipay(text)
    else:
        lines = bills.parse_unionpay(bills.write_unionpay(rows, "M", rate))
    got = [
        (line.kind, line.out_trade_no, line.amount_fen, line.fee_fen, line.out_refund_no) for line in lines
    ]
    assert got == [
        ("pay", "C1", 10_000, 60, ""),
        ("refund", "C1", 2_500, -15, "R1"),
        ("pay", "O1", 4_321, 26, ""),
    ]
    assert lines[0].at == _at(1)


def test_wechat_bill_with_a_changed_count_is_refused() -> None:
    book = Book("wechat")
    book.add_customer("demo", 1_000)
    book.charge_code("M", "C1", book.issue_code("demo", T0), 100, "d", _at(1))
    text = bills.write_wechat(book.bill("M", T0, _at(60)), "wx1", "M", 6000)
    lines = text.splitlines()
    lines[-1] = "`2" + lines[-1][2:]
    with pytest.raises(ValueError, match="line 4: the summary count does not match the lines"):
        bills.parse_wechat("\n".join(lines))


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("991234567890123456", "unknown payment code prefix '99'"),
        ("1345678901234567", "unknown payment code prefix '13': wechat codes have 18 digits, not 16"),
        ("13456789012345678X", "unknown payment code prefix '13': a payment code is digits only"),
        ("2512345678901", "unknown payment code prefix '25': alipay codes have 16–24 digits, not 13"),
    ],
)
def test_routing_errors_are_one_line_naming_the_prefix(code: str, message: str) -> None:
    with pytest.raises(UnknownCodePrefix) as info:
        codes.route_code(code)
    assert str(info.value) == message and "\n" not in message


def test_routing_by_prefix_and_enabled_providers() -> None:
    assert [codes.route_code(p + "0" * 16).provider for p in ("10", "15")] == ["wechat", "wechat"]
    assert [codes.route_code(p + "0" * 16).provider for p in ("25", "30")] == ["alipay", "alipay"]
    assert codes.route_code("62" + "0" * 17).provider == "unionpay"
    with pytest.raises(UnknownCodePrefix, match="'62'"):
        codes.route_code("62" + "0" * 17, enabled=["wechat", "alipay"])
    for provider in codes.PROVIDERS:
        for _ in range(20):
            assert codes.route_code(codes.new_code(provider)).provider == provider


def test_the_pure_core_imports_no_event_loop_http_or_database() -> None:
    import subprocess
    import sys

    modules = ["emvqr", "codes", "wechatpay", "alipay", "unionpay", "rsakeys", "bills", "orderqr"]
    modules += ["qrimage", "sim.book"]
    frameworks = ("asyncio", "starlette", "httpx", "uvicorn", "sqlalchemy")
    code = (
        "import sys\n"
        + "".join(f"import posgate.wallets.{m}\n" for m in modules)
        + f"print(sorted(m for m in {frameworks!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
