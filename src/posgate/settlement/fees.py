"""Fees of one cleared transaction: the merchant's MDR (its fee plan), the issuer's interchange and the
network's service fee (each side). Pure integer arithmetic in fen: a rate is ppm of the amount, rounded
half-up to the fen per transaction, then capped.

>>> from posgate.settlement.rates import Rates
>>> plan = FeePlan(debit_ppm=5000, debit_cap_fen=2000, credit_ppm=6000)
>>> transaction_fees(10000, "debit", plan, Rates())   # 100.00 CNY on a debit card
Fees(mdr_fen=50, interchange_fen=35, network_fen=3, network_issuer_fen=3)
>>> transaction_fees(1_000_000, "debit", plan, Rates())  # 10,000.00 CNY: every cap applies
Fees(mdr_fen=2000, interchange_fen=1300, network_fen=325, network_issuer_fen=325)
>>> transaction_fees(1_000_000, "credit", plan, Rates())
Fees(mdr_fen=6000, interchange_fen=4500, network_fen=325, network_issuer_fen=325)
"""

from __future__ import annotations

from dataclasses import dataclass

from posgate.settlement.rates import PPM, Rates

_HALF = PPM // 2


def ppm_of(amount_fen: int, ppm: int, cap_fen: int | None = None) -> int:
    """`amount_fen × ppm / 10⁶`, rounded half-up to the fen, at most `cap_fen`.

    >>> ppm_of(100, 5000), ppm_of(101, 5000), ppm_of(99, 5000)   # 0.5 fen rounds up, 0.495 down
    (1, 1, 0)
    >>> ppm_of(300, 5000), ppm_of(10_000_000, 3500, cap_fen=1300)
    (2, 1300)
    """
    if amount_fen < 0:
        raise ValueError("fees are computed on a positive amount")
    fee = (amount_fen * ppm + _HALF) // PPM
    return fee if cap_fen is None else min(fee, cap_fen)


@dataclass(frozen=True)
class FeePlan:
    """A merchant's fee plan (the `Merchant` row's columns): MDR in ppm, the debit cap in fen."""

    debit_ppm: int
    debit_cap_fen: int | None
    credit_ppm: int

    def mdr_fen(self, amount_fen: int, card_kind: str) -> int:
        if card_kind == "credit":
            return ppm_of(amount_fen, self.credit_ppm)
        return ppm_of(amount_fen, self.debit_ppm, self.debit_cap_fen)


def default_plan(rates: Rates) -> FeePlan:
    plan = rates.default_fee_plan
    return FeePlan(plan.debit_ppm, plan.debit_cap_fen, plan.credit_ppm)


@dataclass(frozen=True)
class Fees:
    """What one sale or completion costs: `mdr_fen` charged to the merchant, `interchange_fen` kept by the
    issuer, `network_fen` the network's fee on the acquirer side (ours to pay), `network_issuer_fen` on the
    issuer side (the issuer's cost; reported, never posted)."""

    mdr_fen: int
    interchange_fen: int
    network_fen: int
    network_issuer_fen: int


def transaction_fees(amount_fen: int, card_kind: str, plan: FeePlan, rates: Rates) -> Fees:
    """The fees of a sale or completion of `amount_fen` on a `card_kind` (debit | credit) card."""
    interchange, network = rates.interchange, rates.network
    if card_kind == "credit":
        interchange_fen = ppm_of(amount_fen, interchange.credit_ppm, interchange.credit_cap_fen)
    else:
        interchange_fen = ppm_of(amount_fen, interchange.debit_ppm, interchange.debit_cap_fen)
    return Fees(
        mdr_fen=plan.mdr_fen(amount_fen, card_kind),
        interchange_fen=interchange_fen,
        network_fen=ppm_of(amount_fen, network.acquirer_ppm, network.acquirer_cap_fen),
        network_issuer_fen=ppm_of(amount_fen, network.issuer_ppm, network.issuer_cap_fen),
    )


_NO_CAP = 1 << 62


class FeeTable:
    """`transaction_fees` for many transactions: each (plan, card kind) is resolved to its four
    (ppm, cap) pairs once. Returns (mdr, interchange, network acquirer side, network issuer side).

    >>> from posgate.settlement.rates import Rates
    >>> table = FeeTable(Rates())
    >>> plan = FeePlan(debit_ppm=5000, debit_cap_fen=2000, credit_ppm=6000)
    >>> table.fees(1_000_000, "debit", plan)
    (2000, 1300, 325, 325)
    >>> transaction_fees(1_000_000, "debit", plan, Rates())
    Fees(mdr_fen=2000, interchange_fen=1300, network_fen=325, network_issuer_fen=325)
    """

    def __init__(self, rates: Rates) -> None:
        self.rates = rates
        self._rules: dict[tuple[FeePlan, str], tuple[tuple[int, int], ...]] = {}

    def _rule(self, plan: FeePlan, card_kind: str) -> tuple[tuple[int, int], ...]:
        interchange, network = self.rates.interchange, self.rates.network
        credit = card_kind == "credit"
        pairs = (
            (plan.credit_ppm, None) if credit else (plan.debit_ppm, plan.debit_cap_fen),
            (interchange.credit_ppm, interchange.credit_cap_fen)
            if credit
            else (interchange.debit_ppm, interchange.debit_cap_fen),
            (network.acquirer_ppm, network.acquirer_cap_fen),
            (network.issuer_ppm, network.issuer_cap_fen),
        )
        rule = tuple((ppm, _NO_CAP if cap is None else cap) for ppm, cap in pairs)
        self._rules[(plan, card_kind)] = rule
        return rule

    def fees(self, amount_fen: int, card_kind: str, plan: FeePlan) -> tuple[int, int, int, int]:
        rule = self._rules.get((plan, card_kind)) or self._rule(plan, card_kind)
        (p1, c1), (p2, c2), (p3, c3), (p4, c4) = rule
        return (
            min((amount_fen * p1 + _HALF) // PPM, c1),
            min((amount_fen * p2 + _HALF) // PPM, c2),
            min((amount_fen * p3 + _HALF) // PPM, c3),
            min((amount_fen * p4 + _HALF) // PPM, c4),
        )
