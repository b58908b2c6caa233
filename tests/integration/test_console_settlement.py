"""The console's settlement pages over a cleared day (`DayBuilder` + `run_clearing`, then the T+1 payouts with
one rejected): the settlement page (clearing runs, fee income, payouts, outstanding payables), the merchant's
printable daily statement and its CSV, to the fen; roles, bad input, zh/en labels, masked PANs only."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from posgate.api.app import create_app
from posgate.api.console.render import yuan
from posgate.bootstrap.store import open_store
from posgate.config import Settings
from posgate.settlement.clearing import run_clearing
from posgate.settlement.payouts import build_t1_payouts, import_confirmation, simulate_bank
from posgate.settlement.rates import Rates
from posgate.settlement.reports import fee_income
from posgate.store.models_wallet import WalletOrder
from posgate.store.runtime import StoreHandle
from posgate.tools.clearing_day_factory import (
    CREDIT_CARD,
    DEBIT_CARD,
    EXAMPLE_MID,
    EXAMPLE_MID_2,
    DayBuilder,
    provision_example,
)
from posgate.tools.onboarding_data import DEMO_PASSWORD

TZ = "Asia/Shanghai"
D = dt.date(2026, 8, 3)

# EXAMPLE_MID (debit 0.50 % capped 20.00, credit 0.60 %) on D:
#   sale 1,000.00 debit (MDR 5.00), sale 20,000.00 debit (MDR capped 20.00), sale 500.00 credit (MDR 3.00),
#   sale 123.45 credit (MDR 0.7407 → 0.74), refund 100.00 of the first sale (no fee)
GROSS_FEN = 100_000 + 2_000_000 + 50_000 + 12_345
REFUNDS_FEN = 10_000
MDR_FEN = 500 + 2_000 + 300 + 74
NET_FEN = GROSS_FEN - REFUNDS_FEN - MDR_FEN  # 21,494.71
# EXAMPLE_MID_2 (debit 0.38 %): one sale of 400.00, MDR 1.52; its payout is rejected, so it is still owed
NET_2_FEN = 40_000 - 152


def at(hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime.combine(D, dt.time(hh, mm))


def open_cleared(tmp_path: Path, database_url: str | None = None) -> tuple[StoreHandle, Settings]:
    """A fresh store (no demo fixture) with the example day written, cleared and paid out (MID 2's payout
    rejected by the bank)."""
    settings = Settings(data_dir=tmp_path / "data", env="test", database_url=database_url, timezone=TZ)
    handle = open_store(settings, load_demo=False)
    builder = DayBuilder(timezone=TZ)
    with builder.writing(handle.store):
        provision_example(builder)
        first = builder.sale(at(9), 100_000, EXAMPLE_MID, DEBIT_CARD)
        builder.sale(at(10), 2_000_000, EXAMPLE_MID, DEBIT_CARD)
        builder.sale(at(11), 50_000, EXAMPLE_MID, CREDIT_CARD)
        builder.sale(at(11, 30), 12_345, EXAMPLE_MID, CREDIT_CARD)
        builder.refund(at(12), first, REFUNDS_FEN)
        builder.sale(at(13), 40_000, EXAMPLE_MID_2, DEBIT_CARD)
    run_clearing(handle.store, D, Rates(), TZ, now=dt.datetime(2030, 1, 1))
    payouts = build_t1_payouts(handle.store, D, settings.data_dir)
    assert payouts.file is not None and len(payouts.created) == 2
    confirmation = simulate_bank(payouts.file, tmp_path / "confirmation.csv", rejected=payouts.created[1:])
    import_confirmation(handle.store, confirmation)
    return handle, settings


def login(client: TestClient, username: str) -> None:
    response = client.post("/login", data={"username": username, "password": DEMO_PASSWORD, "next": "/"})
    assert response.status_code == 303, response.text


def cell(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', page)
    assert match, element_id
    return match.group(1)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[TestClient, StoreHandle]]:
    handle, settings = open_cleared(tmp_path)
    with TestClient(create_app(handle, settings), follow_redirects=False) as client:
        yield client, handle
    handle.store.close()


def test_the_statement_page_shows_the_day_to_the_fen(console) -> None:  # type: ignore[no-untyped-def]
    client, _handle = console
    login(client, "finance")
    response = client.get(f"/merchants/{EXAMPLE_MID}/statement?date={D}")
    assert response.status_code == 200, response.text
    page = response.text
    assert "Demo Supermarket" in page and cell(page, "statement-date") == "2026-08-03"
    assert cell(page, "sales-count") == "4" and cell(page, "refunds-count") == "1"
    assert cell(page, "gross-sales") == "21,623.45" == yuan(GROSS_FEN)
    assert cell(page, "refunds") == "100.00"
    assert cell(page, "mdr") == "28.74" == yuan(MDR_FEN)
    assert cell(page, "net") == "21,494.71" == yuan(NET_FEN)
    assert cell(page, "opening-balance") == "0.00"
    assert cell(page, "payouts-total") == "21,494.71" and cell(page, "closing-balance") == "0.00"
    assert 'id="not-cleared"' not in page
    # the lines, in local time, masked cards, signed amounts and fees
    lines = page.split('id="statement-lines"')[1].split("</table>")[0]
    assert lines.count("<tr>") == 1 + 5  # header + 5 cleared transactions
    assert "2026-08-03 11:30:00" in lines and "625000******0002" in lines and "123.45" in lines
    assert ">0.74<" in lines and ">122.71<" in lines  # 123.45 − 0.74
    assert ">-100.00<" in lines
    assert 'href="/merchants/898440153110001/statement.csv?date=2026-08-03"' in page
    # printable: no inline style or script (the CSP allows neither), the print stylesheet hides the menus
    assert "<script" not in page and "style=" not in page
    css = client.get("/static/console.css").text
    assert "@media print" in css and ".noprint" in css


def test_the_csv_is_the_same_statement(console) -> None:  # type: ignore[no-untyped-def]
    client, _handle = console
    login(client, "risk")
    page = client.get(f"/merchants/{EXAMPLE_MID}/statement?date={D}").text
    response = client.get(f"/merchants/{EXAMPLE_MID}/statement.csv?date={D}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="statement-{EXAMPLE_MID}-2026-08-03.csv"'
    )
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    summary = dict(zip(rows[0], rows[1], strict=True))
    assert summary["section"] == "statement" and summary["mid"] == EXAMPLE_MID
    assert (summary["date"], summary["clearing_status"]) == ("2026-08-03", "finished")
    for column, element in (
        ("gross_sales_cny", "gross-sales"),
        ("refunds_cny", "refunds"),
        ("mdr_cny", "mdr"),
        ("net_cny", "net"),
        ("payouts_cny", "payouts-total"),
        ("closing_balance_cny", "closing-balance"),
    ):
        assert summary[column] == cell(page, element).replace(",", ""), column
    assert (summary["gross_sales_cny"], summary["net_cny"]) == ("21623.45", "21494.71")
    lines = [dict(zip(rows[2], row, strict=True)) for row in rows[3:] if row[0] == "line"]
    assert [x["kind"] for x in lines] == ["sale", "sale", "sale", "sale", "refund"]
    assert sum(int(x["net_cny"].replace(".", "")) for x in lines) == NET_FEN
    assert lines[3]["card"] == "625000******0002" and lines[3]["mdr_cny"] == "0.74"
    payouts = [row for row in rows if row[0] == "payout"]
    assert len(payouts) == 1 and payouts[0][4] == "21494.71" and payouts[0][-1] == "paid"


def test_the_settlement_page_has_runs_fee_income_payouts_and_payables(console) -> None:  # type: ignore[no-untyped-def]
    client, handle = console
    login(client, "finance")
    response = client.get(f"/settlement?date={D}")
    assert response.status_code == 200, response.text
    page = response.text
    assert 'class="on" id="nav-settlement"' in page
    runs = page.split('id="runs"')[1].split("</table>")[0]
    assert "status s-finished" in runs and ">6<" in runs  # cleared count
    income = handle.store.transact(lambda s: fee_income(s, D))
    total = page.split('id="fee-income-total"')[1].split("</tr>")[0]
    assert yuan(GROSS_FEN + 40_000) in total and yuan(MDR_FEN + 152) == "30.26" and "30.26" in total
    assert yuan(income.total.interchange_fen) in total and yuan(income.total.network_fen) in total
    assert cell(page, "net-income") == yuan(income.net_income_fen)
    assert 'id="ledger-check">The ledger agrees' in page
    assert f'href="/merchants/{EXAMPLE_MID}/statement?date=2026-08-03"' in page
    payouts = page.split('id="payouts"')[1].split("</table>")[0]
    assert "status s-paid" in payouts and "status s-rejected" in payouts and "21,494.71" in payouts
    payables = page.split('id="payables"')[1].split("</table>")[0]
    assert EXAMPLE_MID_2 in payables and EXAMPLE_MID not in payables and yuan(NET_2_FEN) in payables
    # another date: nothing cleared, nothing paid; the page says so
    empty = client.get("/settlement?date=2026-08-04").text
    assert "status s-not_run" in empty and cell(empty, "net-income") == "0.00"
    # without a date: the latest cleared date
    assert cell(client.get("/settlement").text, "settlement-date") == "2026-08-03"
    # the statement of an uncleared date warns that its figures are not final
    assert 'id="not-cleared"' in client.get(f"/merchants/{EXAMPLE_MID}/statement?date=2026-08-04").text


def test_the_merchant_page_links_the_statement_for_those_who_may_read_it(console) -> None:  # type: ignore[no-untyped-def]
    client, _handle = console
    login(client, "finance")
    page = client.get(f"/merchants/{EXAMPLE_MID}").text
    assert f'action="/merchants/{EXAMPLE_MID}/statement"' in page and 'value="2026-08-03"' in page
    assert 'href="/settlement"' in page
    login(client, "operator")
    assert "/statement" not in client.get(f"/merchants/{EXAMPLE_MID}").text


def test_roles_are_enforced(console) -> None:  # type: ignore[no-untyped-def]
    client, _handle = console
    paths = (
        f"/settlement?date={D}",
        f"/merchants/{EXAMPLE_MID}/statement?date={D}",
        f"/merchants/{EXAMPLE_MID}/statement.csv?date={D}",
    )
    for path in paths:
        assert client.get(path).headers["location"].startswith("/login?next=")
    for role in ("operator", "reviewer"):
        login(client, role)
        for path in paths:
            response = client.get(path)
            assert response.status_code == 403, (role, path)
            assert "transactions: read" in response.text and "21,494.71" not in response.text
    for role in ("risk", "finance", "admin"):
        login(client, role)
        for path in paths:
            assert client.get(path).status_code == 200, (role, path)


def test_bad_input_names_the_field(console) -> None:  # type: ignore[no-untyped-def]
    client, _handle = console
    login(client, "finance")
    for path in (
        "/settlement?date=2026-13-01",
        "/settlement?date=03/08/2026",
        f"/merchants/{EXAMPLE_MID}/statement?date=yesterday",
        f"/merchants/{EXAMPLE_MID}/statement.csv?date=20260803",
    ):
        response = client.get(path)
        assert response.status_code == 422, path
        assert 'id="error">Error: date: must be a date like 2026-11-26' in response.text, path
    unknown = client.get(f"/merchants/898440153119999/statement?date={D}")
    assert unknown.status_code == 404 and "no merchant with this MID" in unknown.text
    assert client.get(f"/merchants/898440153119999/statement.csv?date={D}").status_code == 404
    assert client.get("/merchants/%3Cscript%3E/statement").status_code == 404


def test_labels_in_chinese_and_nothing_from_outside(console) -> None:  # type: ignore[no-untyped-def]
    client, _handle = console
    login(client, "admin")
    zh = client.get(f"/settlement?date={D}&lang=zh").text
    assert "清算结算" in zh and "手续费收入" in zh and "待付商户款" in zh and "已付款" in zh
    statement = client.get(f"/merchants/{EXAMPLE_MID}/statement?date={D}").text
    assert "商户日结单" in statement and "交易总额（元）" in statement and "退货" in statement
    assert "Gross sales" not in statement
    for path in (f"/settlement?date={D}", f"/merchants/{EXAMPLE_MID}/statement?date={D}"):
        page = client.get(path)
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for url in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            assert url.startswith(("/", "?", "#")), (path, url)


def test_the_statement_on_both_databases(tmp_path: Path, database_url: str) -> None:
    handle, settings = open_cleared(tmp_path, database_url)
    try:
        with TestClient(create_app(handle, settings), follow_redirects=False) as client:
            login(client, "finance")
            page = client.get(f"/merchants/{EXAMPLE_MID}/statement?date={D}").text
            assert (cell(page, "gross-sales"), cell(page, "mdr"), cell(page, "net")) == (
                "21,623.45",
                "28.74",
                "21,494.71",
            )
            rows = list(
                csv.reader(io.StringIO(client.get(f"/merchants/{EXAMPLE_MID}/statement.csv?date={D}").text))
            )
            assert rows[1][rows[0].index("net_cny")] == "21494.71"
            api = client.get("/api/settlement/payables").json()
            assert [(p["mid"], p["payable_fen"]) for p in api] == [(EXAMPLE_MID_2, NET_2_FEN)]
    finally:
        handle.store.close()


def test_the_statement_page_lists_wallet_payments_beside_the_cards(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", env="test", timezone=TZ)
    handle = open_store(settings, load_demo=False)
    builder = DayBuilder(timezone=TZ)
    with builder.writing(handle.store):
        provision_example(builder)
        builder.sale(at(9), 100_000, EXAMPLE_MID, DEBIT_CARD)
    paid = builder.utc(at(10))
    handle.store.transact(
        lambda s: s.add(
            WalletOrder(
                order_id="Q260803020000ABCDEF012345",
                provider="alipay",
                flow="scan",
                mid=EXAMPLE_MID,
                tid="10000001",
                amount_fen=2372,
                refunded_fen=0,
                state="paid",
                created_at=paid,
                expires_at=paid,
                paid_at=paid,
                updated_at=paid,
            )
        )
    )
    run_clearing(handle.store, D, Rates(), TZ, now=dt.datetime(2030, 1, 1))
    with TestClient(create_app(handle, settings), follow_redirects=False) as client:
        login(client, "admin")
        page = client.get(f"/merchants/{EXAMPLE_MID}/statement?date={D}").text
        settlement = client.get(f"/settlement?date={D}").text
        csv_text = client.get(f"/merchants/{EXAMPLE_MID}/statement.csv?date={D}").text
    handle.store.close()
    lines = page.split('id="statement-lines"')[1].split("</table>")[0]
    assert "Q260803020000ABCDEF012345" in lines and "alipay" in lines and "QR wallet" in lines
    assert yuan(2372) in lines and yuan(9) in lines  # 23.72 and its 0.38 % wallet MDR
    assert 'id="wallet-fee-total">0.14<' in settlement  # Alipay's 0.60 % of 23.72
    [wallet_line] = [row for row in csv.reader(io.StringIO(csv_text)) if "Q260803020000ABCDEF012345" in row]
    assert wallet_line[5:11] == ["Q260803020000ABCDEF012345", "alipay", "wallet", "23.72", "0.09", "23.63"]
    assert 'id="ledger-check">The ledger agrees with these figures.<' in settlement
