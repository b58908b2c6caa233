"""`posgate seed history`: fills a store with a realistic past — partner banks, merchants of many sizes
(some new during the period, some churning), their terminals (a few never used), a card pool, and N
transactions over D days with weekday and hour seasonality, card and channel mix, declines by bank and
channel, voids, refunds and pre-authorizations completed — through the store's own tables, vault and RRN
rule, in large batches. Then the KPI rollups are rebuilt (docs/kpi.md has the rate it reaches).

Test data only: refused when `POSGATE_ENV=production`. Deterministic for a given `seed`.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from posgate.cards.pan import luhn_check_digit, mask_pan
from posgate.errors import ConfigError
from posgate.kpi.rollup import refresh
from posgate.security.at_rest import CardVault
from posgate.store.acquirer import rrn_of
from posgate.store.models import IssuerRoute, Merchant, Terminal, Transaction
from posgate.store.runtime import Store
from posgate.txnset import Kind, TxnState, row_of

#: partner banks the generator adds when the store has no issuer routes: (name, BIN, card kind, approval)
BANKS = (
    ("north-bank", "621700", "debit", 0.965),
    ("east-bank", "625800", "credit", 0.945),
    ("south-bank", "622200", "debit", 0.955),
    ("west-bank", "628800", "credit", 0.93),
)
#: MCC → (share of merchants, median ticket in fen)
MCCS = {
    "5411": (0.25, 6800),  # grocery
    "5812": (0.25, 9500),  # restaurants
    "5311": (0.08, 26000),  # department stores
    "5541": (0.10, 30000),  # fuel
    "5912": (0.10, 5200),  # pharmacies
    "5999": (0.14, 12000),  # retail
    "7011": (0.04, 58000),  # hotels
    "4121": (0.04, 3500),  # taxis
}
REGIONS = ("Shanghai", "Beijing", "Guangdong", "Zhejiang", "Jiangsu", "Sichuan")
WEEKDAY = (0.93, 0.95, 0.97, 1.0, 1.12, 1.2, 0.9)  # Monday first
HOURS = (1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 3, 6, 7, 8, 10, 14, 11, 8, 7, 8, 10, 14, 15, 12, 8, 5, 2)
ENTRY = (("051", 0.44), ("072", 0.34), ("021", 0.12), ("052", 0.05), ("801", 0.03), ("012", 0.02))
CHANNEL_APPROVAL = {"02": -0.015, "80": -0.06, "01": -0.03, "07": 0.006, "05": 0.0}
DECLINES = (
    ("51", 0.34),
    ("05", 0.2),
    ("55", 0.13),
    ("54", 0.05),
    ("14", 0.03),
    ("61", 0.05),
    ("59", 0.08),
    ("58", 0.01),
    ("30", 0.02),
    ("A0", 0.01),
    ("91", 0.05),
    ("96", 0.03),
)
KIND_MIX = ((Kind.SALE, 0.935), (Kind.PREAUTH, 0.03), (Kind.REFUND, 0.015), (Kind.VOID, 0.012))
KIND_MIX_REST = (Kind.BALANCE, 0.008)
BATCH_ROWS = 20_000


@dataclass
class _Merchant:
    mid: str
    mcc: str
    weight: float
    start: int  # first day it trades (0: before the period)
    end: int  # first day it no longer trades (days: never churns)
    terminals: list[tuple[str, int]] = field(default_factory=list)  # (tid, first usable day)


@dataclass(frozen=True)
class HistoryResult:
    transactions: int
    merchants: int
    terminals: int
    seconds_insert: float
    seconds_rollup: float


def _bank_routes(session: Session) -> list[tuple[str, str, str, float]]:
    routes = list(session.scalars(select(IssuerRoute).order_by(IssuerRoute.id)))
    if not routes:
        for port, (name, bin_, kind, _rate) in enumerate(BANKS, start=6101):
            session.add(IssuerRoute(name=name, bins=bin_, port=port, kind=kind))
        return list(BANKS)
    rates = [0.965, 0.945, 0.955, 0.93]
    return [
        (r.name, r.bins.split(",")[0].ljust(6, "0")[:6], r.kind, rates[i % 4]) for i, r in enumerate(routes)
    ]


def _cards(
    vault: CardVault, banks: list[tuple[str, str, str, float]], count: int, rng: random.Random
) -> list[Any]:
    cards = []
    for i in range(count):
        name, bin_, kind, rate = banks[i % len(banks)]
        partial = f"{bin_}{rng.randrange(10**9):09d}"
        pan = partial + luhn_check_digit(partial)
        protected = vault.protect_pan(pan)
        cards.append((name, kind, rate, protected.ciphertext, protected.pan_hash, mask_pan(pan)))
    return cards


def _estate(session: Session, days: int, total: int, start: dt.date, rng: random.Random) -> list[_Merchant]:
    """Merchants and terminals: sizes log-normal, 15 % opened during the period, 10 % churning."""
    count = max(10, min(5000, total // 1500))
    base_m = session.scalar(select(func.count(Merchant.id))) or 0
    base_t = session.scalar(select(func.count(Terminal.id))) or 0
    mccs = list(MCCS)
    merchants: list[_Merchant] = []
    tids = 0
    for i in range(count):
        mcc = rng.choices(mccs, [MCCS[m][0] for m in mccs])[0]
        weight = rng.lognormvariate(0, 1.2)
        first = rng.randrange(1, days) if rng.random() < 0.15 else 0
        end = rng.randrange(max(first + 1, days // 3), days) if rng.random() < 0.10 else days
        m = _Merchant(f"898{base_m + i + 1:012d}", mcc, weight, first, end)
        opened = dt.datetime.combine(start + dt.timedelta(days=first), dt.time(2)) - (
            dt.timedelta(days=rng.randrange(30, 400)) if first == 0 else dt.timedelta(0)
        )
        row = Merchant(
            mid=m.mid,
            name=f"Seeded {mcc} #{base_m + i + 1} ({rng.choice(REGIONS)})",
            mcc=mcc,
            status="live" if end == days else "closed",
            created_at=opened,
            live_at=opened,
        )
        session.add(row)
        session.flush()
        for _ in range(1 + min(7, int(weight * 1.5))):
            tids += 1
            tid = f"9{base_t + tids:07d}"
            usable = first + (rng.randrange(0, 15) if first else 0)
            session.add(Terminal(tid=tid, merchant_id=row.id, created_at=opened, live_at=opened))
            if rng.random() > 0.03:  # a few provisioned terminals are never used
                m.terminals.append((tid, usable))
        merchants.append(m)
    return merchants


def _day_weights(days: int, start: dt.date) -> list[float]:
    return [WEEKDAY[(start + dt.timedelta(days=d)).weekday()] * (1 + 0.002 * d) for d in range(days)]


def _response(rng: random.Random, approval: float, entry: str) -> str:
    if rng.random() < approval + CHANNEL_APPROVAL.get(entry[:2], 0.0):
        return "00"
    return rng.choices([c for c, _ in DECLINES], [w for _, w in DECLINES])[0]


def seed_history(
    store: Store,
    vault: CardVault,
    *,
    days: int,
    transactions: int,
    env: str,
    timezone: str = "Asia/Shanghai",
    seed: int = 13,
    end: dt.date | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> HistoryResult:
    """Insert about `transactions` transactions over the `days` business days ending on `end` (default:
    yesterday), then rebuild the KPI rollups. `progress(n)` is told of each batch inserted."""
    import time

    if env == "production":
        raise ConfigError("seed history makes test data and is refused when POSGATE_ENV=production")
    if days < 1 or transactions < 1:
        raise ConfigError("seed history: --days and --transactions must be at least 1")
    rng = random.Random(seed)
    zone = ZoneInfo(timezone)
    end = end or dt.datetime.now(zone).date() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=days - 1)
    began = time.perf_counter()

    def setup(s: Session) -> tuple[list[Any], list[_Merchant], int]:
        banks = _bank_routes(s)
        s.flush()
        cards = _cards(vault, banks, max(200, min(20_000, transactions // 200)), rng)
        merchants = _estate(s, days, transactions, start, rng)
        next_id = (s.scalar(select(func.max(Transaction.id))) or 0) + 1
        return cards, merchants, next_id

    cards, merchants, next_id = store.transact(setup)
    weights = _day_weights(days, start)
    scale = transactions / sum(weights)
    buffer: list[dict[str, Any]] = []
    made = 0

    def flush() -> None:
        nonlocal buffer
        if buffer:
            rows = buffer
            store.transact(lambda s: _insert(s, rows))
            progress(len(rows))
            buffer = []

    entries = [e for e, _ in ENTRY]
    entry_w = [w for _, w in ENTRY]
    kinds = [k for k, _ in KIND_MIX] + [KIND_MIX_REST[0]]
    kind_w = [w for _, w in KIND_MIX] + [KIND_MIX_REST[1]]
    hours = list(range(24))
    for d in range(days):
        day = start + dt.timedelta(days=d)
        offset = dt.datetime.combine(day, dt.time(12), zone).utcoffset() or dt.timedelta(0)
        open_ = [m for m in merchants if m.start <= d < m.end and any(u <= d for _, u in m.terminals)]
        if not open_:
            continue
        cum = list(_cumulative([m.weight for m in open_]))
        n = round(weights[d] * scale) if d < days - 1 else transactions - made
        picks = rng.choices(open_, cum_weights=cum, k=max(0, n))
        stans: dict[str, int] = {}
        day_rows: list[dict[str, Any]] = []
        sales: list[dict[str, Any]] = []
        for m in picks:
            if len(day_rows) >= n:
                break
            tid = rng.choice([t for t, u in m.terminals if u <= d])
            bank, card_kind, approval, cipher, pan_hash, masked = rng.choice(cards)
            kind = rng.choices(kinds, kind_w)[0]
            when = dt.datetime.combine(day, dt.time(rng.choices(hours, HOURS)[0], rng.randrange(60)))
            when = when - offset + dt.timedelta(seconds=rng.randrange(60))
            entry = rng.choices(entries, entry_w)[0]
            amount = max(100, int(rng.lognormvariate(math.log(MCCS[m.mcc][1]), 0.8)))
            original: dict[str, Any] | None = None
            if kind in (Kind.REFUND, Kind.VOID):
                candidates = [s for s in sales[-200:] if s["tid"] == tid or kind is Kind.REFUND]
                original = rng.choice(candidates) if candidates else None
                if original is None or original["state"] != TxnState.APPROVED.value:
                    kind, original = Kind.SALE, None
                else:
                    left = original["amount_fen"] - original["refunded_fen"]
                    amount = original["amount_fen"] if kind is Kind.VOID else max(1, min(left, amount // 2))
                    if kind is Kind.REFUND and left <= 0:
                        kind, original, amount = Kind.SALE, None, amount
                    else:
                        bank, card_kind = original["issuer_name"], original["card_kind"]
                        cipher, pan_hash, masked = (
                            original["pan_ciphertext"],
                            original["pan_hash"],
                            original["pan_masked"],
                        )
                        tid = original["tid"] if kind is Kind.VOID else tid
            code = "00" if original is not None or kind is Kind.BALANCE else _response(rng, approval, entry)
            row = _row(next_id, tid, m.mid, d, day, kind, amount, code, stans, when, entry, bank, card_kind)
            row.update(pan_ciphertext=cipher, pan_hash=pan_hash, pan_masked=masked)
            next_id += 1
            if original is not None:
                row["original_id"] = original["id"]
                if kind is Kind.VOID:
                    original["state"] = TxnState.VOIDED.value
                else:
                    original["refunded_fen"] += amount
            day_rows.append(row)
            if kind is Kind.SALE and code == "00":
                sales.append(row)
            if kind is Kind.PREAUTH and code == "00" and rng.random() < 0.85:
                final = min(amount * 115 // 100, int(amount * rng.uniform(0.9, 1.12)))
                done = _row(
                    next_id, tid, m.mid, d, day, Kind.COMPLETION, final, "00", stans,
                    when + dt.timedelta(minutes=rng.randrange(5, 600)), entry, bank, card_kind,
                )  # fmt: skip
                done.update(
                    pan_ciphertext=cipher, pan_hash=pan_hash, pan_masked=masked, original_id=row["id"]
                )
                row["state"] = TxnState.COMPLETED.value
                next_id += 1
                day_rows.append(done)
        made += len(day_rows)
        for row in day_rows:
            buffer.append(row)
            if len(buffer) >= BATCH_ROWS:
                flush()
    flush()
    if store.dialect == "postgresql":
        store.transact(
            lambda s: s.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('transactions', 'id'),"
                    " (SELECT max(id) FROM transactions))"
                )
            )
        )
    inserted = time.perf_counter()
    store.transact(lambda s: refresh(s, full=True))
    return HistoryResult(
        transactions=made,
        merchants=len(merchants),
        terminals=sum(len(m.terminals) for m in merchants),
        seconds_insert=inserted - began,
        seconds_rollup=time.perf_counter() - inserted,
    )


_COLUMNS = (
    "id", "tid", "mid", "batch_no", "stan", "mti", "processing_code", "business_date", "kind", "amount_fen",
    "currency", "pan_ciphertext", "pan_hash", "pan_masked", "entry_mode", "issuer_name", "rrn", "auth_code",
    "response_code", "state", "original_id", "condition_code", "card_kind", "fallback", "stand_in",
    "refunded_fen", "created_at", "updated_at",
)  # fmt: skip


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert rows into `transactions` in one driver call: COPY on PostgreSQL, executemany on SQLite (the
    ORM's per-row work would cost more than the rest of the generator)."""
    values = [tuple(row[c] for c in _COLUMNS) for row in rows]
    names = ", ".join(_COLUMNS)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY transactions ({names}) FROM STDIN") as copy:
            for value in values:
                copy.write_row(value)
        return
    # a bulk load touches every index of `transactions` at random places: give SQLite room to keep them
    # in memory (256 MiB for this connection; the default 2 MiB turns each batch into page I/O)
    connection.exec_driver_sql("PRAGMA cache_size = -262144")
    marks = ", ".join("?" for _ in _COLUMNS)
    connection.exec_driver_sql(f"INSERT INTO transactions ({names}) VALUES ({marks})", values)


def _cumulative(values: list[float]) -> list[float]:
    total, out = 0.0, []
    for v in values:
        total += v
        out.append(total)
    return out


def _row(
    txn_id: int,
    tid: str,
    mid: str,
    d: int,
    day: dt.date,
    kind: Kind,
    amount: int,
    code: str,
    stans: dict[str, int],
    when: dt.datetime,
    entry: str,
    bank: str,
    card_kind: str,
) -> dict[str, Any]:
    row = row_of(kind)
    stan = stans[tid] = stans.get(tid, 0) + 1
    approved = code == "00"
    return {
        "id": txn_id,
        "tid": tid,
        "mid": mid,
        "batch_no": f"{d + 1:06d}",
        "stan": f"{stan % 1_000_000:06d}",
        "mti": row.mti,
        "processing_code": row.processing_code or "000000",
        "business_date": day,
        "kind": kind.value,
        "amount_fen": amount,
        "currency": "156",
        "entry_mode": entry,
        "issuer_name": bank,
        "rrn": rrn_of(txn_id),
        "auth_code": f"{txn_id % 1_000_000:06d}" if approved else None,
        "response_code": code,
        "state": (TxnState.APPROVED if approved else TxnState.DECLINED).value,
        "original_id": None,
        "condition_code": row.condition_code,
        "card_kind": card_kind,
        "fallback": entry.startswith("80"),
        "stand_in": False,
        "refunded_fen": 0,
        "created_at": when,
        "updated_at": when,
    }
