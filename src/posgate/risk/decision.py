"""The inline risk decision, pure: a rule set and one transaction's facts (aggregates included) → the action,
the 0–100 risk score, the rules that hit and, for a decline, the response code.

Order, as the card networks' own rule engines: every rule that applies to the merchant's group and the
request's kind is evaluated (so hits are recorded for audit, shadow mode and backtests); then an `allow` hit
settles it — approve, nothing else acts; else the first `decline` hit in document order wins; else a
`review` hit, or a total score at or above `review_score`, approves and opens a review. A total score at or
above `decline_score` declines with 59. `alert`, `hold_settlement` and `suspend_*` hits are returned as
`after` actions, to run after the commit, off the latency path. A rule whose expression fails at run time is
reported in `errors` and does not hit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from posgate.risk.expressions import ExpressionError, Facts
from posgate.risk.rules import RuleSet

AFTER_ACTIONS = frozenset({"alert", "hold_settlement", "suspend_terminal", "suspend_merchant"})


@dataclass(frozen=True)
class Hit:
    rule: str
    action: str
    score: int
    code: str | None = None
    automatic: bool = False


@dataclass(frozen=True)
class Decision:
    version: str
    action: str  # approve | review | decline
    score: int  # 0–100
    code: str | None  # the response code of a decline: 58, 59, 61 or 65
    hits: tuple[Hit, ...]
    after: tuple[Hit, ...] = ()  # alert / hold_settlement / suspend_* to run after the commit
    decided_by: str | None = None  # the rule that allowed or declined, or "score"
    errors: tuple[tuple[str, str], ...] = ()  # (rule id, what failed)

    @property
    def declined(self) -> bool:
        return self.action == "decline"

    def summary(self) -> dict[str, Any]:
        """What is stored with the transaction: JSON-ready, no card data."""
        return {
            "version": self.version,
            "action": self.action,
            "score": self.score,
            "code": self.code,
            "decided_by": self.decided_by,
            "hits": [hit.rule for hit in self.hits],
            "errors": [rule for rule, _ in self.errors],
        }


def decide(rules: RuleSet, kind: str, facts: Mapping[str, Mapping[str, Any]]) -> Decision:
    """Evaluate `rules` for a request of `kind` on `facts` (`risk.vocabulary`'s objects; the merchant's group
    is `facts["merchant"]["group"]`)."""
    group = str(facts["merchant"]["group"])
    converted = Facts(facts)
    hits: list[Hit] = []
    errors: list[tuple[str, str]] = []
    for rule, variant in rules.plan(group, kind):
        try:
            hit = variant.expression.evaluate(converted)
        except ExpressionError as error:
            errors.append((rule.id, str(error)))
            continue
        if hit:
            hits.append(Hit(rule.id, rule.action, variant.score, rule.code, rule.automatic))
    score = min(100, sum(hit.score for hit in hits))
    common = {"version": rules.version, "score": score, "hits": tuple(hits), "errors": tuple(errors)}
    allow = next((hit for hit in hits if hit.action == "allow"), None)
    if allow is not None:
        return Decision(action="approve", code=None, decided_by=allow.rule, **common)
    after = tuple(hit for hit in hits if hit.action in AFTER_ACTIONS)
    block = next((hit for hit in hits if hit.action == "decline"), None)
    if block is not None:
        return Decision(action="decline", code=block.code, after=after, decided_by=block.rule, **common)
    if rules.decline_score is not None and score >= rules.decline_score:
        return Decision(action="decline", code="59", after=after, decided_by="score", **common)
    review = next((hit for hit in hits if hit.action == "review"), None)
    if review is not None:
        return Decision(action="review", code=None, after=after, decided_by=review.rule, **common)
    if rules.review_score is not None and score >= rules.review_score:
        return Decision(action="review", code=None, after=after, decided_by="score", **common)
    return Decision(action="approve", code=None, after=after, **common)
