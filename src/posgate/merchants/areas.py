"""Area codes for MIDs: the address's city or province → 4 digits (`data/areas.toml`, validated at load).

>>> area_code("广东省广州市天河区体育西路 1 号"), area_code("88 Nanjing Road, Shanghai")
('4401', '3100')
>>> area_code("somewhere")
'4401'

"""

from __future__ import annotations

import functools
import tomllib
from importlib import resources

from pydantic import BaseModel, Field, ValidationError

from posgate.errors import ConfigError


class Area(BaseModel):
    code: str = Field(pattern=r"^\d{4}$")
    names: list[str] = Field(min_length=1)


class AreaTable(BaseModel):
    default: str = Field(pattern=r"^\d{4}$")
    areas: list[Area]


def parse_areas(text: str) -> AreaTable:
    try:
        return AreaTable.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigError(f"areas: {exc}") from None


@functools.cache
def area_table() -> AreaTable:
    return parse_areas(resources.files("posgate.merchants.data").joinpath("areas.toml").read_text("utf-8"))


def area_code(address: str, table: AreaTable | None = None) -> str:
    """The area code of the first area (in document order) named in `address`; the default otherwise.
    Matching is case-insensitive for Latin names."""
    table = table or area_table()
    folded = address.casefold()
    for area in table.areas:
        if any(name.casefold() in folded for name in area.names):
            return area.code
    return table.default
