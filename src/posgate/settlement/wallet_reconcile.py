"""Reconciliation of wallet payments against each provider's daily bill (issue 12): the bill the provider
publishes for a day (WeChat Pay's `tradebill`, Alipay's business bill, UnionPay's settlement file — fetched
and parsed by the adapter, `bills.BillLine` in fen) matched line by line with the wallet orders and refunds
posgate recorded, and every difference reported and stored (`recon_reports` kind `wallet`, `recon_lines`).

The provider's day is the Beijing calendar day (the bills' `bill_date`), not our clearing window: a payment
is on the bill of the day its provider took the money (`paid_at`), a refund on the day it was made.

Outcomes of each line:
- matched: the same payment (`out_trade_no` = our order id) or refund (`out_refund_no`), the same amount,
  and the fee the provider's contract rate gives (`rates.wallets.provider_fee_ppm`);
- `amount_mismatch`: both have it, with other amounts;
- `fee_mismatch`: the same amount, but the provider charged another fee than its rate gives;
- `missing_in_posgate`: on the bill, but not paid (refunded) here — an order unknown, closed or never seen;
- `missing_at_provider`: paid (refunded) here that day, but not on the bill.

A bill line whose order or refund we have on another day (a payment at 23:59:59.9 seen by us after
midnight) is matched, with a note. The matching is pure (`match_bill`); `reconcile_wallet_bills` reads
the store, asks the adapters and saves the report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.settlement.rates import Rates
from posgate.settlement.wallet_clearing import provider_fee
from posgate.store.models_ledger import ReconLine, ReconReport
from posgate.store.models_wallet import WalletOrder, WalletRefund
from posgate.store.runtime import Store
from posgate.wallets.adapters.base import WalletAdapter
from posgate.wallets.bills import BillLine

BEIJING = ZoneInfo("Asia/Shanghai")
MATCHED = "matched"
AMOUNT_MISMATCH = "amount_mismatch"
FEE_MISMATCH = "fee_mismatch"
MISSING_IN_POSGATE = "missing_in_posgate"
MISSING_AT_PROVIDER = "missing_at_provider"
STATUSES = (AMOUNT_MISMATCH, FEE_MISMATCH, MISSING_IN_POSGATE, MISSING_AT_PROVIDER)


@dataclass(frozen=True)
class Ours:
    """A payment (`refund_no` None) or refund as posgate recorded it."""

    order_id: str
    refund_no: str | None
    amount_fen: int
    state: str  # the order's (paid …) or the refund's (succeeded …)
    at: dt.datetime | None  # UTC: paid_at, or the refund's created_at

    @property
    def key(self) -> tuple[str, str]:
        return ("refund", self.refund_no) if self.refund_no else ("pay", self.order_id)

    @property
    def settled(self) -> bool:
        return self.state == ("succeeded" if self.refund_no else "paid")


@dataclass(frozen=True)
class WalletDifference:
    status: str
    kind: str  # pay | refund
    order_id: str
    refund_no: str | None
    bill_amount_fen: int | None
    our_amount_fen: int | None
    detail: str = ""


@dataclass
class WalletRecon:
    provider: str
    day: dt.date
    bill_lines: int = 0
    matched: int = 0
    differences: list[WalletDifference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    report_id: int | None = None

    def count(self, status: str) -> int:
        return sum(1 for d in self.differences if d.status == status)


def provider_day(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The provider's bill day [00:00, 24:00) Beijing time, as naive UTC."""
    start = dt.datetime.combine(day, dt.time(), BEIJING).astimezone(dt.UTC).replace(tzinfo=None)
    return start, start + dt.timedelta(days=1)


def match_bill(
    provider: str,
    day: dt.date,
    lines: Iterable[BillLine],
    ours_that_day: Iterable[Ours],
    ours_by_key: Mapping[tuple[str, str], Ours],
    rates: Rates,
) -> WalletRecon:
    """Match a provider's bill of `day` with what posgate recorded settled that day (`ours_that_day`);
    `ours_by_key` holds our records of the bill's other lines, whatever their day or state."""
    recon = WalletRecon(provider, day)
    pending = {o.key: o for o in ours_that_day if o.settled}
    for line in lines:
        recon.bill_lines += 1
        key = ("refund", line.out_refund_no) if line.kind == "refund" else ("pay", line.out_trade_no)
        refund_no = line.out_refund_no or None
        amount = abs(line.amount_fen)
        ours = pending.pop(key, None)
        if ours is None:
            elsewhere = ours_by_key.get(key)
            if elsewhere is not None and elsewhere.settled:
                ours = elsewhere
                recon.notes.append(f"{key[0]} {key[1]} is on this bill and on another day here ({ours.at})")
            else:
                state = f"it is {elsewhere.state} here" if elsewhere else "posgate has no record of it"
                recon.differences.append(
                    WalletDifference(
                        MISSING_IN_POSGATE, line.kind, line.out_trade_no, refund_no, amount, None, state
                    )
                )
                continue
        if amount != ours.amount_fen:
            recon.differences.append(
                WalletDifference(
                    AMOUNT_MISMATCH, line.kind, line.out_trade_no, refund_no, amount, ours.amount_fen
                )
            )
            continue
        fee = provider_fee(provider, amount, rates)
        if abs(line.fee_fen) != fee:
            recon.differences.append(
                WalletDifference(
                    FEE_MISMATCH,
                    line.kind,
                    line.out_trade_no,
                    refund_no,
                    amount,
                    ours.amount_fen,
                    f"fee {abs(line.fee_fen)} fen, the contract rate gives {fee}",
                )
            )
            continue
        recon.matched += 1
    for ours in pending.values():
        recon.differences.append(
            WalletDifference(
                MISSING_AT_PROVIDER,
                ours.key[0],
                ours.order_id,
                ours.refund_no,
                None,
                ours.amount_fen,
                f"{ours.state} here at {ours.at:%Y-%m-%d %H:%M:%S} UTC",
            )
        )
    return recon


# ------------------------------------------------------------------------------------------ the store shell


def _ours_that_day(session: Session, provider: str, day: dt.date) -> list[Ours]:
    start, end = provider_day(day)
    o, r = WalletOrder.__table__.c, WalletRefund.__table__.c
    payments = session.execute(
        select(o.order_id, o.amount_fen, o.state, o.paid_at).where(
            o.provider == provider, o.state == "paid", o.paid_at >= start, o.paid_at < end
        )
    )
    refunds = session.execute(
        select(r.order_id, r.refund_no, r.amount_fen, r.state, r.created_at)
        .join(WalletOrder.__table__, o.order_id == r.order_id)
        .where(o.provider == provider, r.state == "succeeded", r.created_at >= start, r.created_at < end)
    )
    return [Ours(p.order_id, None, p.amount_fen, p.state, p.paid_at) for p in payments] + [
        Ours(x.order_id, x.refund_no, x.amount_fen, x.state, x.created_at) for x in refunds
    ]


def _ours_by_key(session: Session, lines: list[BillLine]) -> dict[tuple[str, str], Ours]:
    o, r = WalletOrder.__table__.c, WalletRefund.__table__.c
    found: dict[tuple[str, str], Ours] = {}
    order_ids = {line.out_trade_no for line in lines if line.kind != "refund"}
    refund_nos = {line.out_refund_no for line in lines if line.kind == "refund"}
    for chunk in _chunks(order_ids):
        for p in session.execute(
            select(o.order_id, o.amount_fen, o.state, o.paid_at).where(o.order_id.in_(chunk))
        ):
            found[("pay", p.order_id)] = Ours(p.order_id, None, p.amount_fen, p.state, p.paid_at)
    for chunk in _chunks(refund_nos):
        for x in session.execute(
            select(r.order_id, r.refund_no, r.amount_fen, r.state, r.created_at).where(r.refund_no.in_(chunk))
        ):
            found[("refund", x.refund_no)] = Ours(
                x.order_id, x.refund_no, x.amount_fen, x.state, x.created_at
            )
    return found


def _chunks(values: set[str], size: int = 1000) -> list[list[str]]:
    items = sorted(values)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _save(session: Session, recon: WalletRecon) -> int:
    report = ReconReport(
        kind="wallet",
        clearing_date=recon.day,
        bank=recon.provider,
        file_name=f"{recon.provider}-bill-{recon.day}",
        matched=recon.matched,
        missing_on_host=recon.count(MISSING_IN_POSGATE),
        missing_on_issuer=recon.count(MISSING_AT_PROVIDER),
        amount_mismatch=recon.count(AMOUNT_MISMATCH) + recon.count(FEE_MISMATCH),
    )
    session.add(report)
    session.flush()
    for d in recon.differences:
        what = f"{d.kind} order {d.order_id}" + (f" refund {d.refund_no}" if d.refund_no else "")
        session.add(
            ReconLine(
                report_id=report.id,
                status=d.status,
                issuer_amount_fen=d.bill_amount_fen,
                host_amount_fen=d.our_amount_fen,
                detail=f"{what}: {d.detail}" if d.detail else what,
            )
        )
    return int(report.id)


async def reconcile_wallet_bill(
    store: Store, adapter: WalletAdapter, day: dt.date, rates: Rates
) -> WalletRecon:
    """Fetch `adapter`'s provider's bill of `day`, match it with the store and save the report."""
    lines = await adapter.bill(day)
    provider = adapter.provider

    def work(session: Session) -> WalletRecon:
        recon = match_bill(
            provider, day, lines, _ours_that_day(session, provider, day), _ours_by_key(session, lines), rates
        )
        recon.report_id = _save(session, recon)
        return recon

    return await store.run(work)
