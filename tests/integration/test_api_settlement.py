"""`/api/settlement`: the statement, fee income and payables of a cleared day as JSON (integer fen), the
role check (risk, finance, admin; API keys too) and errors naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from posgate.api.app import create_app
from posgate.settlement.reports import fee_income
from posgate.store.runtime import StoreHandle
from posgate.tools.clearing_day_factory import EXAMPLE_MID, EXAMPLE_MID_2
from posgate.tools.onboarding_data import sign_in
from tests.integration.test_console_settlement import (
    GROSS_FEN,
    MDR_FEN,
    NET_2_FEN,
    NET_FEN,
    REFUNDS_FEN,
    D,
    open_cleared,
)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, StoreHandle]]:
    handle, settings = open_cleared(tmp_path)
    with TestClient(create_app(handle, settings)) as client:
        yield client, handle
    handle.store.close()


def test_the_statement_as_json(api) -> None:  # type: ignore[no-untyped-def]
    client, _handle = api
    sign_in(client, "finance")
    response = client.get(f"/api/settlement/statement?mid={EXAMPLE_MID}&date={D}")
    assert response.status_code == 200, response.text
    s = response.json()
    assert (s["mid"], s["name"], s["date"], s["clearing_status"]) == (
        EXAMPLE_MID,
        "Demo Supermarket",
        "2026-08-03",
        "finished",
    )
    t = s["totals"]
    assert (t["sales_count"], t["gross_sales_fen"], t["refunds_count"], t["refunds_fen"]) == (
        4,
        GROSS_FEN,
        1,
        REFUNDS_FEN,
    )
    assert (t["mdr_fen"], t["net_fen"], t["adjusted_fen"]) == (MDR_FEN, NET_FEN, 0)
    assert (s["opening_balance_fen"], s["payouts_fen"], s["closing_balance_fen"]) == (0, NET_FEN, 0)
    assert [p["status"] for p in s["payouts"]] == ["paid"]
    assert [x["kind"] for x in s["lines"]] == ["sale"] * 4 + ["refund"]
    assert sum(x["net_fen"] for x in s["lines"]) == NET_FEN
    line = s["lines"][3]
    assert (line["pan_masked"], line["amount_fen"], line["mdr_fen"], line["net_fen"]) == (
        "625000******0002",
        12_345,
        74,
        12_271,
    )
    assert line["created_at"] == "2026-08-03T03:30:00" and line["local_time"] == "2026-08-03 11:30:00"
    assert "pan_hash" not in line and "pan_ciphertext" not in line


def test_fee_income_and_payables_as_json(api) -> None:  # type: ignore[no-untyped-def]
    client, handle = api
    sign_in(client, "risk")
    income = client.get(f"/api/settlement/fee-income?date={D}").json()
    expected = handle.store.transact(lambda s: fee_income(s, D))
    assert [r["mid"] for r in income["rows"]] == [EXAMPLE_MID, EXAMPLE_MID_2]
    assert income["total"]["mdr_fen"] == MDR_FEN + 152 and income["total"]["volume_fen"] == GROSS_FEN + 40_000
    assert income["total"]["interchange_fen"] == expected.total.interchange_fen
    assert (
        income["net_income_fen"]
        == expected.net_income_fen
        == (income["total"]["mdr_fen"] - income["total"]["interchange_fen"] - income["total"]["network_fen"])
    )
    assert income["ledger"]["agrees"] is True and income["ledger"]["mdr_fen"] == MDR_FEN + 152
    assert client.get("/api/settlement/fee-income?date=2026-08-04").json()["rows"] == []
    payables = client.get("/api/settlement/payables").json()
    assert payables == [
        {
            "mid": EXAMPLE_MID_2,
            "name": "Corner Cafe",
            "balance_fen": NET_2_FEN,
            "in_flight_fen": 0,
            "payable_fen": NET_2_FEN,
            "last_payout": None,
        }
    ]


@pytest.mark.parametrize(
    "url",
    [
        f"/api/settlement/statement?mid={EXAMPLE_MID}&date={D}",
        f"/api/settlement/fee-income?date={D}",
        "/api/settlement/payables",
    ],
)
def test_roles_are_enforced(api, url: str) -> None:  # type: ignore[no-untyped-def]
    client, _handle = api
    assert client.get(url).status_code == 401
    for role, status in (
        ("operator", 403),
        ("reviewer", 403),
        ("risk", 200),
        ("finance", 200),
        ("admin", 200),
    ):
        sign_in(client, role)
        response = client.get(url)
        assert response.status_code == status, (role, url, response.text)
        if status == 403:
            assert response.json()["error"]["code"] == "forbidden"
    headers = sign_in(client, "admin")
    key = client.post("/api/api-keys", json={"label": "books", "role": "finance"}, headers=headers).json()
    client.post("/api/auth/logout", headers=headers)
    assert client.get(url, headers={"Authorization": f"Bearer {key['key']}"}).status_code == 200


@pytest.mark.parametrize(
    ("url", "status", "code", "field"),
    [
        (f"/api/settlement/statement?mid={EXAMPLE_MID}&date=2026-02-30", 422, "invalid_field", "date"),
        (f"/api/settlement/statement?mid={EXAMPLE_MID}&date=03/08/2026", 422, "invalid_field", "date"),
        (f"/api/settlement/statement?mid={EXAMPLE_MID}", 422, "invalid_field", "date"),
        (f"/api/settlement/statement?date={D}", 422, "invalid_field", "mid"),
        (f"/api/settlement/statement?mid=898440153119999&date={D}", 404, "not_found", None),
        ("/api/settlement/fee-income?date=2026-8-3", 422, "invalid_field", "date"),
        ("/api/settlement/fee-income", 422, "invalid_field", "date"),
    ],
)
def test_bad_input_names_the_field(api, url: str, status: int, code: str, field: str | None) -> None:  # type: ignore[no-untyped-def]
    client, _handle = api
    sign_in(client, "finance")
    response = client.get(url)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error.get("field") == field
    if field:
        assert error["message"].startswith(f"{field}: ")
