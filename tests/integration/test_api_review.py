"""Review, approval, provisioning, TMK delivery and lifecycle through the API; the same story also runs on
PostgreSQL (`database_url` parametrizes SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from posgate.api.app import create_app
from posgate.bootstrap.store import open_store
from posgate.config import Settings
from posgate.merchants.keyblock import unwrap_tmk
from posgate.merchants.lifecycle import complete_test_swipe
from posgate.security.keys import kcv
from posgate.store.keys import get_keys
from posgate.store.models import Merchant, Terminal
from posgate.store.models_onboarding import AuditEvent
from posgate.store.runtime import StoreHandle
from posgate.tools.onboarding_data import form_values, photo_files, sign_in


def make_api(tmp_path: Path, database_url: str | None = None) -> tuple[TestClient, StoreHandle]:
    settings = Settings(data_dir=tmp_path / "data", env="test", database_url=database_url)
    handle = open_store(settings)
    return TestClient(create_app(handle, settings)), handle


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, StoreHandle]]:
    client, handle = make_api(tmp_path)
    with client:
        yield client, handle
    handle.store.close()


@pytest.fixture
def api_any_db(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, StoreHandle]]:
    client, handle = make_api(tmp_path, database_url)
    with client:
        yield client, handle
    handle.store.close()


def file_application(client: TestClient, seed: int = 0, **overrides: str) -> int:
    headers = sign_in(client, "operator")
    response = client.post(
        "/api/applications", data=form_values(**overrides), files=photo_files(seed), headers=headers
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def counts(handle: StoreHandle) -> tuple[int, int]:
    return handle.store.transact(
        lambda s: (s.scalar(select(func.count(Merchant.id))), s.scalar(select(func.count(Terminal.id))))
    )


def test_the_whole_review_and_go_live_story(api_any_db) -> None:  # type: ignore[no-untyped-def]
    client, handle = api_any_db
    app_id = file_application(client)
    reviewer = sign_in(client, "reviewer")
    started = client.post(f"/api/applications/{app_id}/start-review", headers=reviewer)
    assert started.status_code == 200 and started.json()["status"] == "under_review"
    approved = client.post(
        f"/api/applications/{app_id}/approve",
        json={"mdr_debit_ppm": 3800, "mdr_debit_cap_fen": 1500, "terminals": 2},
        headers=reviewer,
    )
    assert approved.status_code == 200, approved.text
    mid = approved.json()["mid"]
    assert mid == "898440158120001"  # 898 + Guangzhou 4401 + restaurant 5812 + serial 0001
    merchant = client.get(f"/api/merchants/{mid}").json()
    assert merchant["status"] == "testing"
    assert merchant["fee_plan"] == {
        "mdr_debit_ppm": 3800,
        "mdr_debit_cap_fen": 1500,
        "mdr_credit_ppm": 6000,
        "mdr_wallet_ppm": 3800,
        "settlement_cycle": "T+1",
        "d0_allowed": False,
    }
    subs = merchant["wallet_sub_merchants"]  # allocated at approval, in the providers' shapes
    assert sorted(subs) == ["alipay", "unionpay", "wechat"] and subs["unionpay"] == mid
    assert re.fullmatch(r"16\d{8}", subs["wechat"]) and re.fullmatch(r"2088\d{12}", subs["alipay"])
    tids = [t["tid"] for t in merchant["terminals"]]
    assert tids == ["10000002", "10000003"]
    assert all(t["status"] == "testing" for t in merchant["terminals"])
    # each TMK is sealed where the host's sign-in reads it, and its KCV is shown
    tmk = handle.store.transact(lambda s: get_keys(s, handle.vault, "terminal", "10000002"))["TMK"]
    assert merchant["terminals"][0]["tmk_kcv"] == kcv(tmk)
    # TR-31 delivery: only the key block and the KCVs; the KTK opens it to the same TMK
    export = client.post("/api/terminals/10000002/tmk/tr31", headers=reviewer)
    assert export.status_code == 200, export.text
    body = export.json()
    assert set(body) == {"tid", "key_block", "tmk_kcv", "ktk_kcv"}
    assert body["key_block"].startswith("B0096K0TD00N0000")
    assert tmk.hex().upper() not in export.text and tmk.hex() not in export.text
    ktk = handle.store.transact(lambda s: get_keys(s, handle.vault, "acquirer", "KTK"))["KTK"]
    assert unwrap_tmk(ktk, body["key_block"]) == tmk
    assert body["ktk_kcv"] == kcv(ktk) == client.get("/api/keys/ktk", headers=reviewer).json()["kcv"]
    # the host's test swipe makes the terminal and the merchant live
    handle.store.transact(lambda s: complete_test_swipe(s, "10000002"))
    merchant = client.get(f"/api/merchants/{mid}").json()
    assert merchant["status"] == "live" and merchant["live_at"]
    assert [t["status"] for t in merchant["terminals"]] == ["live", "testing"]
    history = client.get(f"/api/applications/{app_id}").json()["history"]
    assert [(h["actor"], h["action"]) for h in history] == [
        ("operator", "submit"),
        ("reviewer", "start_review"),
        ("reviewer", "approve"),
    ]
    terminal_history = client.get("/api/terminals/10000002").json()["history"]
    assert terminal_history[-1]["actor"] == "host" and terminal_history[-1]["action"] == "test_swipe_passed"


def test_a_second_merchant_of_the_same_kind_and_place_gets_the_next_serial(api) -> None:  # type: ignore[no-untyped-def]
    client, _handle = api
    mids = []
    for n in range(2):
        app_id = file_application(client, seed=n, shop_name=f"Noodles {n}")
        reviewer = sign_in(client, "reviewer")
        client.post(f"/api/applications/{app_id}/start-review", headers=reviewer)
        mids.append(client.post(f"/api/applications/{app_id}/approve", headers=reviewer).json()["mid"])
    assert mids == ["898440158120001", "898440158120002"]


def test_reject_and_more_info_need_a_reason_and_are_audited(api) -> None:  # type: ignore[no-untyped-def]
    client, handle = api
    app_id = file_application(client)
    reviewer = sign_in(client, "reviewer")
    client.post(f"/api/applications/{app_id}/start-review", headers=reviewer)
    missing = client.post(f"/api/applications/{app_id}/reject", json={"reason": "  "}, headers=reviewer)
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "reason"
    more = client.post(
        f"/api/applications/{app_id}/request-more-info",
        json={"reason": "storefront photo is blurred"},
        headers=reviewer,
    )
    assert more.json()["status"] == "more_info_needed"
    assert more.json()["decision_reason"] == "storefront photo is blurred"
    # the operator resubmits with a new storefront photo: back to submitted, checks run again
    operator = sign_in(client, "operator")
    files = {"storefront": photo_files(7)["storefront"]}
    resubmitted = client.post(f"/api/applications/{app_id}/resubmit", files=files, headers=operator)
    assert resubmitted.status_code == 200, resubmitted.text
    assert resubmitted.json()["status"] == "submitted"
    storefront = next(u for u in resubmitted.json()["uploads"] if u["kind"] == "storefront")
    assert client.get(storefront["url"]).content == photo_files(7)["storefront"][1]
    reviewer = sign_in(client, "reviewer")
    client.post(f"/api/applications/{app_id}/start-review", headers=reviewer)
    rejected = client.post(
        f"/api/applications/{app_id}/reject", json={"reason": "fake shop"}, headers=reviewer
    )
    assert rejected.json()["status"] == "rejected"
    events = handle.store.transact(
        lambda s: [
            (e.actor, e.action)
            for e in s.scalars(select(AuditEvent).where(AuditEvent.subject_kind == "application"))
        ]
    )
    assert events == [
        ("operator", "submit"),
        ("reviewer", "start_review"),
        ("reviewer", "request_more_info"),
        ("operator", "resubmit"),
        ("reviewer", "start_review"),
        ("reviewer", "reject"),
    ]


def test_state_conflicts_answer_409_and_change_nothing(api) -> None:  # type: ignore[no-untyped-def]
    client, handle = api
    app_id = file_application(client)
    reviewer = sign_in(client, "reviewer")
    early = client.post(f"/api/applications/{app_id}/approve", headers=reviewer)
    assert early.status_code == 409
    assert early.json()["error"] == {
        "code": "state_conflict",
        "message": f"application {app_id} is submitted; approve needs it under_review",
    }
    client.post(f"/api/applications/{app_id}/start-review", headers=reviewer)
    client.post(f"/api/applications/{app_id}/reject", json={"reason": "no"}, headers=reviewer)
    before = counts(handle)
    late = client.post(f"/api/applications/{app_id}/approve", headers=reviewer)
    assert late.status_code == 409 and "is rejected" in late.json()["error"]["message"]
    assert counts(handle) == before
    resubmit = client.post(
        f"/api/applications/{app_id}/resubmit", data={}, headers=sign_in(client, "operator")
    )
    assert resubmit.status_code == 409


BAD_PLANS = [
    ({"mdr_debit_ppm": 0}, "mdr_debit_ppm"),
    ({"mdr_debit_ppm": 30001}, "mdr_debit_ppm"),
    ({"mdr_credit_ppm": -5}, "mdr_credit_ppm"),
    ({"mdr_debit_cap_fen": 0}, "mdr_debit_cap_fen"),
    ({"settlement_cycle": "T+7"}, "settlement_cycle"),
    ({"settlement_cycle": "D0"}, "settlement_cycle"),
    ({"mdr_debit_ppm": "lots"}, "mdr_debit_ppm"),
    ({"terminals": 0}, "terminals"),
    ({"terminals": 21}, "terminals"),
    ({"surprise": 1}, "surprise"),
]


@pytest.mark.parametrize(("plan", "field"), BAD_PLANS)
def test_a_bad_fee_plan_is_refused_naming_the_field_and_nothing_is_created(api, plan, field) -> None:  # type: ignore[no-untyped-def]
    client, handle = api
    app_id = file_application(client)
    reviewer = sign_in(client, "reviewer")
    client.post(f"/api/applications/{app_id}/start-review", headers=reviewer)
    before = counts(handle)
    response = client.post(f"/api/applications/{app_id}/approve", json=plan, headers=reviewer)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert response.json()["error"]["message"].startswith(f"{field}: ")
    assert counts(handle) == before
    assert client.get(f"/api/applications/{app_id}").json()["status"] == "under_review"


def test_d0_can_be_granted_at_approval(api) -> None:  # type: ignore[no-untyped-def]
    client, _handle = api
    app_id = file_application(client)
    reviewer = sign_in(client, "reviewer")
    client.post(f"/api/applications/{app_id}/start-review", headers=reviewer)
    plan = {"d0_allowed": True, "settlement_cycle": "D0", "mdr_debit_cap_fen": None}
    mid = client.post(f"/api/applications/{app_id}/approve", json=plan, headers=reviewer).json()["mid"]
    fee_plan = client.get(f"/api/merchants/{mid}").json()["fee_plan"]
    assert fee_plan["settlement_cycle"] == "D0" and fee_plan["d0_allowed"] is True
    assert fee_plan["mdr_debit_cap_fen"] is None


def approved_merchant(client: TestClient) -> str:
    app_id = file_application(client)
    reviewer = sign_in(client, "reviewer")
    client.post(f"/api/applications/{app_id}/start-review", headers=reviewer)
    return str(client.post(f"/api/applications/{app_id}/approve", headers=reviewer).json()["mid"])


def test_merchant_and_terminal_lifecycle(api_any_db) -> None:  # type: ignore[no-untyped-def]
    client, handle = api_any_db
    mid = approved_merchant(client)
    risk = sign_in(client, "risk")
    assert (
        client.post(f"/api/merchants/{mid}/suspend", json={"reason": "chargebacks"}, headers=risk).json()[
            "status"
        ]
        == "suspended"
    )
    again = client.post(f"/api/merchants/{mid}/suspend", json={"reason": "x"}, headers=risk)
    assert again.status_code == 409
    # a terminal of a suspended merchant cannot be resumed on its own
    client.post("/api/terminals/10000002/suspend", json={"reason": "lost"}, headers=risk)
    blocked = client.post("/api/terminals/10000002/resume", headers=risk)
    assert blocked.status_code == 409 and "resume the merchant first" in blocked.json()["error"]["message"]
    # resume restores the status it had (testing: the test swipe is still due)
    assert client.post(f"/api/merchants/{mid}/resume", headers=risk).json()["status"] == "testing"
    assert client.post("/api/terminals/10000002/resume", headers=risk).json()["status"] == "testing"
    reviewer = sign_in(client, "reviewer")
    more = client.post(f"/api/merchants/{mid}/terminals", json={"count": 1}, headers=reviewer)
    assert more.status_code == 201 and more.json()["tids"] == ["10000003"]
    bad_mac = client.post(
        f"/api/merchants/{mid}/terminals", json={"count": 1, "mac_algorithm": "des"}, headers=reviewer
    )
    assert bad_mac.status_code == 422
    assert bad_mac.json()["error"]["message"] == "mac_algorithm: must be cup_ecb or x919, got 'des'"
    legacy = client.post(
        f"/api/merchants/{mid}/terminals", json={"count": 1, "mac_algorithm": "cup_ecb"}, headers=reviewer
    )
    assert legacy.status_code == 201 and legacy.json()["tids"] == ["10000004"]
    macs = {
        t["tid"]: t["mac_algorithm"]
        for t in client.get(f"/api/merchants/{mid}", headers=reviewer).json()["terminals"]
    }
    assert macs == {"10000002": "x919", "10000003": "x919", "10000004": "cup_ecb"}
    risk = sign_in(client, "risk")
    closed = client.post(f"/api/merchants/{mid}/close", json={"reason": "shop closed"}, headers=risk).json()
    assert closed["status"] == "closed"
    assert {t["status"] for t in closed["terminals"]} == {"closed"}
    assert client.post(f"/api/merchants/{mid}/resume", headers=risk).status_code == 409
    reviewer = sign_in(client, "reviewer")
    assert (
        client.post(f"/api/merchants/{mid}/terminals", json={"count": 1}, headers=reviewer).status_code == 409
    )
    assert client.post("/api/terminals/10000002/tmk/tr31", headers=reviewer).status_code == 409
    actions = handle.store.transact(
        lambda s: [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.subject_ref == mid))]
    )
    assert actions == ["create", "suspend", "resume", "close"]


def test_lifecycle_needs_the_risk_role_and_a_reason(api) -> None:  # type: ignore[no-untyped-def]
    client, _handle = api
    mid = approved_merchant(client)
    reviewer = sign_in(client, "reviewer")
    assert (
        client.post(f"/api/merchants/{mid}/suspend", json={"reason": "x"}, headers=reviewer).status_code
        == 403
    )
    risk = sign_in(client, "risk")
    response = client.post(f"/api/merchants/{mid}/suspend", json={"reason": ""}, headers=risk)
    assert response.status_code == 422 and response.json()["error"]["field"] == "reason"
    assert (
        client.post("/api/merchants/898000000000000/suspend", json={"reason": "x"}, headers=risk).status_code
        == 404
    )


def test_complete_test_swipe_is_idempotent_and_ignores_suspended_terminals(api) -> None:  # type: ignore[no-untyped-def]
    client, handle = api
    mid = approved_merchant(client)
    risk = sign_in(client, "risk")
    client.post("/api/terminals/10000002/suspend", json={"reason": "check"}, headers=risk)
    handle.store.transact(lambda s: complete_test_swipe(s, "10000002"))
    assert client.get(f"/api/merchants/{mid}").json()["status"] == "testing"
    client.post("/api/terminals/10000002/resume", headers=risk)
    handle.store.transact(lambda s: complete_test_swipe(s, "10000002"))
    handle.store.transact(lambda s: complete_test_swipe(s, "10000002"))
    handle.store.transact(lambda s: complete_test_swipe(s, "99999999"))
    assert client.get(f"/api/merchants/{mid}").json()["status"] == "live"
    go_live = handle.store.transact(
        lambda s: s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "go_live"))
    )
    assert go_live == 1
