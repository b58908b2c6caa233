"""The application form's fields and their rules, as a pure function of the submitted text and `today`.

Every refusal is a `FieldError` naming the field (the API answers 422). The settlement card's BIN is checked
against the issuer routes the caller passes in (name, BIN prefixes, kind): it must be a debit card.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from posgate.cards.pan import is_luhn_valid, mask_pan
from posgate.merchants.areas import area_code
from posgate.merchants.business import mcc_for
from posgate.merchants.errors import FieldError
from posgate.merchants.idcard import IdNumber, check_applicant_age, parse_id_number
from posgate.merchants.uscc import parse_uscc

TEXT_FIELDS = (
    "applicant_name",
    "id_number",
    "mobile",
    "settlement_card",
    "settlement_card_holder",
    "shop_name",
    "address",
    "business_type",
    "licence_number",
)
OPTIONAL_FIELDS = frozenset({"licence_number"})
_MOBILE = re.compile(r"1[3-9]\d{9}")
_NAME = re.compile(r"[^\W\d_]+(?:[ ·.'-][^\W\d_]+)*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Route:
    """An issuer as the BIN check needs it."""

    name: str
    bins: tuple[str, ...]
    kind: str


@dataclass(frozen=True)
class ValidApplication:
    applicant_name: str
    id_number: IdNumber
    age: int
    mobile: str
    settlement_card: str
    settlement_bank: str
    shop_name: str
    address: str
    area_code: str
    business_type: str
    mcc: str
    licence_number: str | None

    def __repr__(self) -> str:
        return (
            f"ValidApplication({self.applicant_name!r}, id={self.id_number.masked}, "
            f"card={mask_pan(self.settlement_card)}, shop={self.shop_name!r})"
        )


def _text(values: Mapping[str, str | None], field: str, min_len: int, max_len: int) -> str:
    value = (values.get(field) or "").strip()
    if not value:
        raise FieldError(field, "is required")
    if _CONTROL.search(value):
        raise FieldError(field, "must not contain control characters")
    if not min_len <= len(value) <= max_len:
        raise FieldError(field, f"must be {min_len} to {max_len} characters, got {len(value)}")
    return value


def normalize_name(name: str) -> str:
    """Names compare with spaces collapsed and case folded.

    >>> normalize_name("  Zhang   San ") == normalize_name("zhang san")
    True
    """
    return " ".join(name.split()).casefold()


def check_name(values: Mapping[str, str | None], field: str) -> str:
    name = " ".join(_text(values, field, 2, 40).split())
    if not _NAME.fullmatch(name):
        raise FieldError(field, "must be letters (any script), with single spaces, · . ' or - between parts")
    return name


def check_mobile(text: str | None, field: str = "mobile") -> str:
    """Mainland mobile number: 11 digits, 1 then 3-9.

    >>> check_mobile("13800138000")
    '13800138000'
    >>> check_mobile("12800138000")
    Traceback (most recent call last):
    ...
    posgate.merchants.errors.FieldError: mobile: must be 11 digits starting 13-19, like 13800138000
    """
    value = (text or "").strip().replace(" ", "").replace("-", "")
    if not value:
        raise FieldError(field, "is required")
    if not _MOBILE.fullmatch(value):
        raise FieldError(field, "must be 11 digits starting 13-19, like 13800138000")
    return value


def match_route(pan: str, routes: Iterable[Route]) -> Route | None:
    """The route with the longest BIN prefix of `pan`."""
    best: tuple[int, Route] | None = None
    for route in routes:
        for prefix in route.bins:
            if pan.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), route)
    return best[1] if best else None


def check_settlement_card(text: str | None, routes: Iterable[Route], field: str = "settlement_card") -> Route:
    """Luhn, then a known issuer BIN whose kind is debit; returns the issuer. The card number never
    appears in a message (only its 6-digit BIN)."""
    pan = (text or "").strip().replace(" ", "")
    if not pan:
        raise FieldError(field, "is required")
    if not (pan.isascii() and pan.isdigit() and 13 <= len(pan) <= 19):
        raise FieldError(field, "must be 13 to 19 digits")
    if not is_luhn_valid(pan):
        raise FieldError(field, "fails the Luhn check (mistyped number?)")
    route = match_route(pan, routes)
    if route is None:
        raise FieldError(field, f"BIN {pan[:6]} is not a known issuer")
    if route.kind != "debit":
        raise FieldError(field, f"must be a debit card; BIN {pan[:6]} is a {route.kind} card of {route.name}")
    return route


def validate_form(
    values: Mapping[str, str | None], routes: Iterable[Route], today: dt.date
) -> ValidApplication:
    """All field rules, in form order; the first broken one raises."""
    unknown = set(values) - set(TEXT_FIELDS)
    if unknown:
        raise FieldError(sorted(unknown)[0], "is not a field of the application")
    applicant = check_name(values, "applicant_name")
    id_number = parse_id_number(values.get("id_number") or "") if values.get("id_number") else None
    if id_number is None:
        raise FieldError("id_number", "is required")
    age = check_applicant_age(id_number, today)
    mobile = check_mobile(values.get("mobile"))
    card = (values.get("settlement_card") or "").strip().replace(" ", "")
    route = check_settlement_card(card, routes)
    holder = check_name(values, "settlement_card_holder")
    if normalize_name(holder) != normalize_name(applicant):
        raise FieldError("settlement_card_holder", "must be the applicant (the card holder's name differs)")
    shop_name = _text(values, "shop_name", 2, 60)
    address = _text(values, "address", 5, 200)
    business_type = _text(values, "business_type", 1, 32)
    mcc = mcc_for(business_type)
    licence_text = (values.get("licence_number") or "").strip()
    licence = parse_uscc(licence_text) if licence_text else None
    return ValidApplication(
        applicant_name=applicant,
        id_number=id_number,
        age=age,
        mobile=mobile,
        settlement_card=card,
        settlement_bank=route.name,
        shop_name=shop_name,
        address=address,
        area_code=area_code(address),
        business_type=business_type,
        mcc=mcc,
        licence_number=licence,
    )
