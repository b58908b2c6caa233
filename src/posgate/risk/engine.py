"""`RiskEngine`: the shell the host's risk step calls. `assess` reads the terminal's and merchant's profile
and the aggregates the rule set needs in one unit of work, builds the facts and returns the pure decision;
`record` adds a finished request to the counters (after the commit, off the latency path).

The rule set is fixed for the engine's life (a new version means a new engine); the clock is injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, String, text
from sqlalchemy import column as sa_column
from sqlalchemy.orm import Session

from posgate.risk.aggregates import Outcome, Request
from posgate.risk.alerts import alerts_for, open_alerts
from posgate.risk.counters_store import prune, read_aggregates, record_outcome
from posgate.risk.decision import Decision, decide
from posgate.risk.disposal import apply_after_actions
from posgate.risk.facts import Assessment, Profile, build_facts
from posgate.risk.geo import parse_location
from posgate.risk.lists import list_flags
from posgate.risk.rules import RuleSet
from posgate.risk.vocabulary import ASSESSED_KINDS
from posgate.store.runtime import Store


def _utc(now: dt.datetime) -> dt.datetime:
    """Naive UTC, as the store keeps times."""
    return now.astimezone(dt.UTC).replace(tzinfo=None) if now.tzinfo else now


log = logging.getLogger("posgate.risk")
PRUNE_INTERVAL_S = 600.0

_PROFILE = text(
    "SELECT t.location, t.created_at, m.mcc, m.live_at, m.created_at FROM terminals t "
    "JOIN merchants m ON m.id = t.merchant_id WHERE t.tid = :tid"
).columns(
    sa_column("location", String()),
    sa_column("t_created", DateTime()),
    sa_column("mcc", String()),
    sa_column("live_at", DateTime()),
    sa_column("m_created", DateTime()),
)
_SCORE = text(
    "UPDATE transactions SET risk_score = :score, risk = :risk, location = :location WHERE id = :id"
)


def stored_location(text: str | None) -> str | None:
    """Field 59 as kept with the transaction: `lat,lon` normalised, or None when missing or malformed.

    >>> stored_location(" 22.5431 , 114.0579 "), stored_location("here")
    ('22.5431,114.0579', None)
    """
    point = parse_location(text)
    return None if point is None else f"{point[0]},{point[1]}"


def read_profile(session: Session, tid: str) -> Profile | None:
    """The terminal's registered location and age, its merchant's MCC and start; None for an unknown TID."""
    row = session.connection().execute(_PROFILE, {"tid": tid}).one_or_none()
    if row is None:
        return None
    return Profile(
        terminal_location=row[0], terminal_created_at=row[1], mcc=row[2], merchant_since=row[3] or row[4]
    )


class RiskEngine:
    """Assess requests against one rule set, with aggregates from one store."""

    def __init__(
        self,
        store: Store,
        rules: RuleSet,
        timezone: str = "Asia/Shanghai",
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        shadow: RuleSet | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.shadow = shadow  # a candidate rule set: evaluated and recorded beside the live one, never acting
        self.zone = ZoneInfo(timezone)
        self.clock = clock
        self.aggregates = sorted(rules.aggregates | (shadow.aggregates if shadow else frozenset()))

        # a rule set that reads no aggregate (lists only) neither reads nor keeps counters
        self.counting = bool(self.aggregates)
        self._pruning: asyncio.Task[None] | None = None

    def _local(self, now: dt.datetime) -> dt.datetime:
        aware = now if now.tzinfo else now.replace(tzinfo=dt.UTC)
        return aware.astimezone(self.zone)

    def assess_in(
        self,
        session: Session,
        assessment: Assessment,
        now: dt.datetime,
        lists: Mapping[str, bool] | None = None,
    ) -> Decision:
        """Decide within an open unit of work (the host's, or a backtest's)."""
        return self.assess_both(session, assessment, now, lists)[0]

    def assess_both(
        self,
        session: Session,
        assessment: Assessment,
        now: dt.datetime,
        lists: Mapping[str, bool] | None = None,
    ) -> tuple[Decision, Decision | None]:
        """The live decision and, with a shadow rule set, the shadow's on the same facts (it never acts)."""
        if assessment.kind not in ASSESSED_KINDS:
            raise ValueError(f"risk assesses {', '.join(ASSESSED_KINDS)}, not {assessment.kind!r}")
        utc, local = _utc(now), self._local(now)
        profile = read_profile(session, assessment.tid) or Profile(None, None, "", None)
        request = Request(assessment.pan_hash, assessment.bin, assessment.tid, assessment.mid, local.hour)
        aggregates = read_aggregates(session, request, self.aggregates, utc) if self.counting else {}
        flags = list_flags(
            session,
            utc,
            assessment.pan_hash,
            assessment.tid,
            assessment.mid,
            assessment.bin,
            profile.mcc,
            assessment.card_kind,
        )
        flags.update(lists or {})
        group = self.rules.group_of(profile.mcc)
        facts = build_facts(assessment, profile, group, aggregates, flags, utc, local.replace(tzinfo=None))
        shadow = None
        if self.shadow is not None:
            shadow_group = self.shadow.group_of(profile.mcc)
            shadow_facts = {**facts, "merchant": {**facts["merchant"], "group": shadow_group}}
            shadow = decide(self.shadow, assessment.kind, shadow_facts)
        return decide(self.rules, assessment.kind, facts), shadow

    async def assess(
        self, assessment: Assessment, lists: Mapping[str, bool] | None = None, txn_id: int | None = None
    ) -> Decision:
        """The inline decision for one request, in one unit of work that also stores the score, the
        decision's summary and the terminal's reported location (field 59) on the transaction `txn_id`
        (when given)."""
        now = self.clock()

        def work(session: Session) -> Decision:
            decision, shadow = self.assess_both(session, assessment, now, lists)
            if txn_id is not None:
                recorded = decision.summary()
                if shadow is not None:
                    recorded["shadow"] = shadow.summary()
                summary = json.dumps(recorded, separators=(",", ":"))
                values = {"score": decision.score, "risk": summary, "id": txn_id}
                values["location"] = stored_location(assessment.location)
                session.connection().execute(_SCORE, values)
            return decision

        return await self.store.run(work)

    def outcome(
        self, assessment: Assessment, approved: bool, response_code: str | None, at: dt.datetime | None = None
    ) -> Outcome:
        """The finished request as the counters take it."""
        when = at or self.clock()
        return Outcome(
            at=_utc(when),
            kind=assessment.kind,
            approved=approved,
            response_code=response_code,
            amount_fen=assessment.amount_fen,
            pan_hash=assessment.pan_hash,
            bin=assessment.bin,
            tid=assessment.tid,
            mid=assessment.mid,
            local_hour=self._local(when).hour,
        )

    async def record(self, outcome: Outcome) -> None:
        """Add a finished request to the counters (its own unit of work); nothing when not `counting`."""
        if self.counting:
            await self.store.run(lambda session: record_outcome(session, outcome))

    async def raise_alerts(
        self,
        decision: Decision,
        assessment: Assessment,
        txn_id: int | None,
        pan_masked: str | None,
        response_code: str | None,
    ) -> list[int]:
        """Open the alerts the decision asks for and do what the rules do by themselves — hold the merchant's
        settlement, an automatic suspension (`disposal.apply_after_actions`) — in one unit of work, after the
        outcome's; the alerts' ids."""
        if not alerts_for(decision):
            return []
        now = _utc(self.clock())

        def work(session: Session) -> list[int]:
            ids = open_alerts(
                session,
                decision,
                now,
                txn_id=txn_id,
                kind=assessment.kind,
                tid=assessment.tid,
                mid=assessment.mid,
                pan_masked=pan_masked,
                amount_fen=assessment.amount_fen,
                response_code=response_code,
            )
            opened = [
                (i, action, auto) for i, (_, action, auto) in zip(ids, alerts_for(decision), strict=True)
            ]
            done = apply_after_actions(session, opened, assessment.tid, assessment.mid, decision.version, now)
            if done:
                log.info(
                    "risk %s on tid %s mid %s: %s", decision.version, assessment.tid, assessment.mid, done
                )
            return ids

        return await self.store.run(work)

    async def prune_once(self) -> int:
        """Delete the buckets and members no window reaches any more; how many rows went."""
        now = _utc(self.clock())
        return await self.store.run(lambda session: prune(session, now))

    def start_pruning(self, interval_s: float = PRUNE_INTERVAL_S) -> None:
        """Prune every `interval_s` in the background (every node may: deleting twice is harmless)."""

        async def run() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    removed = await self.prune_once()
                    log.debug("risk counters pruned: %d rows", removed)
                except Exception:
                    log.exception("pruning the risk counters failed; next try in %.0f s", interval_s)

        self._pruning = asyncio.create_task(run(), name="risk-prune")

    async def stop(self) -> None:
        if self._pruning is not None:
            self._pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruning
            self._pruning = None
