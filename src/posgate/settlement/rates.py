"""The clearing and settlement parameters as a data document: `rates.toml` (packaged) with a deployment's
overrides on top (`<data_dir>/settlement-rates.toml` or an explicit file), validated with pydantic at load.
An unknown key or a bad value fails at load time naming it (`ConfigError`)."""

from __future__ import annotations

import datetime as dt
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from posgate.errors import ConfigError

PACKAGED = "rates.toml"
OVERRIDE_NAME = "settlement-rates.toml"
PPM = 1_000_000


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _local_time(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value
    try:
        hours, minutes = str(value).split(":")
        return dt.time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"{value!r} is not a local time HH:MM") from None


class ClearingRates(_Doc):
    cut_off_local: dt.time = dt.time(23, 0)
    grace_s: int = Field(default=300, ge=0, le=86_400)
    chunk_size: int = Field(default=5000, ge=1, le=100_000)
    default_card_kind: str = Field(default="debit", pattern="^(debit|credit)$")

    _time = field_validator("cut_off_local", mode="before")(_local_time)

    @field_validator("cut_off_local")
    @classmethod
    def _not_midnight(cls, value: dt.time) -> dt.time:
        if value == dt.time(0, 0):
            raise ValueError("the cut-off must be after 00:00 (23:59 at the latest)")
        return value


class Interchange(_Doc):
    debit_ppm: int = Field(default=3500, ge=0, le=PPM)
    debit_cap_fen: int | None = Field(default=1300, ge=0)
    credit_ppm: int = Field(default=4500, ge=0, le=PPM)
    credit_cap_fen: int | None = Field(default=None, ge=0)


class Network(_Doc):
    acquirer_ppm: int = Field(default=325, ge=0, le=PPM)
    acquirer_cap_fen: int | None = Field(default=325, ge=0)
    issuer_ppm: int = Field(default=325, ge=0, le=PPM)
    issuer_cap_fen: int | None = Field(default=325, ge=0)


class DefaultFeePlan(_Doc):
    debit_ppm: int = Field(default=5000, ge=0, le=PPM)
    debit_cap_fen: int | None = Field(default=None, ge=0)
    credit_ppm: int = Field(default=6000, ge=0, le=PPM)
    wallet_ppm: int = Field(default=3800, ge=0, le=PPM)


class WalletRates(_Doc):
    """What each wallet provider charges us (its fee), per payment, rounded half-up to the fen; a refund
    gives back the fee of the refunded part. Reconciliation checks each bill line's fee against it."""

    provider_fee_ppm: dict[str, int] = Field(
        default_factory=lambda: {"wechat": 6000, "alipay": 6000, "unionpay": 3800}
    )

    @model_validator(mode="after")
    def _known(self) -> WalletRates:
        for provider, ppm in self.provider_fee_ppm.items():
            if provider not in ("wechat", "alipay", "unionpay"):
                raise ValueError(f"provider_fee_ppm.{provider}: not a wallet provider")
            if not 0 <= ppm < PPM:
                raise ValueError(f"provider_fee_ppm.{provider} must be 0 to {PPM - 1}")
        return self


class D0Rates(_Doc):
    window_start_local: dt.time = dt.time(9, 0)
    window_end_local: dt.time = dt.time(22, 0)
    min_fen: int = Field(default=10000, ge=1)
    max_fen: int = Field(default=5_000_000, ge=1)
    daily_quota_fen: int = Field(default=20_000_000, ge=0)
    surcharge_ppm: int = Field(default=500, ge=0, lt=PPM)
    quota_by_mid: dict[str, int] = Field(default_factory=dict)

    _times = field_validator("window_start_local", "window_end_local", mode="before")(_local_time)

    @model_validator(mode="after")
    def _consistent(self) -> D0Rates:
        if self.window_end_local <= self.window_start_local:
            raise ValueError("window_end_local must be after window_start_local")
        if self.max_fen < self.min_fen:
            raise ValueError("max_fen must be at least min_fen")
        for mid, quota in self.quota_by_mid.items():
            if quota < 0:
                raise ValueError(f"quota_by_mid.{mid} must be >= 0")
        return self

    def quota_fen(self, mid: str) -> int:
        return self.quota_by_mid.get(mid, self.daily_quota_fen)


class Rates(_Doc):
    """Every parameter of clearing and settlement (see `rates.toml` for the meaning of each)."""

    currency: str = Field(default="156", pattern=r"^\d{3}$")
    clearing: ClearingRates = ClearingRates()
    interchange: Interchange = Interchange()
    network: Network = Network()
    default_fee_plan: DefaultFeePlan = DefaultFeePlan()
    d0: D0Rates = D0Rates()
    wallets: WalletRates = WalletRates()


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_rates(document: dict[str, Any], source: str = "rates") -> Rates:
    """Validate a rates document; `ConfigError` names the first bad key.

    >>> parse_rates({"clearing": {"cut_off_local": "22:30"}}).clearing.cut_off_local
    datetime.time(22, 30)
    >>> parse_rates({"interchange": {"debit_pmm": 1}})
    Traceback (most recent call last):
    posgate.errors.ConfigError: rates: interchange.debit_pmm: Extra inputs are not permitted
    """
    try:
        return Rates.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "(document)"
        raise ConfigError(f"{source}: {where}: {error['msg']}") from None


def packaged_document() -> dict[str, Any]:
    return tomllib.loads(files("posgate.settlement").joinpath(PACKAGED).read_text(encoding="utf-8"))


def load_rates(override: Path | None = None, data_dir: Path | None = None) -> Rates:
    """The packaged rates, with `override` (else `<data_dir>/settlement-rates.toml` when present) on top."""
    document = packaged_document()
    source = "rates.toml"
    path = override
    if path is None and data_dir is not None and (data_dir / OVERRIDE_NAME).is_file():
        path = data_dir / OVERRIDE_NAME
    if path is not None:
        try:
            extra = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"settlement rates {path}: {exc}") from None
        document = _merge(document, extra)
        source = str(path)
    return parse_rates(document, source)
