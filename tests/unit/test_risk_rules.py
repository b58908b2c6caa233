"""Rule set documents: the default set loads, every bad document is refused with the exact message naming
the file, the rule and the field, and CEL's safety holds inside posgate (no attribute escape, no eval)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from posgate.risk import vocabulary
from posgate.risk.expressions import ExpressionError, Facts, compile_expression
from posgate.risk.rules import DEFAULT_GROUP, RuleSetError, default_rule_set, load_rule_set, parse_rule_set

BASE: dict[str, Any] = {
    "version": "7",
    "rules": [
        {
            "id": "r1",
            "description": "d",
            "expression": "txn.amount_fen > 1",
            "action": "decline",
            "code": "65",
            "score": 10,
        }
    ],
}


def _refusal(change) -> str:  # type: ignore[no-untyped-def]
    document = copy.deepcopy(BASE)
    change(document)
    with pytest.raises(RuleSetError) as caught:
        parse_rule_set(document, "x.toml")
    return str(caught.value)


def _rule(**fields: Any):  # type: ignore[no-untyped-def]
    return lambda d: d["rules"][0].update(fields)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _rule(action="blok"),
            "x.toml: rule 'r1' field 'action': unknown action 'blok' (one of allow, decline, review, alert, "
            "hold_settlement, suspend_terminal, suspend_merchant)",
        ),
        (_rule(code="05"), "x.toml: rule 'r1' field 'code': a decline needs one of 58, 59, 61, 65, not '05'"),
        (
            _rule(action="alert"),
            "x.toml: rule 'r1' field 'code': only a decline has a code (action is 'alert')",
        ),
        (
            _rule(expression="txn.amout_fen > 1"),
            "x.toml: rule 'r1' field 'expression': unknown name txn.amout_fen",
        ),
        (
            _rule(expression="card_merchant.approved_3m > 1"),
            "x.toml: rule 'r1' field 'expression': unknown name card_merchant.approved_3m",
        ),
        (
            _rule(expression="card.distinct_cards_1h > 1"),
            "x.toml: rule 'r1' field 'expression': unknown name card.distinct_cards_1h",
        ),
        (
            _rule(expression="amount > 1"),
            "x.toml: rule 'r1' field 'expression': unknown name amount: read facts as object.name, objects "
            "txn, card, card_merchant, terminal, merchant, bin, lists",
        ),
        (
            _rule(expression="txn.amount_fen"),
            "x.toml: rule 'r1' field 'expression': evaluates to int, not a boolean",
        ),
        (
            _rule(expression="txn.amount_fen >"),
            "x.toml: rule 'r1' field 'expression': does not parse: line 1 column 17: Syntax error: "
            "mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', "
            "NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}",
        ),
        (_rule(expression=""), "x.toml: rule 'r1' field 'expression': is empty"),
        (_rule(score=101), "x.toml: rule 'r1' field 'score': must be an integer from 0 to 100, not 101"),
        (_rule(score=True), "x.toml: rule 'r1' field 'score': must be an integer from 0 to 100, not True"),
        (_rule(groups=["hotel"]), "x.toml: rule 'r1' field 'groups': unknown group 'hotel' (known: default)"),
        (
            _rule(kinds=["void"]),
            "x.toml: rule 'r1' field 'kinds': unknown kind 'void' (one of sale, preauth, completion, refund)",
        ),
        (
            _rule(automatic=True),
            "x.toml: rule 'r1' field 'automatic': "
            "only suspend_terminal and suspend_merchant may be automatic",
        ),
        (lambda d: d["rules"][0].pop("description"), "x.toml: rule 'r1' field 'description': is missing"),
        (
            _rule(colour="red"),
            "x.toml: rule 'r1' field 'colour': unknown field (known: action, automatic, code, description, "
            "expression, groups, groups_override, id, kinds, score)",
        ),
        (_rule(id="r 1"), "x.toml: rules[0] field 'id': must be letters, digits, '-' or '_', not 'r 1'"),
        (
            lambda d: d.pop("version"),
            "x.toml: field 'version': is required: a non-empty string such as \"2026.12.1\"",
        ),
        (lambda d: d.update(rules=[]), "x.toml: field 'rules': is required: at least one [[rules]] table"),
        (
            lambda d: d["rules"].append(dict(d["rules"][0])),
            "x.toml: rule 'r1' field 'id': is used by two rules",
        ),
        (
            lambda d: d.update(groups={"hotel": {"mccs": ["701"]}}),
            "x.toml: group 'hotel' field 'mccs': an MCC is four digits, not '701'",
        ),
        (
            _rule(groups_override={"default": {"expression": "txn.hour"}}),
            "x.toml: rule 'r1' field 'groups_override.default.expression': evaluates to int, not a boolean",
        ),
        (
            _rule(groups_override={"nowhere": {"score": 1}}),
            "x.toml: rule 'r1' field 'groups_override.nowhere': unknown group 'nowhere' (known: default)",
        ),
        (
            lambda d: d.update(colour="red"),
            "x.toml: field 'colour': unknown field (known: decline_score, description, groups, review_score, "
            "rules, version)",
        ),
    ],
)
def test_a_bad_document_is_refused_naming_the_rule_and_the_field(change, message: str) -> None:  # type: ignore[no-untyped-def]
    assert _refusal(change) == message


def test_the_default_rule_set_loads_and_reads_only_known_names() -> None:
    rules = default_rule_set()
    assert rules.version == "2026.12.1"
    assert len({rule.id for rule in rules.rules}) == len(rules.rules) >= 25
    for obj, name in rules.reads:
        assert vocabulary.is_known(obj, name), (obj, name)
    assert ("card_merchant", "approved", "10m") in rules.aggregates
    assert rules.group_of("7011") == "lodging" and rules.group_of("5311") == DEFAULT_GROUP


def test_a_file_is_loaded_and_a_bad_file_named(tmp_path: Path) -> None:
    good = tmp_path / "rules.toml"
    good.write_text(
        'version = "1"\n[[rules]]\nid = "big"\ndescription = "big"\nexpression = "txn.amount_fen > 100"\n'
        'action = "review"\nscore = 5\n'
    )
    assert load_rule_set(good).rules[0].id == "big"
    bad = tmp_path / "bad.toml"
    bad.write_text("version = \n")
    with pytest.raises(RuleSetError, match=r"bad.toml: not valid TOML: "):
        load_rule_set(bad)
    with pytest.raises(RuleSetError, match=r"missing.toml: cannot read: No such file or directory"):
        load_rule_set(tmp_path / "missing.toml")


def test_group_overrides_replace_the_expression_for_that_group_only() -> None:
    rules = default_rule_set()
    velocity = next(rule for rule in rules.rules if rule.id == "card-merchant-velocity")
    assert velocity.variant("default").expression.text == "card_merchant.approved_10m >= 5"
    assert velocity.variant("lodging").expression.text == "card_merchant.approved_1h >= 10"


@pytest.mark.parametrize(
    "text",
    [
        "txn.__class__ == null",  # attribute escape: no such fact
        "txn.amount_fen.__class__ == null",
        "lists['card_blocked']",  # indexing a whole object: objects are not values
        "__import__('os') == null",
    ],
)
def test_no_expression_reaches_python(text: str) -> None:
    with pytest.raises(ExpressionError):
        compile_expression(text)


def test_a_regex_cannot_backtrack_for_ever() -> None:
    expression = compile_expression("(txn.kind + 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!').matches('^(a+)+$')")
    facts = vocabulary.neutral_facts()
    facts["txn"]["kind"] = "a"
    assert expression.evaluate(Facts(facts)) is False  # linear-time engine: returns at once


def test_a_run_time_failure_is_an_expression_error_in_the_authors_names() -> None:
    expression = compile_expression(
        "merchant.avg_ticket_fen_30d > 0 && txn.amount_fen / merchant.age_days > 2"
    )
    facts = vocabulary.neutral_facts()
    facts["merchant"]["avg_ticket_fen_30d"] = 5
    with pytest.raises(ExpressionError, match="ZeroDivisionError"):
        expression.evaluate(Facts(facts))


def test_the_lists_only_rule_set_keeps_the_rules_that_read_only_lists() -> None:
    from posgate.risk.rules import lists_only

    rules = lists_only(default_rule_set())
    assert rules.version == "2026.12.1+lists"
    assert [rule.id for rule in rules.rules] == [
        "allowed-card",
        "blocked-card",
        "blocked-terminal",
        "blocked-merchant",
        "blocked-bin",
        "restricted-mcc",
        "watched-terminal-or-merchant",
    ]
    assert rules.aggregates == frozenset()
