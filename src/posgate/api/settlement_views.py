"""Settlement read models for the API and the console: a merchant's daily statement, the fee income of a
clearing date, the outstanding payables, the date's clearing runs and payouts — plain dicts of JSON-ready
values (money in integer fen, dates ISO), built from `posgate.settlement.reports`; and the statement as CSV
(CNY with two decimals). Only masked card numbers are ever read."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from posgate.merchants.errors import FieldError
from posgate.merchants.provisioning import get_merchant
from posgate.money import yuan
from posgate.settlement import reports
from posgate.settlement.clearing_day import to_local
from posgate.store.models import Merchant
from posgate.store.models_ledger import ClearingRun, Payout


def parse_day(text: str | None, field: str = "date") -> dt.date:
    """A required date `YYYY-MM-DD` (422 naming `field` otherwise).

    >>> parse_day("2026-08-03")
    datetime.date(2026, 8, 3)
    """
    if not text:
        raise FieldError(field, "is required (a date like 2026-11-26)")
    if len(text) != 10:
        raise FieldError(field, f"must be a date like 2026-11-26, got {text[:20]!r}")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise FieldError(field, f"must be a date like 2026-11-26, got {text!r}") from None


def default_day(session: Session, timezone: str) -> dt.date:
    """The latest clearing date with a finished run, else yesterday (acquirer local)."""
    latest = session.scalar(
        select(func.max(ClearingRun.clearing_date)).where(ClearingRun.status == "finished")
    )
    if latest is not None:
        return latest  # type: ignore[no-any-return]
    return dt.datetime.now(ZoneInfo(timezone)).date() - dt.timedelta(days=1)


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def clearing_runs(session: Session, day: dt.date) -> list[dict[str, Any]]:
    """The runs of `day`, oldest first (a re-run finds nothing new: zeros)."""
    rows = session.scalars(
        select(ClearingRun).where(ClearingRun.clearing_date == day).order_by(ClearingRun.id)
    )
    return [
        {
            "id": r.id,
            "status": r.status,
            "cut_off_local": r.cut_off_local,
            "timezone": r.timezone,
            "cleared_count": r.cleared_count,
            "adjusted_count": r.adjusted_count,
            "pending_count": r.pending_count,
            "sales_fen": r.sales_fen,
            "refunds_fen": r.refunds_fen,
            "mdr_fen": r.mdr_fen,
            "started_at": _iso(r.started_at),
            "finished_at": _iso(r.finished_at),
            "error": r.error,
        }
        for r in rows
    ]


def clearing_status(runs: list[dict[str, Any]]) -> str:
    """`finished` once a run of the date finished; else the last run's status; `not_run` without one."""
    if any(r["status"] == "finished" for r in runs):
        return "finished"
    return runs[-1]["status"] if runs else "not_run"  # type: ignore[no-any-return]


def _payout(row: reports.PayoutRow) -> dict[str, Any]:
    return {
        "payout_id": row.payout_id,
        "kind": row.kind,
        "value_date": _iso(row.value_date),
        "amount_fen": row.amount_fen,
        "surcharge_fen": row.surcharge_fen,
        "net_fen": row.net_fen,
        "status": row.status,
        "file_name": row.file_name,
    }


def statement_view(session: Session, mid: str, day: dt.date, timezone: str) -> dict[str, Any]:
    """One merchant's statement of a clearing date (404 for an unknown MID). Line times are UTC
    (`created_at`) and acquirer local (`local_time`)."""
    get_merchant(session, mid)
    tz = ZoneInfo(timezone)
    s = reports.merchant_statement(session, mid, day)
    t = s.totals
    runs = clearing_runs(session, day)
    return {
        "mid": s.mid,
        "name": s.name,
        "date": _iso(s.clearing_date),
        "timezone": timezone,
        "clearing_status": clearing_status(runs),
        "totals": {
            "sales_count": t.sales_count,
            "gross_sales_fen": t.gross_sales_fen,
            "refunds_count": t.refunds_count,
            "refunds_fen": t.refunds_fen,
            "adjusted_count": t.adjusted_count,
            "adjusted_fen": t.adjusted_fen,
            "mdr_fen": t.mdr_fen,
            "net_fen": t.net_fen,
        },
        "opening_balance_fen": s.opening_balance_fen,
        "payouts_fen": sum(p.amount_fen for p in s.payouts),
        "closing_balance_fen": s.closing_balance_fen,
        "payouts": [_payout(p) for p in s.payouts],
        "lines": [
            {
                "transaction_id": x.transaction_id,
                "created_at": _iso(x.created_at),
                "local_time": to_local(x.created_at, tz).strftime("%Y-%m-%d %H:%M:%S"),
                "tid": x.tid,
                "kind": x.kind,
                "rrn": x.rrn,
                "pan_masked": x.pan_masked,
                "card_kind": x.card_kind,
                "amount_fen": x.amount_fen,
                "mdr_fen": x.mdr_fen,
                "net_fen": x.net_fen,
                "provider": x.provider,
                "order_id": x.order_id,
            }
            for x in s.lines
        ],
    }


def _income_row(r: reports.FeeIncomeRow) -> dict[str, Any]:
    return {
        "mid": r.mid,
        "name": r.name,
        "transactions": r.transactions,
        "volume_fen": r.volume_fen,
        "mdr_fen": r.mdr_fen,
        "interchange_fen": r.interchange_fen,
        "network_fen": r.network_fen,
        "network_issuer_fen": r.network_issuer_fen,
        "provider_fee_fen": r.provider_fee_fen,
        "net_income_fen": r.net_income_fen,
    }


def fee_income_view(session: Session, day: dt.date) -> dict[str, Any]:
    """MDR, interchange, network fee and our net income of a clearing date, per merchant and in total;
    `ledger` is the same day as the ledger moved it (`agrees`: the two say the same)."""
    income = reports.fee_income(session, day)
    total = income.total
    return {
        "date": _iso(day),
        "rows": [_income_row(r) for r in income.rows],
        "total": _income_row(total),
        "d0_surcharge_fen": income.d0_surcharge_fen,
        "net_income_fen": income.net_income_fen,
        "ledger": {
            "mdr_fen": income.ledger_mdr_fen,
            "interchange_fen": income.ledger_interchange_fen,
            "network_fen": income.ledger_network_fen,
            "provider_fee_fen": income.ledger_provider_fee_fen,
            "agrees": (
                income.ledger_mdr_fen,
                income.ledger_interchange_fen,
                income.ledger_network_fen,
                income.ledger_provider_fee_fen,
            )
            == (total.mdr_fen, total.interchange_fen, total.network_fen, total.provider_fee_fen),
        },
    }


def payables_view(session: Session) -> list[dict[str, Any]]:
    """Every merchant we owe (or who owes us), with the payouts in flight, as of now."""
    return [
        {
            "mid": p.mid,
            "name": p.name,
            "balance_fen": p.balance_fen,
            "in_flight_fen": p.in_flight_fen,
            "payable_fen": p.payable_fen,
            "last_payout": _iso(p.last_payout),
        }
        for p in reports.outstanding_payables(session)
    ]


def payouts_of(session: Session, day: dt.date) -> list[dict[str, Any]]:
    """The payouts value-dated `day` (T+1 and D0), with their status."""
    rows = session.execute(
        select(Payout, Merchant.name)
        .outerjoin(Merchant, Merchant.mid == Payout.mid)
        .where(Payout.value_date == day)
        .order_by(Payout.id)
    )
    return [
        {
            "payout_id": p.id,
            "mid": p.mid,
            "name": name or "",
            "kind": p.kind,
            "amount_fen": p.amount_fen,
            "surcharge_fen": p.surcharge_fen,
            "net_fen": p.net_fen,
            "status": p.status,
            "file_name": p.file_name,
            "confirmed_at": _iso(p.confirmed_at),
        }
        for p, name in rows
    ]


def settlement_day(session: Session, day: dt.date) -> dict[str, Any]:
    """What the console's settlement page shows for `day`."""
    runs = clearing_runs(session, day)
    return {
        "date": _iso(day),
        "runs": runs,
        "clearing_status": clearing_status(runs),
        "fee_income": fee_income_view(session, day),
        "payables": payables_view(session),
        "payouts": payouts_of(session, day),
    }


def _cny(fen: int) -> str:
    return yuan(fen).replace(",", "")


def _text(value: str | None) -> str:
    """A text cell that a spreadsheet will not read as a formula."""
    text = value or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


STATEMENT_CSV_HEADER = (
    "section",
    "mid",
    "name",
    "date",
    "clearing_status",
    "sales",
    "gross_sales_cny",
    "refunds",
    "refunds_cny",
    "adjusted_cny",
    "mdr_cny",
    "net_cny",
    "payouts_cny",
    "opening_balance_cny",
    "closing_balance_cny",
)
LINE_CSV_HEADER = (
    "section",
    "transaction_id",
    "local_time",
    "tid",
    "kind",
    "rrn",
    "card",
    "card_kind",
    "amount_cny",
    "mdr_cny",
    "net_cny",
)
PAYOUT_CSV_HEADER = (
    "section",
    "payout_id",
    "kind",
    "value_date",
    "amount_cny",
    "surcharge_cny",
    "net_cny",
    "status",
)


def statement_csv(view: dict[str, Any]) -> str:
    """The statement (`statement_view`) as CSV: the summary, then each cleared transaction, then the
    payouts — each block after its own header row (first column `section`). Amounts in CNY, 2 decimals."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    t = view["totals"]
    w.writerow(STATEMENT_CSV_HEADER)
    w.writerow(
        [
            "statement",
            view["mid"],
            _text(view["name"]),
            view["date"],
            view["clearing_status"],
            t["sales_count"],
            _cny(t["gross_sales_fen"]),
            t["refunds_count"],
            _cny(t["refunds_fen"]),
            _cny(t["adjusted_fen"]),
            _cny(t["mdr_fen"]),
            _cny(t["net_fen"]),
            _cny(view["payouts_fen"]),
            _cny(view["opening_balance_fen"]),
            _cny(view["closing_balance_fen"]),
        ]
    )
    w.writerow(LINE_CSV_HEADER)
    for x in view["lines"]:
        w.writerow(
            [
                "line",
                x["transaction_id"],
                x["local_time"],
                _text(x["tid"]),
                x["kind"],
                _text(x["rrn"] or x["order_id"]),  # a wallet line: its order id
                _text(x["pan_masked"] or x["provider"]),  # … and its provider
                x["card_kind"],
                _cny(x["amount_fen"]),
                _cny(x["mdr_fen"]),
                _cny(x["net_fen"]),
            ]
        )
    w.writerow(PAYOUT_CSV_HEADER)
    for p in view["payouts"]:
        w.writerow(
            [
                "payout",
                p["payout_id"],
                p["kind"],
                p["value_date"],
                _cny(p["amount_fen"]),
                _cny(p["surcharge_fen"]),
                _cny(p["net_fen"]),
                p["status"],
            ]
        )
    return out.getvalue()
