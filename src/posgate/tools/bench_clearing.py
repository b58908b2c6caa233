"""`posgate bench clearing --transactions N`: generate a day of N transactions straight into a scratch store
(bulk `executemany`, not through the host), clear it, and clear it again to prove the re-run adds nothing.

The day's mix (deterministic for a seed): approved sales on a debit and a credit bank, declines, sales
voided (with their void) or reversed (with the reversal), refunds, pre-authorizations completed for less,
balance inquiries, and late transactions after the cut-off (next day's). Money in fen. The report: seconds,
transactions per second, postings, and the resident memory of the process when the clearing starts and
its peak during the clearing (Linux VmHWM, reset after the generation) — flat whatever N, because the
clearing streams the day in chunks.
"""

from __future__ import annotations

import datetime as dt
import gc
import random
import resource
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, text

from posgate.settlement.clearing import ClearingResult, run_clearing
from posgate.settlement.clearing_day import clearing_window
from posgate.settlement.rates import Rates
from posgate.store.db import make_engine, migrate
from posgate.store.models import IssuerRoute, Merchant, Transaction
from posgate.store.runtime import Store
from posgate.txnset import TxnState

BENCH_BANKS = (("Bench Debit Bank", "621000", "debit"), ("Bench Credit Bank", "625000", "credit"))
MERCHANTS = 200
TERMINALS = 1000
INSERT_CHUNK = 20_000


def peak_rss_mb() -> float:
    """The process's peak resident memory (MB): Linux's VmHWM (which `reset_peak_rss` can reset), else
    `getrusage`'s maximum."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Start measuring the peak afresh (Linux ≥ 4.0: `5` into /proc/self/clear_refs); False if not."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _merchant_mid(n: int) -> str:
    return f"89899{n:010d}"


def _base(txn_id: int, when: dt.datetime, tid: str, mid: str) -> dict[str, Any]:
    return {
        "id": txn_id,
        "tid": tid,
        "mid": mid,
        "batch_no": "000001",
        "business_date": when.date(),
        "currency": "156",
        "rrn": f"{txn_id:012d}",
        "network_stan": f"{txn_id % 1_000_000:06d}",
        "transmission_dt": when.strftime("%m%d%H%M%S"),
        "response_code": "00",
        "auth_code": f"{txn_id % 1_000_000:06d}",
        "original_id": None,
        "refunded_fen": 0,
        "fallback": False,
        "stand_in": False,
        "created_at": when,
        "updated_at": when,
    }


def generate_rows(
    count: int, first_id: int, start: dt.datetime, end: dt.datetime, seed: int = 7
) -> Iterator[dict[str, Any]]:
    """`count` transaction rows with ids from `first_id`, spread over [start, end) UTC (1 % after `end`:
    late ones). Originals come before what cancels or completes them."""
    rng = random.Random(seed)
    span = (end - start).total_seconds()
    txn_id = first_id
    made = 0
    stan_by_tid: dict[str, int] = {}

    def stan(tid: str) -> str:
        stan_by_tid[tid] = stan_by_tid.get(tid, 0) + 1
        return f"{stan_by_tid[tid] % 1_000_000:06d}"

    while made < count:
        offset = made / count * span
        when = start + dt.timedelta(seconds=offset)
        if rng.random() < 0.01:
            when = end + dt.timedelta(seconds=rng.uniform(0, 3000))
        tid = f"9{rng.randrange(TERMINALS):07d}"
        mid = _merchant_mid(int(tid) % MERCHANTS)
        bank, _, card_kind = BENCH_BANKS[rng.random() < 0.4]
        amount = rng.choice((rng.randint(100, 20_000), rng.randint(20_000, 500_000), 10_000_000))
        roll = rng.random()
        sale = _base(txn_id, when, tid, mid) | {
            "stan": stan(tid),
            "mti": "0200",
            "processing_code": "000000",
            "kind": "sale",
            "amount_fen": amount,
            "state": TxnState.APPROVED,
            "issuer_name": bank,
            "card_kind": card_kind,
        }
        if roll < 0.80 or made + 2 > count:
            yield sale
            txn_id, made = txn_id + 1, made + 1
        elif roll < 0.85:
            yield sale | {"state": TxnState.DECLINED, "response_code": "51", "auth_code": None}
            txn_id, made = txn_id + 1, made + 1
        elif roll < 0.87:  # reversed: the reversal repeats the sale's STAN
            yield sale | {"state": TxnState.REVERSED}
            later = when + dt.timedelta(seconds=20)
            yield _base(txn_id + 1, later, tid, mid) | {
                "stan": sale["stan"],
                "mti": "0400",
                "processing_code": "000000",
                "kind": "reversal",
                "amount_fen": amount,
                "state": TxnState.APPROVED,
                "issuer_name": bank,
                "card_kind": card_kind,
                "original_id": txn_id,
            }
            txn_id, made = txn_id + 2, made + 2
        elif roll < 0.90:  # voided
            yield sale | {"state": TxnState.VOIDED}
            later = when + dt.timedelta(seconds=60)
            yield _base(txn_id + 1, later, tid, mid) | {
                "stan": stan(tid),
                "mti": "0200",
                "processing_code": "200000",
                "kind": "void",
                "amount_fen": amount,
                "state": TxnState.APPROVED,
                "issuer_name": bank,
                "card_kind": card_kind,
                "original_id": txn_id,
            }
            txn_id, made = txn_id + 2, made + 2
        elif roll < 0.94:  # refund (of some earlier sale of the merchant)
            yield _base(txn_id, when, tid, mid) | {
                "stan": stan(tid),
                "mti": "0220",
                "processing_code": "200000",
                "kind": "refund",
                "amount_fen": max(1, amount // 3),
                "state": TxnState.APPROVED,
                "issuer_name": bank,
                "card_kind": card_kind,
            }
            txn_id, made = txn_id + 1, made + 1
        elif roll < 0.97:  # pre-authorization, completed for less
            yield sale | {
                "mti": "0100",
                "processing_code": "030000",
                "kind": "preauth",
                "state": TxnState.COMPLETED,
            }
            later = when + dt.timedelta(seconds=90)
            yield _base(txn_id + 1, later, tid, mid) | {
                "stan": stan(tid),
                "mti": "0200",
                "processing_code": "000000",
                "condition_code": "06",
                "kind": "completion",
                "amount_fen": max(1, amount * 9 // 10),
                "state": TxnState.APPROVED,
                "issuer_name": bank,
                "card_kind": card_kind,
                "original_id": txn_id,
            }
            txn_id, made = txn_id + 2, made + 2
        else:
            yield sale | {"mti": "0200", "processing_code": "310000", "kind": "balance", "amount_fen": 0}
            txn_id, made = txn_id + 1, made + 1


@dataclass
class ClearingBenchReport:
    transactions: int
    generate_s: float
    first: ClearingResult
    second: ClearingResult
    rss_before_mb: float
    rss_after_mb: float
    database: str

    @property
    def tps(self) -> float:
        return self.transactions / self.first.seconds if self.first.seconds else 0.0


def _provision(store: Store) -> None:
    def work(session) -> None:  # type: ignore[no-untyped-def]
        for name, prefix, kind in BENCH_BANKS:
            if session.scalar(select(IssuerRoute.id).where(IssuerRoute.name == name)) is None:
                session.add(IssuerRoute(name=name, bins=prefix, port=1, kind=kind))
        known = set(session.scalars(select(Merchant.mid)))
        for n in range(MERCHANTS):
            mid = _merchant_mid(n)
            if mid not in known:
                session.add(
                    Merchant(
                        mid=mid,
                        name=f"Bench Merchant {n}",
                        mcc="5311",
                        mdr_debit_ppm=5000,
                        mdr_debit_cap_fen=2000,
                        mdr_credit_ppm=6000,
                    )
                )

    store.transact(work)


def generate_day(store: Store, count: int, clearing_date: dt.date, rates: Rates, timezone: str) -> int:
    """Insert `count` transactions of `clearing_date` (plus its late ones) in bulk; returns the first id."""
    _provision(store)
    start, end = clearing_window(clearing_date, ZoneInfo(timezone), rates.clearing.cut_off_local)
    first_id = store.transact(lambda s: s.scalar(select(func.coalesce(func.max(Transaction.id), 0)))) + 1
    table = Transaction.__table__
    batch: list[dict[str, Any]] = []
    for row in generate_rows(count, first_id, start, end):
        row.setdefault("condition_code", None)
        batch.append(row)
        if len(batch) >= INSERT_CHUNK:
            store.transact(lambda s, rows=batch: s.execute(insert(table), rows))
            batch = []
    if batch:
        store.transact(lambda s, rows=batch: s.execute(insert(table), rows))
    if store.dialect == "postgresql":  # explicit ids: move the sequence past them
        store.transact(
            lambda s: s.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('transactions', 'id'), "
                    "(SELECT max(id) FROM transactions))"
                )
            )
        )
    return first_id


def run_clearing_bench(
    count: int,
    database_url: str | None = None,
    data_dir: Path | None = None,
    clearing_date: dt.date = dt.date(2026, 1, 15),
    timezone: str = "Asia/Shanghai",
    rates: Rates | None = None,
) -> ClearingBenchReport:
    """Generate, clear twice, measure. SQLite in a scratch folder unless `database_url` is given."""
    rates = rates or Rates()
    scratch = None
    if database_url is None:
        folder = data_dir or Path(scratch := tempfile.mkdtemp(prefix="posgate-bench-clearing-"))
        folder.mkdir(parents=True, exist_ok=True)
        database_url = f"sqlite:///{(folder / 'bench-clearing.sqlite').resolve()}"
    engine = make_engine(database_url, pool_size=2)
    migrate(engine)
    store = Store(engine, threads=1, inline=True)
    try:
        began = time.perf_counter()
        generate_day(store, count, clearing_date, rates, timezone)
        generate_s = time.perf_counter() - began
        gc.collect()
        reset_peak_rss()  # the generator's own peak is not the clearing's
        rss_before = peak_rss_mb()
        now = dt.datetime(2100, 1, 1)
        first = run_clearing(store, clearing_date, rates, timezone, now=now)
        rss_after = peak_rss_mb()
        second = run_clearing(store, clearing_date, rates, timezone, now=now)
    finally:
        store.close()
        if scratch is not None:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
    return ClearingBenchReport(count, generate_s, first, second, rss_before, rss_after, engine.dialect.name)
