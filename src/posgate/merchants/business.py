"""Business types and their merchant category codes: a data document (`data/business_types.toml`),
validated at load; an unknown key fails naming the field."""

from __future__ import annotations

import functools
import tomllib
from importlib import resources

from pydantic import BaseModel, Field, ValidationError, field_validator

from posgate.errors import ConfigError
from posgate.merchants.errors import FieldError


class BusinessType(BaseModel):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")
    mcc: str = Field(pattern=r"^\d{4}$")
    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)


class BusinessTypes(BaseModel):
    types: list[BusinessType] = Field(min_length=1)

    @field_validator("types")
    @classmethod
    def _unique_keys(cls, types: list[BusinessType]) -> list[BusinessType]:
        seen: set[str] = set()
        for entry in types:
            if entry.key in seen:
                raise ValueError(f"business type {entry.key!r} appears twice")
            seen.add(entry.key)
        return types


def parse_business_types(text: str) -> dict[str, BusinessType]:
    """Parse and validate a business-type document; `ConfigError` naming the bad entry."""
    try:
        document = BusinessTypes.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigError(f"business types: {exc}") from None
    return {entry.key: entry for entry in document.types}


@functools.cache
def business_types() -> dict[str, BusinessType]:
    """The packaged table, by key.

    >>> business_types()["department_store"].mcc
    '5311'
    """
    text = resources.files("posgate.merchants.data").joinpath("business_types.toml").read_text("utf-8")
    return parse_business_types(text)


def mcc_for(business_type: str, field: str = "business_type") -> str:
    """The MCC of a business type; `FieldError` naming the field and the allowed keys otherwise."""
    entry = business_types().get(business_type.strip())
    if entry is None:
        allowed = ", ".join(sorted(business_types()))
        raise FieldError(field, f"unknown business type {business_type!r}; one of {allowed}")
    return entry.mcc
