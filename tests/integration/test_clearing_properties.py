"""Property: for random days of transactions — sales approved, declined or timed out, voids (and reversals
of those voids), reversals, several partial refunds, pre-authorizations completed for less (then voided or
reversed) or voided, late arrivals after the cut-off, cancellations that cross a clearing run — played in
time order with the clearing runs in between (each date cleared once after its cut-off, in any order),
then every date cleared twice more and every T+1 batch paid:

1. the ledger balances: Σ debits = Σ credits over all postings, every journal entry balances, and the
   per-day account totals equal the postings;
2. every transaction is cleared exactly once and nothing else is: a sale, completion or refund whose final
   state is `approved` has a net clearing count of 1 (its clearing, plus reclears, minus unwinds), any
   other has 0; only sales, completions and refunds have a clearing of their own, only voids, completion
   voids and reversals cause adjustments; the re-runs at the end add no posting;
3. dates: a transaction clears on the date of its `created_at` (acquirer local, after 23:00 the next day)
   or, if a reversed void brought it back after its date's run, on that reversal's date; an adjustment is
   dated by the void or reversal that caused it; late arrivals (local time ≥ 23:00) clear the next day;
4. money, to the fen, per merchant and in total: payouts + fees + refunds == gross approved volume, where
   gross approved volume = Σ amounts of the sales and completions whose final state is approved;
   refunds = Σ amounts of the approved refunds; fees = Σ MDR of the merchant's clearing entries (unwinds
   give theirs back); payouts = Σ of the T+1 transfers confirmed paid + what the merchant's payable still
   holds (a deficit carried forward counts negative; for MIDs that are not merchants: the suspense
   account). No payout is ever of zero or less.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from posgate.settlement.clearing import CANCELLATION_KINDS, CLEARING_KINDS, run_clearing
from posgate.settlement.clearing_day import clearing_date
from posgate.settlement.ledger_store import balances, trial_balance, unbalanced_entries, verify_balances
from posgate.settlement.payouts import build_t1_payouts, import_confirmation, payable_balances, simulate_bank
from posgate.settlement.rates import Rates
from posgate.store.db import make_engine, migrate
from posgate.store.models import Transaction
from posgate.store.models_ledger import ClearingEntry, Payout
from posgate.store.runtime import Store
from posgate.tools.clearing_day_factory import (
    CREDIT_CARD,
    DEBIT_CARD,
    EXAMPLE_MID,
    EXAMPLE_MID_2,
    DayBuilder,
    provision_example,
)

TZ = "Asia/Shanghai"
ZONE = ZoneInfo(TZ)
RATES = Rates()
CUT = RATES.clearing.cut_off_local
BASE = dt.datetime(2026, 6, 1)  # local
DAYS = [dt.date(2026, 6, d) for d in range(1, 6)]  # the dates that see transactions
STRANGER = "898440100000099"  # a MID that is not a merchant of ours
HOUR = 3600

amounts = st.one_of(st.integers(1, 20_000), st.integers(20_000, 5_000_000), st.just(10_000_000))
merchants = st.sampled_from([EXAMPLE_MID, EXAMPLE_MID, EXAMPLE_MID_2, STRANGER])
cards = st.sampled_from([DEBIT_CARD, CREDIT_CARD])
starts = (
    st.integers(0, 3 * 24 * HOUR - 1)
    | st.integers(0, 2).map(lambda d: d * 24 * HOUR + 23 * HOUR - 30)  # just before the cut-off
    | st.integers(0, 2).flatmap(
        lambda d: st.integers(d * 24 * HOUR + 20 * HOUR, d * 24 * HOUR + 24 * HOUR - 1)
    )
)
delays = st.integers(1, 20 * HOUR) | st.integers(1, 120) | st.integers(HOUR, 6 * HOUR)

_NONE = {"void": None, "reverse": None, "refunds": []}
follow_ups = st.one_of(
    st.just(_NONE),
    st.lists(st.tuples(st.integers(1, 100), delays), min_size=1, max_size=3).map(
        lambda r: _NONE | {"refunds": r}
    ),
    st.tuples(delays, st.none() | delays).map(lambda v: _NONE | {"void": v}),
    # voided after a run, the void reversed after the next one: an unwind, then a reclear
    st.tuples(st.integers(HOUR, 6 * HOUR), st.integers(20 * HOUR, 30 * HOUR)).map(
        lambda v: _NONE | {"void": v}
    ),
    st.tuples(delays, st.booleans()).map(lambda r: _NONE | {"reverse": r}),
)
sale_stories = st.tuples(
    st.fixed_dictionaries(
        {
            "type": st.just("sale"),
            "start": starts,
            "amount": amounts,
            "mid": merchants,
            "card": cards,
            "outcome": st.sampled_from(["approved"] * 6 + ["declined", "timed_out"]),
        }
    ),
    follow_ups,
).map(lambda parts: parts[0] | parts[1])
preauth_stories = st.fixed_dictionaries(
    {
        "type": st.just("preauth"),
        "start": starts,
        "amount": amounts,
        "mid": merchants,
        "card": cards,
        "complete": st.none() | st.tuples(st.integers(1, 100), delays),
        "after": st.sampled_from([None, "completion_void", "reverse_completion", "preauth_void"]),
        "after_delay": delays,
    }
)
days_plans = st.fixed_dictionaries(
    {
        "stories": st.lists(st.one_of(sale_stories, preauth_stories), min_size=3, max_size=16),
        # when each date is cleared: seconds after its cut-off (≥ the grace period), any order
        "runs": st.lists(
            st.integers(RATES.clearing.grace_s + 1, 30 * HOUR), min_size=len(DAYS), max_size=len(DAYS)
        ),
    }
)


@dataclass
class Story:
    plan: dict[str, Any]
    ids: dict[str, int] = field(default_factory=dict)


def _events(plan: dict[str, Any]) -> list[tuple[dt.datetime, int, str, Any]]:
    """Every action of the plan at its local time (ties keep the plan's order: causes come first)."""
    events: list[tuple[dt.datetime, int, str, Any]] = []

    def add(when: dt.datetime, action: str, payload: Any) -> None:
        events.append((when, len(events), action, payload))

    for raw in plan["stories"]:
        story = Story(raw)
        t0 = BASE + dt.timedelta(seconds=raw["start"])
        if raw["type"] == "sale":
            add(t0, "sale", story)
            for percent, delay in raw["refunds"]:
                add(t0 + dt.timedelta(seconds=delay), "refund", (story, percent))
            if raw["void"] is not None:
                void_delay, reverse_delay = raw["void"]
                add(t0 + dt.timedelta(seconds=void_delay), "void", story)
                if reverse_delay is not None:
                    add(t0 + dt.timedelta(seconds=void_delay + reverse_delay), "reverse_void", story)
            if raw["reverse"] is not None:
                add(t0 + dt.timedelta(seconds=raw["reverse"][0]), "reverse", story)
        else:
            add(t0, "preauth", story)
            if raw["complete"] is not None:
                percent, delay = raw["complete"]
                add(t0 + dt.timedelta(seconds=delay), "completion", (story, percent))
                if raw["after"] in ("completion_void", "reverse_completion"):
                    add(t0 + dt.timedelta(seconds=delay + raw["after_delay"]), raw["after"], story)
            elif raw["after"] == "preauth_void":
                add(t0 + dt.timedelta(seconds=raw["after_delay"]), "preauth_void", story)
    for day, offset in zip(DAYS, plan["runs"], strict=True):
        end_local = dt.datetime.combine(day, CUT)
        add(end_local + dt.timedelta(seconds=offset), "run", day)
    return sorted(events, key=lambda e: (e[0], e[1]))


def _state(b: DayBuilder, txn_id: int | None) -> Any:
    return None if txn_id is None else b._row(txn_id)


def _apply(b: DayBuilder, store: Store, when: dt.datetime, action: str, payload: Any) -> None:
    if action == "run":
        run_clearing(store, payload, RATES, TZ, now=b.utc(when))
        return
    with b.writing(store):
        story, extra = payload if isinstance(payload, tuple) else (payload, None)
        raw, ids = story.plan, story.ids
        if action == "sale":
            ids["sale"] = b.sale(when, raw["amount"], raw["mid"], raw["card"], state=raw["outcome"])
        elif action == "preauth":
            ids["preauth"] = b.preauth(when, raw["amount"], raw["mid"], raw["card"])
        elif action == "refund":
            sale = _state(b, ids.get("sale"))
            left = sale.amount_fen - sale.refunded_fen
            amount = min(left, max(1, sale.amount_fen * extra // 100))
            if sale.state == "approved" and amount > 0:
                b.refund(when, sale.id, amount)
        elif action == "void":
            sale = _state(b, ids.get("sale"))
            if sale.state == "approved" and sale.refunded_fen == 0:
                ids["void"] = b.void(when, sale.id)
        elif action == "reverse_void":
            void = _state(b, ids.get("void"))
            if void is not None and void.state == "approved":
                b.reversal(when, void.id)
        elif action == "reverse":
            sale = _state(b, ids.get("sale"))
            if sale.state == "approved" and sale.refunded_fen == 0:
                b.reversal(when, sale.id, linked=raw["reverse"][1])
        elif action == "completion":
            preauth = _state(b, ids.get("preauth"))
            if preauth.state == "approved":
                ids["completion"] = b.completion(when, preauth.id, max(1, preauth.amount_fen * extra // 100))
        elif action in ("completion_void", "reverse_completion"):
            completion = _state(b, ids.get("completion"))
            if completion is not None and completion.state == "approved":
                if action == "completion_void":
                    b.completion_void(when, completion.id)
                else:
                    b.reversal(when, completion.id)
        elif action == "preauth_void":
            preauth = _state(b, ids.get("preauth"))
            if preauth.state == "approved":
                b.preauth_void(when, preauth.id)


def play_and_check(store: Store, plan: dict[str, Any], data_dir: Path) -> list[ClearingEntry]:
    """Play `plan` into `store` (already provisioned), then check the four properties; the clearing
    entries."""
    b = DayBuilder()
    for when, _, action, payload in _events(plan):
        _apply(b, store, when, action, payload)
    end_of_time = b.utc(dt.datetime(2026, 7, 1))
    for _ in range(2):
        for day in [*DAYS, DAYS[-1] + dt.timedelta(days=1)]:
            again = run_clearing(store, day, RATES, TZ, now=end_of_time)
            assert (again.cleared, again.adjusted, again.postings) == (0, 0, 0), day

    # 1. the ledger balances
    assert store.transact(trial_balance) == 0
    assert store.transact(unbalanced_entries) == []
    assert store.transact(verify_balances) == []

    txns = {t.id: t for t in store.transact(lambda s: s.scalars(select(Transaction)).all())}
    entries = store.transact(lambda s: s.scalars(select(ClearingEntry)).all())
    local_date = {i: clearing_date(t.created_at, ZONE, CUT) for i, t in txns.items()}

    # 2. exactly once, nothing else
    net: dict[int, int] = {}
    net_amount: dict[int, int] = {}
    for e in entries:
        if e.adjusts_id is None:
            assert txns[e.transaction_id].kind in CLEARING_KINDS, e.transaction_id
            original, step = e.transaction_id, 1
        else:
            assert txns[e.transaction_id].kind in CANCELLATION_KINDS, e.transaction_id
            original, step = e.adjusts_id, (1 if e.kind == "reclear" else -1)
            # 3. an adjustment is dated by its cause
            assert e.clearing_date == local_date[e.transaction_id]
        net[original] = net.get(original, 0) + step
        net_amount[original] = net_amount.get(original, 0) + e.amount_fen
    for txn_id, t in txns.items():
        effective = t.kind in CLEARING_KINDS and t.state == "approved"
        assert net.get(txn_id, 0) == (1 if effective else 0), (txn_id, t.kind, t.state)
        signed = -t.amount_fen if t.kind == "refund" else t.amount_fen
        assert net_amount.get(txn_id, 0) == (signed if effective else 0)

    # 3. dates
    for e in entries:
        if e.adjusts_id is None:
            own = local_date[e.transaction_id]
            assert e.clearing_date >= own
            t = txns[e.transaction_id]
            if t.state == "approved" and e.clearing_date != own:  # only a reversed void brings one back late
                assert any(
                    x.kind == "reversal" and x.original_id is not None and txns[x.original_id].kind == "void"
                    for x in txns.values()
                    if x.original_id is not None and txns[x.original_id].original_id == t.id
                )
            local = t.created_at.replace(tzinfo=dt.UTC).astimezone(ZONE)
            if local.time() >= CUT and e.clearing_date == own:
                assert own == local.date() + dt.timedelta(days=1)

    # 4. money
    for day in [*DAYS, DAYS[-1] + dt.timedelta(days=1)]:
        run = build_t1_payouts(store, day, data_dir)
        if run.file is not None:
            import_confirmation(store, simulate_bank(run.file, run.file.with_name(run.file.stem + "-ok.csv")))
    payouts = store.transact(lambda s: s.scalars(select(Payout)).all())
    assert all(p.amount_fen > 0 and p.status == "paid" for p in payouts)
    owed = store.transact(lambda s: payable_balances(s))
    suspense = -store.transact(lambda s: balances(s, prefix="suspense")).get("suspense", 0)
    total_fees = total_refunds = total_gross = total_paid = 0
    for mid in (EXAMPLE_MID, EXAMPLE_MID_2, STRANGER):
        mine = [t for t in txns.values() if t.mid == mid and t.state == "approved"]
        gross = sum(t.amount_fen for t in mine if t.kind in ("sale", "completion"))
        refunds = sum(t.amount_fen for t in mine if t.kind == "refund")
        fees = sum(e.mdr_fen for e in entries if e.mid == mid)
        paid = sum(p.net_fen for p in payouts if p.mid == mid)
        still = suspense if mid == STRANGER else owed.get(mid, 0)
        assert paid + still + fees + refunds == gross, (mid, gross, refunds, fees, paid, still)
        total_fees, total_refunds, total_gross, total_paid = (
            total_fees + fees,
            total_refunds + refunds,
            total_gross + gross,
            total_paid + paid,
        )
    assert (
        -store.transact(lambda s: balances(s, prefix="fee_income:mdr")).get("fee_income:mdr", 0) == total_fees
    )
    assert (
        -store.transact(lambda s: balances(s, prefix="settlement_cash")).get("settlement_cash", 0)
        == total_paid
    )
    assert total_paid + sum(owed.values()) + suspense + total_fees + total_refunds == total_gross
    return list(entries)


_TEMPLATE: dict[str, Path] = {}


def _template() -> Path:
    """A migrated, provisioned SQLite file, copied for each example (migrating each time is slow)."""
    if "path" not in _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="posgate-clearing-props-"))
        engine = make_engine(f"sqlite:///{folder / 'template.sqlite'}")
        migrate(engine)
        store = Store(engine, threads=1, inline=True)
        with DayBuilder().writing(store) as b:
            provision_example(b)
        store.close()
        _TEMPLATE["path"] = folder / "template.sqlite"
    return _TEMPLATE["path"]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days_plans)
def test_random_days_balance_clear_once_and_pay_out_to_the_fen(plan: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="posgate-clearing-") as folder:
        path = Path(folder) / "store.sqlite"
        shutil.copy(_template(), path)
        store = Store(make_engine(f"sqlite:///{path}", pool_size=1), threads=1, inline=True)
        try:
            entries = play_and_check(store, plan, Path(folder))
        finally:
            store.close()
    for kind in sorted({e.kind for e in entries}):
        event(f"has {kind}")


#: One fixed day with every twist, for both databases.
FIXED_PLAN: dict[str, Any] = {
    "stories": [
        {  # cleared, voided after its run, the void reversed after the next run: unwind, then reclear
            "type": "sale",
            "start": 22 * HOUR,
            "amount": 4_321,
            "mid": EXAMPLE_MID,
            "card": DEBIT_CARD,
            "outcome": "approved",
            "void": (2 * HOUR, 30 * HOUR),
            "reverse": None,
            "refunds": [],
        },
        {
            "type": "sale",
            "start": 3600,
            "amount": 10_000_000,
            "mid": EXAMPLE_MID,
            "card": DEBIT_CARD,
            "outcome": "approved",
            "void": None,
            "reverse": None,
            "refunds": [(30, 600), (30, 90_000), (50, 7200)],
        },
        {
            "type": "sale",
            "start": 23 * HOUR - 30,
            "amount": 12_345,
            "mid": EXAMPLE_MID,
            "card": CREDIT_CARD,
            "outcome": "approved",
            "void": (100, 20 * HOUR),
            "reverse": None,
            "refunds": [],
        },
        {
            "type": "sale",
            "start": 22 * HOUR + 3500,
            "amount": 50_000,
            "mid": EXAMPLE_MID_2,
            "card": DEBIT_CARD,
            "outcome": "approved",
            "void": (3 * HOUR, None),
            "reverse": None,
            "refunds": [],
        },
        {
            "type": "sale",
            "start": 20 * HOUR,
            "amount": 777,
            "mid": STRANGER,
            "card": DEBIT_CARD,
            "outcome": "approved",
            "void": None,
            "reverse": (30, False),
            "refunds": [],
        },
        {
            "type": "sale",
            "start": 30 * HOUR,
            "amount": 5_000,
            "mid": EXAMPLE_MID_2,
            "card": CREDIT_CARD,
            "outcome": "timed_out",
            "void": None,
            "reverse": None,
            "refunds": [],
        },
        {
            "type": "preauth",
            "start": 5 * HOUR,
            "amount": 80_000,
            "mid": EXAMPLE_MID_2,
            "card": CREDIT_CARD,
            "complete": (75, 20 * HOUR),
            "after": "reverse_completion",
            "after_delay": 4 * HOUR,
        },
        {
            "type": "preauth",
            "start": 6 * HOUR,
            "amount": 90_000,
            "mid": EXAMPLE_MID,
            "card": CREDIT_CARD,
            "complete": (100, HOUR),
            "after": None,
            "after_delay": 1,
        },
        {
            "type": "preauth",
            "start": 7 * HOUR,
            "amount": 1_000,
            "mid": EXAMPLE_MID,
            "card": DEBIT_CARD,
            "complete": None,
            "after": "preauth_void",
            "after_delay": 60,
        },
    ],
    "runs": [600, 400, 29 * HOUR, 301, 301],
}


def test_a_fixed_day_with_every_twist_on_both_databases(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine, threads=1, inline=True)
    try:
        with DayBuilder().writing(store) as b:
            provision_example(b)
        entries = play_and_check(store, FIXED_PLAN, tmp_path)
    finally:
        store.close()
    assert {e.kind for e in entries} == {"sale", "refund", "completion", "unwind", "reclear"}
