"""The pure rules of onboarding, with the exact message for each bad input: ID numbers (GB 11643), unified
social credit codes (GB 32100), mobile numbers, settlement cards, photos, fee plans, MID/TID formats, the
review workflow and the data documents."""

from __future__ import annotations

import datetime as dt

import pytest

from posgate.errors import ConfigError
from posgate.merchants.areas import parse_areas
from posgate.merchants.business import business_types, parse_business_types
from posgate.merchants.errors import FieldError, StateConflict, UploadTooLarge
from posgate.merchants.feeplan import DEFAULT_FEE_PLAN, fee_plan_from
from posgate.merchants.form import Route, check_mobile, check_settlement_card, validate_form
from posgate.merchants.idcard import check_applicant_age, parse_id_number
from posgate.merchants.identifiers import format_mid, mid_prefix
from posgate.merchants.images import MAX_BYTES, inspect_image
from posgate.merchants.keyblock import unwrap_tmk, wrap_tmk
from posgate.merchants.uscc import parse_uscc
from posgate.merchants.workflow import next_status
from posgate.tools.onboarding_data import id_number, photo

ROUTES = [Route("Demo Bank A", ("622999",), "debit"), Route("Demo Bank B", ("622888",), "credit")]
TODAY = dt.date(2026, 11, 26)


def message(call, *args):  # type: ignore[no-untyped-def]
    with pytest.raises(FieldError) as caught:
        call(*args)
    return str(caught.value)


def test_id_numbers() -> None:
    assert parse_id_number("11010519491231002x").value == "11010519491231002X"
    assert message(parse_id_number, "110105194912310021") == "id_number: check character is 1, expected X"
    assert message(parse_id_number, "11010519491331002X") == (
        "id_number: birth date (characters 7-14) is not a real date"
    )
    assert message(parse_id_number, "1101051949123100") == (
        "id_number: must be 17 digits and a check digit or X (18 characters)"
    )


@pytest.mark.parametrize(
    ("birth", "expected"),
    [
        (dt.date(2008, 11, 26), 18),
        (dt.date(1961, 11, 27), 64),
        (dt.date(1960, 11, 27), 65),
    ],
)
def test_ages_18_to_65_are_accepted(birth: dt.date, expected: int) -> None:
    assert check_applicant_age(parse_id_number(id_number(birth)), TODAY) == expected


def test_ages_outside_18_to_65_are_refused() -> None:
    young = parse_id_number(id_number(dt.date(2008, 11, 27)))
    old = parse_id_number(id_number(dt.date(1960, 11, 26)))
    assert message(check_applicant_age, young, TODAY) == "id_number: applicant is 17, must be at least 18"
    assert message(check_applicant_age, old, TODAY) == "id_number: applicant is 66, must be at most 65"


def test_unified_social_credit_codes() -> None:
    assert parse_uscc("91350100m000100y43") == "91350100M000100Y43"
    assert message(parse_uscc, "91350100M000100Y44") == "licence_number: check character is 4, expected 3"
    assert message(parse_uscc, "91350100M000100YO3") == (
        "licence_number: character 17 ('O') is not allowed (no I, O, S, V, Z)"
    )
    assert message(parse_uscc, "913501") == "licence_number: must be 18 characters, got 6"


def test_mobile_numbers() -> None:
    assert check_mobile("138 0013 8000") == "13800138000"
    assert message(check_mobile, "") == "mobile: is required"
    assert (
        message(check_mobile, "23800138000") == "mobile: must be 11 digits starting 13-19, like 13800138000"
    )


def test_settlement_cards() -> None:
    assert check_settlement_card("6229 9900 0000 0012", ROUTES).name == "Demo Bank A"
    assert message(check_settlement_card, "6228880000000016", ROUTES) == (
        "settlement_card: must be a debit card; BIN 622888 is a credit card of Demo Bank B"
    )
    assert message(check_settlement_card, "6229990000000013", ROUTES) == (
        "settlement_card: fails the Luhn check (mistyped number?)"
    )
    assert message(check_settlement_card, "4111111111111111", ROUTES) == (
        "settlement_card: BIN 411111 is not a known issuer"
    )
    assert message(check_settlement_card, "62299", ROUTES) == "settlement_card: must be 13 to 19 digits"


def test_a_valid_form_and_its_derived_values() -> None:
    app = validate_form(
        {
            "applicant_name": "  李  四 ",
            "id_number": id_number(),
            "mobile": "13900000000",
            "settlement_card": "6229990000000012",
            "settlement_card_holder": "李 四",
            "shop_name": "李记便利店",
            "address": "北京市朝阳区建国路 88 号",
            "business_type": "convenience",
        },
        ROUTES,
        TODAY,
    )
    assert (app.applicant_name, app.mcc, app.area_code, app.licence_number) == ("李 四", "5499", "1100", None)
    assert "6229990000000012" not in repr(app) and id_number() not in repr(app)


def test_photos() -> None:
    info = inspect_image(photo("PNG", 1), "storefront")
    assert (info.mime, info.ext, info.width, info.height) == ("image/png", "png", 96, 72)
    assert message(inspect_image, b"GIF89a" + bytes(2000), "storefront") == (
        "storefront: must be a JPEG or PNG image (content is neither)"
    )
    assert message(inspect_image, b"\xff\xd8\xff" + bytes(2000), "storefront") == (
        "storefront: is not a valid JPEG image (it does not parse)"
    )
    with pytest.raises(
        UploadTooLarge, match=r"interior: is 5242881 bytes, at most 5242880 \(5 MiB\) allowed"
    ):
        inspect_image(bytes(MAX_BYTES + 1), "interior")
    assert message(inspect_image, photo("JPEG", 2) + b"PK\x03\x04zip", "cashier") == (
        "cashier: has data after the end of the JPEG image"
    )


def test_fee_plans() -> None:
    assert fee_plan_from({}) == DEFAULT_FEE_PLAN
    assert (DEFAULT_FEE_PLAN.mdr_debit_ppm, DEFAULT_FEE_PLAN.mdr_debit_cap_fen) == (5000, 2000)
    assert message(fee_plan_from, {"mdr_debit_ppm": 0}) == (
        "mdr_debit_ppm: must be more than 0 and at most 30000 ppm, got 0"
    )
    assert (
        message(fee_plan_from, {"settlement_cycle": "D0"}) == "settlement_cycle: D0 needs d0_allowed = true"
    )
    assert message(fee_plan_from, {"d0_allowed": "yes"}) == "d0_allowed: must be true or false"


def test_mid_format_follows_the_demo_merchant() -> None:
    assert format_mid(mid_prefix("4401", "5311"), 1) == "898440153110001"
    with pytest.raises(ValueError, match="MID serial must be 1-9999"):
        format_mid(mid_prefix("4401", "5311"), 10_000)


def test_the_workflow_table() -> None:
    assert next_status(1, "more_info_needed", "resubmit") == "submitted"
    with pytest.raises(StateConflict, match="application 1 is approved; reject needs it under_review"):
        next_status(1, "approved", "reject")


def test_tr31_round_trip_and_a_wrong_ktk() -> None:
    ktk, tmk = (
        bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"),
        bytes.fromhex("404142434445464748494A4B4C4D4E4F"),
    )
    block = wrap_tmk(ktk, tmk)
    assert block.startswith("B0096K0TD00N0000") and unwrap_tmk(ktk, block) == tmk
    with pytest.raises(Exception, match=r"(?i)mac|verif"):
        unwrap_tmk(bytes.fromhex("11" * 16), block)


def test_data_documents_are_validated_at_load() -> None:
    assert len(business_types()) >= 10
    with pytest.raises(ConfigError, match="mcc"):
        parse_business_types('[[types]]\nkey = "x1"\nmcc = "54"\nen = "X"\nzh = "X"\n')
    with pytest.raises(ConfigError, match="appears twice"):
        parse_business_types('[[types]]\nkey = "xx"\nmcc = "5411"\nen = "X"\nzh = "X"\n' * 2)
    with pytest.raises(ConfigError, match="default"):
        parse_areas('default = "44"\nareas = []\n')
