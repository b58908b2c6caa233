"""Backtests: replay stored transactions through a candidate rule set, in the order they happened, with the
aggregates rebuilt as they were at each transaction's time (an in-memory replay of the same counters the
host keeps, warmed with the 30 days before the period) and the lists as they were then (list entries keep
their history). Per rule: hits, would-be declines, the amount at risk, and precision/recall against the
labels the risk officers gave (alerts confirmed as fraud or dismissed). Reads the store, writes nothing.

Field 59 is replayed from `transactions.location` (kept since migration 0016; older ones have none, so
their `terminal.distance_km` is -1).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from posgate.risk.aggregates import (
    RETENTION_S,
    CounterRow,
    Outcome,
    Request,
    counter_rows,
    plan,
    seen_rows,
    summarize,
)
from posgate.risk.decision import decide
from posgate.risk.engine import read_profile
from posgate.risk.facts import Assessment, Profile, build_facts
from posgate.risk.lists import FLAGS, mcc_value
from posgate.risk.rules import RuleSet
from posgate.risk.vocabulary import ASSESSED_KINDS
from posgate.store.models import Transaction
from posgate.store.models_risk import RiskAlert, RiskListEntry
from posgate.txnset import TxnState

WARM_UP = dt.timedelta(days=30)
FINAL_STATES = tuple(state for state in TxnState if state is not TxnState.PENDING)


class MemoryCounters:
    """The host's counters (`risk.counters_store`) kept in memory, fed in time order."""

    def __init__(self) -> None:
        self.buckets: dict[tuple[str, str, str], dict[dt.datetime, list[int]]] = defaultdict(dict)
        self.seen: dict[tuple[str, str], dict[str, dt.datetime]] = defaultdict(dict)

    def record(self, outcome: Outcome) -> None:
        for row in counter_rows(outcome):
            slot = self.buckets[(row.key_kind, row.key_value, row.resolution)]
            current = slot.setdefault(row.bucket_at, [0] * len(row.values))
            for i, value in enumerate(row.values):
                current[i] += value
        for s in seen_rows(outcome):
            members = self.seen[(s.key_kind, s.key_value)]
            if s.member not in members or members[s.member] < s.at:
                members[s.member] = s.at

    def prune(self, now: dt.datetime, seen_s: int = RETENTION_S["d"]) -> None:
        """Drop the buckets no window reaches any more (as `counters_store.prune` does in the store), and the
        distinct-count members last seen more than `seen_s` ago (the longest distinct window a rule set
        reads): reads then scan only what they can use."""
        for (_, _, resolution), slot in self.buckets.items():
            oldest = now - dt.timedelta(seconds=RETENTION_S[resolution])
            for at in [at for at in slot if at < oldest]:
                del slot[at]
        oldest = now - dt.timedelta(seconds=seen_s)
        for members in self.seen.values():
            for member in [m for m, at in members.items() if at < oldest]:
                del members[member]

    def read(
        self, request: Request, aggregates: Iterable[tuple[str, str, str]], now: dt.datetime
    ) -> dict[str, dict[str, Any]]:
        needed = list(aggregates)
        reads = plan(request, needed, now)
        rows = [
            CounterRow(read.key_kind, read.key_value, read.resolution, at, tuple(values))
            for read in reads.counters
            for at, values in self.buckets.get((read.key_kind, read.key_value, read.resolution), {}).items()
            if read.since <= at <= now
        ]
        counts: dict[tuple[str, str], int] = {}
        for read in reads.seen:
            members = self.seen.get((read.key_kind, read.key_value), {}).values()
            for window, since in read.since.items():
                counts[(read.key_kind, window)] = sum(1 for at in members if since <= at <= now)
        return summarize(request, needed, now, rows, counts)


@dataclass
class RuleFigures:
    hits: int = 0
    declines: int = 0  # hits of a declining rule that the decision would have declined for
    amount_at_risk_fen: int = 0  # amount of the transactions it would have declined
    true_positives: int = 0  # hits on transactions labelled fraud
    false_positives: int = 0  # hits on transactions labelled not fraud

    def precision(self) -> float | None:
        labelled = self.true_positives + self.false_positives
        return self.true_positives / labelled if labelled else None


@dataclass
class BacktestReport:
    rules_version: str
    transactions: int = 0
    would_decline: int = 0
    amount_at_risk_fen: int = 0
    labelled_fraud: int = 0
    per_rule: dict[str, RuleFigures] = field(default_factory=lambda: defaultdict(RuleFigures))

    def recall(self, rule: str) -> float | None:
        return self.per_rule[rule].true_positives / self.labelled_fraud if self.labelled_fraud else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rules_version": self.rules_version,
            "transactions": self.transactions,
            "would_decline": self.would_decline,
            "amount_at_risk_fen": self.amount_at_risk_fen,
            "labelled_fraud": self.labelled_fraud,
            "rules": {
                rule: {
                    "hits": f.hits,
                    "declines": f.declines,
                    "amount_at_risk_fen": f.amount_at_risk_fen,
                    "true_positives": f.true_positives,
                    "false_positives": f.false_positives,
                    "precision": f.precision(),
                    "recall": self.recall(rule),
                }
                for rule, f in sorted(self.per_rule.items())
            },
        }


def _transactions(session: Session, start: dt.datetime, end: dt.datetime) -> Iterator[Transaction]:
    query = (
        select(Transaction)
        .where(Transaction.created_at >= start, Transaction.created_at < end)
        .where(Transaction.state.in_(FINAL_STATES))
        .order_by(Transaction.created_at, Transaction.id)
    )
    yield from session.scalars(query).yield_per(1000)


def _flags_at(entries: list[RiskListEntry], txn: Transaction, at: dt.datetime, mcc: str) -> dict[str, bool]:
    flags = dict.fromkeys(FLAGS.values(), False)
    values = {
        "card": {txn.pan_hash},
        "terminal": {txn.tid},
        "merchant": {txn.mid},
        "bin": {(txn.pan_masked or "")[:6]},
        "mcc": {mcc, mcc_value(mcc, txn.card_kind or "debit")} if mcc else set(),
    }
    for e in entries:
        in_force = e.created_at <= at and (e.removed_at is None or e.removed_at > at)
        in_force = in_force and (e.expires_at is None or e.expires_at > at)
        if in_force and e.value in values.get(e.list_kind, ()) and (e.list_kind, e.action) in FLAGS:
            flags[FLAGS[(e.list_kind, e.action)]] = True
    return flags


def run_backtest(
    session: Session, rules: RuleSet, start: dt.datetime, end: dt.datetime, timezone: str = "Asia/Shanghai"
) -> BacktestReport:
    """Replay [start, end) (naive UTC) through `rules`; the 30 days before `start` only feed the counters."""
    zone = ZoneInfo(timezone)
    counters = MemoryCounters()
    report = BacktestReport(rules.version)
    entries = list(session.scalars(select(RiskListEntry)))
    labels = {
        txn_id: state == "confirmed"
        for txn_id, state in session.execute(
            select(RiskAlert.txn_id, RiskAlert.state).where(RiskAlert.state.in_(("confirmed", "dismissed")))
        )
        if txn_id is not None
    }
    profiles: dict[str, Profile] = {}
    aggregates = sorted(rules.aggregates)
    for txn in _transactions(session, start - WARM_UP, end):
        at = txn.created_at
        local = at.replace(tzinfo=dt.UTC).astimezone(zone)
        bin_ = (txn.pan_masked or "")[:6] or None
        assessment = Assessment(
            kind=txn.kind,
            amount_fen=txn.amount_fen,
            tid=txn.tid,
            mid=txn.mid,
            pan_hash=txn.pan_hash,
            bin=bin_,
            card_kind=txn.card_kind,
            entry_mode=txn.entry_mode,
            fallback=txn.fallback,
            location=txn.location,
        )
        if at >= start and txn.kind in ASSESSED_KINDS:
            profile = profiles.get(txn.tid)
            if profile is None:
                profile = read_profile(session, txn.tid) or Profile(None, None, "", None)
                profiles[txn.tid] = profile
            request = Request(txn.pan_hash, bin_, txn.tid, txn.mid, local.hour)
            values = counters.read(request, aggregates, at)
            group = rules.group_of(profile.mcc)
            facts = build_facts(
                assessment,
                profile,
                group,
                values,
                _flags_at(entries, txn, at, profile.mcc),
                at,
                local.replace(tzinfo=None),
            )
            decision = decide(rules, txn.kind, facts)
            report.transactions += 1
            label = labels.get(txn.id)
            report.labelled_fraud += label is True
            if decision.declined:
                report.would_decline += 1
                report.amount_at_risk_fen += txn.amount_fen
            for hit in decision.hits:
                figures = report.per_rule[hit.rule]
                figures.hits += 1
                if decision.declined and decision.decided_by == hit.rule:
                    figures.declines += 1
                    figures.amount_at_risk_fen += txn.amount_fen
                if label is True:
                    figures.true_positives += 1
                elif label is False:
                    figures.false_positives += 1
        approved = txn.response_code == "00"  # as the host counted it when it answered
        outcome = Outcome(
            at,
            txn.kind,
            approved,
            txn.response_code,
            txn.amount_fen,
            txn.pan_hash,
            bin_,
            txn.tid,
            txn.mid,
            local.hour,
        )
        counters.record(outcome)
    return report
