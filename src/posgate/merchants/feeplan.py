"""A merchant's fee plan (MDR): debit rate and cap, credit rate, QR wallet rate, settlement cycle and whether
D0 is allowed. Rates are integer parts per million of the amount (0.50 % = 5000 ppm); caps are integer fen.
Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from posgate.merchants.errors import FieldError

MAX_PPM = 30_000  # 3.00 %
MAX_CAP_FEN = 100_000_000  # 1,000,000.00 yuan: a cap above any single card payment
CYCLES = ("T+1", "D0")


@dataclass(frozen=True)
class FeePlan:
    mdr_debit_ppm: int = 5000
    mdr_debit_cap_fen: int | None = 2000
    mdr_credit_ppm: int = 6000
    settlement_cycle: str = "T+1"
    d0_allowed: bool = False
    mdr_wallet_ppm: int = 3800  # QR wallet payments (issue 12): 0.38 %


DEFAULT_FEE_PLAN = FeePlan()


def _ppm(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(field, "must be an integer number of parts per million (0.50 % = 5000)")
    if not 0 < value <= MAX_PPM:
        raise FieldError(field, f"must be more than 0 and at most {MAX_PPM} ppm, got {value}")
    return value


def fee_plan_from(overrides: Mapping[str, Any], base: FeePlan = DEFAULT_FEE_PLAN) -> FeePlan:
    """The default plan with the reviewer's overrides; `FieldError` naming the field.

    >>> fee_plan_from({"mdr_debit_ppm": 3800, "d0_allowed": True, "settlement_cycle": "D0"}).mdr_debit_ppm
    3800
    >>> fee_plan_from({"mdr_credit_ppm": 40000})
    Traceback (most recent call last):
    ...
    posgate.merchants.errors.FieldError: mdr_credit_ppm: must be more than 0 and at most 30000 ppm, got 40000
    """
    values = {
        "mdr_debit_ppm": base.mdr_debit_ppm,
        "mdr_debit_cap_fen": base.mdr_debit_cap_fen,
        "mdr_credit_ppm": base.mdr_credit_ppm,
        "settlement_cycle": base.settlement_cycle,
        "d0_allowed": base.d0_allowed,
        "mdr_wallet_ppm": base.mdr_wallet_ppm,
    }
    for key, value in overrides.items():
        if value is None and key != "mdr_debit_cap_fen":
            continue
        if key not in values:
            raise FieldError(key, "is not a fee plan field")
        values[key] = value
    debit = _ppm(values["mdr_debit_ppm"], "mdr_debit_ppm")
    credit = _ppm(values["mdr_credit_ppm"], "mdr_credit_ppm")
    wallet = _ppm(values["mdr_wallet_ppm"], "mdr_wallet_ppm")
    cap = values["mdr_debit_cap_fen"]
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or not 0 < cap <= MAX_CAP_FEN):
        raise FieldError("mdr_debit_cap_fen", f"must be 1 to {MAX_CAP_FEN} fen, or null for no cap")
    d0 = values["d0_allowed"]
    if not isinstance(d0, bool):
        raise FieldError("d0_allowed", "must be true or false")
    cycle = values["settlement_cycle"]
    if cycle not in CYCLES:
        raise FieldError("settlement_cycle", f"must be one of {', '.join(CYCLES)}, got {cycle!r}")
    if cycle == "D0" and not d0:
        raise FieldError("settlement_cycle", "D0 needs d0_allowed = true")
    return FeePlan(debit, cap, credit, cycle, d0, wallet)
