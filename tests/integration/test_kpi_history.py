"""`seed history` on SQLite and PostgreSQL: the asked number of transactions through the store's tables, the
store still usable afterwards (ids and RRNs unique, the sequence moved on), and the rollups agreeing with a
direct count over `transactions`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select

from posgate.kpi import queries
from posgate.kpi.definitions import AUTHORIZATION_KINDS, COUNTED_DECLINE_CODES, PURCHASE_KINDS
from posgate.kpi.history import seed_history
from posgate.kpi.queries import Filters
from posgate.security.at_rest import CardVault, load_or_create_keyring
from posgate.store.db import make_engine, migrate
from posgate.store.models import IssuerRoute, Transaction
from posgate.store.runtime import Store
from posgate.txnset import Kind

END = dt.date(2026, 11, 30)


def test_history_fills_the_store_and_the_rollups_agree(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=1, inline=True)
    vault = CardVault(load_or_create_keyring(tmp_path / "master.key"))
    seen: list[int] = []
    try:
        result = seed_history(
            store, vault, days=14, transactions=3000, env="development", end=END, progress=seen.append
        )
        assert result.transactions == 3000 == sum(seen)
        t = Transaction

        def direct(s):  # type: ignore[no-untyped-def]
            auth = t.kind.in_([k.value for k in AUTHORIZATION_KINDS])
            return (
                s.scalar(select(func.count()).where(auth, t.response_code == "00")),
                s.scalar(select(func.count()).where(auth, t.response_code.in_(COUNTED_DECLINE_CODES))),
                s.scalar(
                    select(func.sum(t.amount_fen)).where(
                        t.kind.in_([k.value for k in PURCHASE_KINDS]), t.response_code == "00"
                    )
                ),
                s.scalar(select(func.count(func.distinct(t.kind)))),
                s.scalar(select(func.count()).where(t.pan_ciphertext.is_(None))),
            )

        approved, declined, volume, kinds, clear = store.transact(direct)
        assert kinds >= 5 and clear == 0  # sales, preauths, completions, voids, refunds…; every PAN sealed
        start = END - dt.timedelta(days=13)
        got = store.transact(lambda s: queries.summary(s, start, END, Filters()))
        assert (got["approved_count"], got["declined_count"], got["approved_amount_fen"]) == (
            approved,
            declined,
            volume,
        )
        assert 0.85 < got["approval_rate"] < 0.99
        assert store.transact(lambda s: s.scalar(select(func.count(IssuerRoute.id)))) == 4
        banks = store.transact(lambda s: queries.breakdowns(s, start, END, Filters()))["issuer_mix"]
        assert len(banks) == 4

        def later_sale(s):  # type: ignore[no-untyped-def]
            # the next row the host records gets a fresh id (PostgreSQL: the sequence was moved on)
            row = Transaction(
                tid="90000001", mid="898000000000001", batch_no="999999", stan="000001", mti="0200",
                processing_code="000000", business_date=END, kind=Kind.SALE.value,
            )  # fmt: skip
            s.add(row)
            s.flush()
            return row.id

        assert store.transact(later_sale) == result.transactions + 1 + store.transact(
            lambda s: s.scalar(select(func.min(Transaction.id))) - 1
        )
    finally:
        store.close()
