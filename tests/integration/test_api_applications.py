"""Filing applications through the API: every rule with good and bad input. A bad input answers the exact
status with a message naming the field, and stores nothing (no application row, no upload row, no file)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from posgate.api.app import create_app
from posgate.bootstrap.store import open_store
from posgate.config import Settings
from posgate.merchants.images import MAX_BYTES
from posgate.store.models_onboarding import Application, ApplicationUpload, AuditEvent
from posgate.store.runtime import StoreHandle
from posgate.tools.onboarding_data import (
    DEMO_CREDIT_CARD,
    form_values,
    id_number,
    photo,
    photo_files,
    sign_in,
)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, StoreHandle, Path]]:
    settings = Settings(data_dir=tmp_path / "data", env="test")
    handle = open_store(settings)
    with TestClient(create_app(handle, settings)) as client:
        yield client, handle, settings.data_dir / "uploads"
    handle.store.close()


def stored(handle: StoreHandle, uploads: Path) -> tuple[int, int, int]:
    apps = handle.store.transact(lambda s: s.scalar(select(func.count(Application.id))))
    rows = handle.store.transact(lambda s: s.scalar(select(func.count(ApplicationUpload.id))))
    files = len([p for p in uploads.rglob("*") if p.is_file()]) if uploads.exists() else 0
    return apps, rows, files


def submit(client: TestClient, headers: dict[str, str], files=None, **overrides: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/applications",
        data=form_values(**overrides),
        files=photo_files() if files is None else files,
        headers=headers,
    )


def test_a_valid_application_is_stored_with_its_checks_and_photos(api) -> None:  # type: ignore[no-untyped-def]
    client, handle, uploads = api
    headers = sign_in(client, "operator")
    response = submit(client, headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "submitted"
    assert body["id_number_masked"] == "440106********123" + body["id_number_masked"][-1]
    assert body["settlement_card_masked"] == "622999******0012"
    assert body["settlement_bank"] == "Demo Bank A"
    assert body["mcc"] == "5812" and body["area_code"] == "4401"
    assert {c["name"]: c["outcome"] for c in body["checks"]}["merchants_per_id"] == "pass"
    assert len(body["uploads"]) == 5
    assert stored(handle, uploads) == (1, 5, 5)
    assert body["history"][0]["action"] == "submit" and body["history"][0]["actor"] == "operator"
    # the clear ID number and card number are not in the answer, nor in the database as text
    assert id_number() not in response.text and "6229990000000012" not in response.text
    photo_response = client.get(body["uploads"][0]["url"])
    assert photo_response.status_code == 200
    assert photo_response.headers["content-type"] == "image/jpeg"
    assert photo_response.headers["x-content-type-options"] == "nosniff"
    assert photo_response.content == photo_files()["id_card_front"][1]
    path = uploads / body["uploads"][0]["sha256"][:2] / f"{body['uploads'][0]['sha256']}.jpg"
    assert path.exists()


def test_without_a_licence_the_check_warns(api) -> None:  # type: ignore[no-untyped-def]
    client, _handle, _uploads = api
    response = submit(client, sign_in(client, "operator"), licence_number="")
    assert response.status_code == 201
    checks = {c["name"]: c for c in response.json()["checks"]}
    assert checks["licence_number"]["outcome"] == "warn"


def _seventeen_years_ago() -> dt.date:
    """A birth date 17 years before today (on 29 February: the 28th), any day of the year."""
    today = dt.date.today()
    return today.replace(year=today.year - 17, day=28 if (today.month, today.day) == (2, 29) else today.day)


BAD_FIELDS = [
    ({"applicant_name": ""}, "applicant_name", "is required"),
    ({"applicant_name": "Zhang3"}, "applicant_name", "must be letters"),
    ({"id_number": "44010619900307123"}, "id_number", "18 characters"),
    (
        {"id_number": id_number()[:-1] + ("0" if id_number()[-1] != "0" else "1")},
        "id_number",
        "check character",
    ),
    ({"id_number": "440106199002301234"}, "id_number", "not a real date"),
    (
        {"id_number": id_number(_seventeen_years_ago())},
        "id_number",
        "at least 18",
    ),
    ({"id_number": id_number(dt.date(1940, 1, 1))}, "id_number", "at most 65"),
    ({"mobile": "12800138000"}, "mobile", "11 digits"),
    ({"mobile": "1380013800"}, "mobile", "11 digits"),
    ({"settlement_card": "6229990000000013"}, "settlement_card", "Luhn"),
    ({"settlement_card": DEMO_CREDIT_CARD}, "settlement_card", "must be a debit card"),
    ({"settlement_card": "4111111111111111"}, "settlement_card", "not a known issuer"),
    ({"settlement_card_holder": "Li Si"}, "settlement_card_holder", "must be the applicant"),
    ({"shop_name": "X"}, "shop_name", "2 to 60"),
    ({"address": "abc"}, "address", "5 to 200"),
    ({"business_type": "casino"}, "business_type", "unknown business type"),
    ({"licence_number": "91350100M000100Y44"}, "licence_number", "check character is 4, expected 3"),
    ({"licence_number": "91350100M000100YI3"}, "licence_number", "is not allowed"),
    ({"licence_number": "9135"}, "licence_number", "18 characters"),
]


@pytest.mark.parametrize(("overrides", "field", "problem"), BAD_FIELDS)
def test_each_bad_field_is_refused_with_422_naming_it_and_nothing_is_stored(  # type: ignore[no-untyped-def]
    api, overrides, field, problem
) -> None:
    client, handle, uploads = api
    response = submit(client, sign_in(client, "operator"), **overrides)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_field"
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ") and problem in error["message"], error["message"]
    assert stored(handle, uploads) == (0, 0, 0)
    assert (
        handle.store.transact(
            lambda s: s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "submit"))
        )
        == 0
    )


def _elf() -> bytes:
    return b"\x7fELF" + bytes(2000)


def _polyglot() -> bytes:
    return photo("JPEG", 3) + b"MZ" + bytes(64)


def _script_in_comment() -> bytes:
    data = photo("JPEG", 4)
    comment = b"<?php system($_GET['c']); ?>"
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return data[:2] + segment + data[2:]


BAD_PHOTOS = [
    ("storefront", ("shop.exe", b"MZ" + bytes(4000), "image/jpeg"), 422, "must be a JPEG or PNG"),
    ("storefront", ("shop.jpg", _elf(), "image/jpeg"), 422, "must be a JPEG or PNG"),
    ("interior", ("in.jpg", _polyglot(), "image/jpeg"), 422, "data after the end of the JPEG"),
    (
        "interior",
        ("in.png", photo("PNG", 5) + b"#!/bin/sh\n", "image/png"),
        422,
        "data after the end of the PNG",
    ),
    ("cashier", ("c.jpg", _script_in_comment(), "image/jpeg"), 422, "script or executable"),
    ("cashier", ("c.jpg", photo("JPEG", 6)[:-400], "image/jpeg"), 422, "cashier:"),
    ("id_card_front", ("tiny.png", photo("PNG", 7, (8, 8))[:900], "image/png"), 422, "at least 1024"),
    ("id_card_back", ("big.jpg", b"\xff\xd8\xff" + bytes(MAX_BYTES), "image/jpeg"), 413, "5 MiB"),
]


@pytest.mark.parametrize(("field", "upload", "status", "problem"), BAD_PHOTOS)
def test_each_bad_photo_is_refused_naming_the_upload_field_and_nothing_is_stored(  # type: ignore[no-untyped-def]
    api, field, upload, status, problem
) -> None:
    client, handle, uploads = api
    files = photo_files()
    files[field] = upload
    response = submit(client, sign_in(client, "operator"), files=files)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ") and problem in error["message"], error["message"]
    assert stored(handle, uploads) == (0, 0, 0)


def test_a_missing_photo_is_refused(api) -> None:  # type: ignore[no-untyped-def]
    client, handle, uploads = api
    files = photo_files()
    del files["cashier"]
    response = submit(client, sign_in(client, "operator"), files=files)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "cashier"
    assert stored(handle, uploads) == (0, 0, 0)


def test_at_most_three_merchants_per_id_number(api) -> None:  # type: ignore[no-untyped-def]
    client, handle, uploads = api
    headers = sign_in(client, "operator")
    for n in range(3):
        assert submit(client, headers, files=photo_files(n), shop_name=f"Shop {n}").status_code == 201
    before = stored(handle, uploads)
    response = submit(client, headers, files=photo_files(9), shop_name="Shop 4")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "id_number" and "at most 3 per ID number" in error["message"]
    assert stored(handle, uploads) == before
    # another person is not affected
    other = submit(client, headers, files=photo_files(9), id_number=id_number(sequence="456"))
    assert other.status_code == 201


def test_a_failed_unit_of_work_removes_the_files_it_wrote(api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client, handle, uploads = api
    headers = sign_in(client, "operator")
    from posgate.merchants import applications

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("database went away")

    monkeypatch.setattr(applications, "audit", boom)
    with pytest.raises(RuntimeError):
        submit(client, headers)
    assert stored(handle, uploads) == (0, 0, 0)


def test_only_operators_and_admins_file_applications(api) -> None:  # type: ignore[no-untyped-def]
    client, handle, uploads = api
    assert submit(client, {}).status_code == 401
    for role in ("reviewer", "risk", "finance"):
        response = submit(client, sign_in(client, role))
        assert response.status_code == 403, role
        assert response.json()["error"]["code"] == "forbidden"
    assert submit(client, sign_in(client, "admin")).status_code == 201
    assert stored(handle, uploads)[0] == 1


def test_list_and_filter_applications(api) -> None:  # type: ignore[no-untyped-def]
    client, _handle, _uploads = api
    headers = sign_in(client, "operator")
    submit(client, headers)
    assert [a["status"] for a in client.get("/api/applications").json()] == ["submitted"]
    assert client.get("/api/applications?status=approved").json() == []
    bad = client.get("/api/applications?status=done")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "status"
    assert client.get("/api/applications/999").status_code == 404
