"""Rule sets as documents: a versioned TOML file of merchant groups and rules, validated at load with errors
that name the rule and the field. The shipped default is `default_rules.toml` beside this module.

A rule set::

    version = "2026.12.1"                # required; recorded with every decision it makes
    review_score = 70                    # optional: a total score at or above this opens a review
    decline_score = 100                  # optional: a total score at or above this declines with 59

    [groups.lodging]                     # merchant groups by MCC; a merchant in none is in "default"
    mccs = ["7011"]

    [[rules]]
    id = "card-merchant-velocity"        # unique; letters, digits, '-' and '_'
    description = "…"
    expression = "card_merchant.approved_10m >= 5"    # CEL over `risk.vocabulary`'s names
    action = "decline"                   # allow | decline | review | alert | hold_settlement |
                                         # suspend_terminal | suspend_merchant
    code = "65"                          # decline only: 58, 59, 61 or 65
    score = 40                           # 0–100, added to the transaction's risk score when it hits
    groups = ["*"]                       # merchant groups it applies to ("*": all; the default)
    kinds = ["sale", "preauth"]          # request kinds it applies to (the default)
    automatic = false                    # suspend_* only: act at once (true) or propose to an officer
    [rules.groups_override.lodging]      # per group: another expression and/or score
    expression = "card_merchant.approved_1h >= 10"
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from posgate.errors import ConfigError
from posgate.risk import vocabulary
from posgate.risk.expressions import Expression, ExpressionError, compile_expression

ACTIONS = ("allow", "decline", "review", "alert", "hold_settlement", "suspend_terminal", "suspend_merchant")
DECLINE_CODES = {"58": "terminal not permitted", "59": "suspected fraud", "61": "over amount limit",
                 "65": "over frequency limit"}  # fmt: skip
DEFAULT_KINDS = ("sale", "preauth")
DEFAULT_GROUP = "default"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_MCC = re.compile(r"^\d{4}$")
_RULE_FIELDS = {"id", "description", "expression", "action", "code", "score", "groups", "kinds", "automatic",
                "groups_override"}  # fmt: skip
_TOP_FIELDS = {"version", "description", "review_score", "decline_score", "groups", "rules"}


class RuleSetError(ConfigError):
    """A rule set document is invalid; the message names the file, the rule and the field."""


@dataclass(frozen=True)
class Variant:
    """What a rule evaluates for one merchant group."""

    expression: Expression
    score: int


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    action: str
    code: str | None
    score: int
    groups: frozenset[str] | None  # None: every group
    kinds: frozenset[str]
    automatic: bool
    expression: Expression
    overrides: Mapping[str, Variant] = field(default_factory=dict)

    def applies(self, group: str, kind: str) -> bool:
        return kind in self.kinds and (self.groups is None or group in self.groups)

    def variant(self, group: str) -> Variant:
        override = self.overrides.get(group)
        return override if override is not None else Variant(self.expression, self.score)


@dataclass(frozen=True)
class RuleSet:
    version: str
    description: str
    rules: tuple[Rule, ...]
    groups: Mapping[str, frozenset[str]]  # group → MCCs
    review_score: int | None = None
    decline_score: int | None = None
    source: str = "<memory>"
    _plans: dict[tuple[str, str], tuple[tuple[Rule, Variant], ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def plan(self, group: str, kind: str) -> tuple[tuple[Rule, Variant], ...]:
        """The rules that apply to a merchant group and request kind, in document order, each with the
        variant it evaluates (computed once per group and kind)."""
        key = (group, kind)
        plan = self._plans.get(key)
        if plan is None:
            plan = tuple((rule, rule.variant(group)) for rule in self.rules if rule.applies(group, kind))
            self._plans[key] = plan
        return plan

    def group_of(self, mcc: str) -> str:
        """The merchant group of an MCC: the first group (in document order) listing it, else "default"."""
        for name, mccs in self.groups.items():
            if mcc in mccs:
                return name
        return DEFAULT_GROUP

    @property
    def reads(self) -> frozenset[tuple[str, str]]:
        """Every `object.name` any rule (or override) reads: what the aggregates must provide."""
        names: set[tuple[str, str]] = set()
        for rule in self.rules:
            for variant in (rule.variant(DEFAULT_GROUP), *rule.overrides.values()):
                names.update(variant.expression.reads)
        return frozenset(names)

    @property
    def aggregates(self) -> frozenset[tuple[str, str, str]]:
        """(key, measure, window) of every aggregate the rules read."""
        needed = set()
        for obj, name in self.reads:
            parsed = vocabulary.aggregate_name(obj, name)
            if parsed is not None:
                needed.add((obj, *parsed))
        return frozenset(needed)


def _fail(source: str, where: str, message: str) -> RuleSetError:
    return RuleSetError(f"{source}: {where}: {message}")


def _score(value: Any, source: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise _fail(source, where, f"must be an integer from 0 to 100, not {value!r}")
    return value


def _strings(value: Any, source: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
        raise _fail(source, where, f"must be a non-empty list of strings, not {value!r}")
    return value


def _expression(value: Any, source: str, where: str) -> Expression:
    if not isinstance(value, str):
        raise _fail(source, where, f"must be a string, not {value!r}")
    try:
        return compile_expression(value)
    except ExpressionError as error:
        raise _fail(source, where, str(error)) from None


def _rule(raw: Any, index: int, groups: Mapping[str, frozenset[str]], source: str) -> Rule:
    if not isinstance(raw, dict):
        raise _fail(source, f"rules[{index}]", "must be a table")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        raise _fail(
            source, f"rules[{index}] field 'id'", f"must be letters, digits, '-' or '_', not {rule_id!r}"
        )
    at = f"rule {rule_id!r}"
    unknown = sorted(set(raw) - _RULE_FIELDS)
    if unknown:
        raise _fail(
            source, f"{at} field {unknown[0]!r}", f"unknown field (known: {', '.join(sorted(_RULE_FIELDS))})"
        )
    for required in ("description", "expression", "action", "score"):
        if required not in raw:
            raise _fail(source, f"{at} field {required!r}", "is missing")
    description = raw["description"]
    if not isinstance(description, str) or not description.strip():
        raise _fail(source, f"{at} field 'description'", "must be a non-empty string")
    action = raw["action"]
    if action not in ACTIONS:
        raise _fail(
            source, f"{at} field 'action'", f"unknown action {action!r} (one of {', '.join(ACTIONS)})"
        )
    code = raw.get("code")
    if action == "decline":
        if code not in DECLINE_CODES:
            raise _fail(
                source,
                f"{at} field 'code'",
                f"a decline needs one of {', '.join(DECLINE_CODES)}, not {code!r}",
            )
    elif code is not None:
        raise _fail(source, f"{at} field 'code'", f"only a decline has a code (action is {action!r})")
    automatic = raw.get("automatic", False)
    if not isinstance(automatic, bool):
        raise _fail(source, f"{at} field 'automatic'", f"must be true or false, not {automatic!r}")
    if automatic and not action.startswith("suspend_"):
        raise _fail(
            source, f"{at} field 'automatic'", "only suspend_terminal and suspend_merchant may be automatic"
        )
    known_groups = {*groups, DEFAULT_GROUP}
    rule_groups: frozenset[str] | None = None
    if "groups" in raw:
        names = _strings(raw["groups"], source, f"{at} field 'groups'")
        if "*" not in names:
            for name in names:
                if name not in known_groups:
                    raise _fail(
                        source,
                        f"{at} field 'groups'",
                        f"unknown group {name!r} (known: {', '.join(sorted(known_groups))})",
                    )
            rule_groups = frozenset(names)
    kinds = _strings(raw.get("kinds", list(DEFAULT_KINDS)), source, f"{at} field 'kinds'")
    for kind in kinds:
        if kind not in vocabulary.ASSESSED_KINDS:
            raise _fail(
                source,
                f"{at} field 'kinds'",
                f"unknown kind {kind!r} (one of {', '.join(vocabulary.ASSESSED_KINDS)})",
            )
    score = _score(raw["score"], source, f"{at} field 'score'")
    expression = _expression(raw["expression"], source, f"{at} field 'expression'")
    overrides: dict[str, Variant] = {}
    raw_overrides = raw.get("groups_override", {})
    if not isinstance(raw_overrides, dict):
        raise _fail(source, f"{at} field 'groups_override'", "must be a table of groups")
    for group, override in raw_overrides.items():
        where = f"{at} field 'groups_override.{group}"
        if group not in known_groups:
            raise _fail(
                source, f"{where}'", f"unknown group {group!r} (known: {', '.join(sorted(known_groups))})"
            )
        if not isinstance(override, dict) or not override or set(override) - {"expression", "score"}:
            raise _fail(source, f"{where}'", "must set 'expression' and/or 'score' and nothing else")
        overrides[group] = Variant(
            expression=_expression(override["expression"], source, f"{where}.expression'")
            if "expression" in override
            else expression,
            score=_score(override["score"], source, f"{where}.score'") if "score" in override else score,
        )
    return Rule(
        id=rule_id,
        description=description.strip(),
        action=action,
        code=code,
        score=score,
        groups=rule_groups,
        kinds=frozenset(kinds),
        automatic=automatic,
        expression=expression,
        overrides=overrides,
    )


def parse_rule_set(document: Mapping[str, Any], source: str = "<memory>") -> RuleSet:
    """Validate a parsed document; `RuleSetError` names the first problem (file, rule, field)."""
    unknown = sorted(set(document) - _TOP_FIELDS)
    if unknown:
        raise _fail(
            source, f"field {unknown[0]!r}", f"unknown field (known: {', '.join(sorted(_TOP_FIELDS))})"
        )
    version = document.get("version")
    if not isinstance(version, str) or not version.strip():
        raise _fail(source, "field 'version'", 'is required: a non-empty string such as "2026.12.1"')
    description = document.get("description", "")
    if not isinstance(description, str):
        raise _fail(source, "field 'description'", "must be a string")
    thresholds: dict[str, int | None] = {}
    for name in ("review_score", "decline_score"):
        value = document.get(name)
        thresholds[name] = None if value is None else _score(value, source, f"field {name!r}")
    raw_groups = document.get("groups", {})
    if not isinstance(raw_groups, dict):
        raise _fail(source, "field 'groups'", "must be a table of groups")
    groups: dict[str, frozenset[str]] = {}
    for name, group in raw_groups.items():
        where = f"group {name!r}"
        if not _ID.match(name) or name == DEFAULT_GROUP:
            raise _fail(
                source, where, f"a group name is letters, digits, '-' or '_' and not {DEFAULT_GROUP!r}"
            )
        if not isinstance(group, dict) or set(group) != {"mccs"}:
            raise _fail(source, f"{where} field 'mccs'", 'a group is exactly `mccs = ["5411", …]`')
        mccs = _strings(group["mccs"], source, f"{where} field 'mccs'")
        for mcc in mccs:
            if not _MCC.match(mcc):
                raise _fail(source, f"{where} field 'mccs'", f"an MCC is four digits, not {mcc!r}")
        groups[name] = frozenset(mccs)
    raw_rules = document.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise _fail(source, "field 'rules'", "is required: at least one [[rules]] table")
    rules = [_rule(raw, index, groups, source) for index, raw in enumerate(raw_rules)]
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise _fail(source, f"rule {rule.id!r} field 'id'", "is used by two rules")
        seen.add(rule.id)
    return RuleSet(
        version=version.strip(),
        description=description.strip(),
        rules=tuple(rules),
        groups=groups,
        review_score=thresholds["review_score"],
        decline_score=thresholds["decline_score"],
        source=source,
    )


def load_rule_set(path: Path) -> RuleSet:
    """Read and validate a rule set file."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RuleSetError(f"{path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise RuleSetError(f"{path}: not valid TOML: {error}") from None
    return parse_rule_set(document, source=str(path))


def lists_only(rules: RuleSet) -> RuleSet:
    """The rules of `rules` that read nothing but `lists.*`: list checks without aggregates
    (`risk_rules = lists`)."""
    kept = tuple(
        rule
        for rule in rules.rules
        if all(
            obj == "lists"
            for variant in (rule.variant(DEFAULT_GROUP), *rule.overrides.values())
            for obj, _ in variant.expression.reads
        )
    )
    return RuleSet(
        version=f"{rules.version}+lists",
        description=f"the list rules of {rules.version}",
        rules=kept,
        groups=rules.groups,
        source=rules.source,
    )


def default_rule_set() -> RuleSet:
    """The rule set shipped with posgate (`risk/default_rules.toml`)."""
    text = resources.files("posgate.risk").joinpath("default_rules.toml").read_text(encoding="utf-8")
    return parse_rule_set(tomllib.loads(text), source="default_rules.toml")
