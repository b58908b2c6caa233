"""The measurement behind the choice of the risk rules' expression language (docs/risk.md, "Expression
language"): evaluation speed of one representative compiled rule in each candidate engine, and the safety
probes (attribute escapes, unknown names, unbounded work, pathological regular expressions).

    .venv/bin/pip install cel-python rule-engine zen-engine   # common-expression-language is a dependency
    nice -n 10 .venv/bin/python -m tools.risk_engines [--n 20000]

Engines that are not installed are reported as such. Nothing here is used by the product.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

FACTS: dict[str, dict[str, Any]] = {
    "txn": {"kind": "sale", "amount_fen": 499_900, "hour": 2, "card_kind": "credit", "entry_mode": "051"},
    "card": {"approved_10m": 1, "approved_24h": 3, "amount_24h": 900_000, "declined_1h": 0},
    "card_merchant": {"approved_10m": 5, "approved_24h": 6, "amount_24h": 2_400_000},
    "terminal": {"distance_km": 312.5, "declined_10m": 0, "distinct_cards_10m": 2, "idle_days": 0},
    "merchant": {"avg_ticket_fen_30d": 12_000, "hour_share_30d": 0.004, "days_active_30d": 30, "mcc": "5411"},
}
# the same rule in each language: a cash-out / relocated-terminal style conjunction over nested facts
RULE_CEL = (
    "card_merchant.approved_10m >= 5 && txn.amount_fen >= 100000 && "
    "(terminal.distance_km > 50.0 || txn.hour < 6) && merchant.mcc in ['5411', '5311']"
)
RULE_RULE_ENGINE = (
    "card_merchant.approved_10m >= 5 and txn.amount_fen >= 100000 and "
    "(terminal.distance_km > 50.0 or txn.hour < 6) and merchant.mcc in ['5411', '5311']"
)
RULE_ZEN = (
    "card_merchant.approved_10m >= 5 and txn.amount_fen >= 100000 and "
    "(terminal.distance_km > 50 or txn.hour < 6) and merchant.mcc in ['5411', '5311']"
)

# (name, CEL text, rule-engine text, zen text): each should be refused or fail fast and harmlessly
PROBES: list[tuple[str, str, str, str]] = [
    ("dunder attribute", "txn.__class__", "txn.__class__", "txn.__class__"),
    ("unknown name", "txn.amout_fen > 1", "txn.amout_fen > 1", "txn.amout_fen > 1"),
    (
        "catastrophic regex",
        "('a' + 'aaaaaaaaaaaaaaaaaaaaaaaaaaaa!').matches('^(a+)+$')",
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaa!' =~ '^(a+)+$'",
        "matches('aaaaaaaaaaaaaaaaaaaaaaaaaaaaa!', '^(a+)+$')",
    ),
    (
        "huge range / loop",
        "[1,2,3,4,5,6,7,8,9,10].map(a, [1,2,3,4,5,6,7,8,9,10].map(b, a * b)).size() > 0",
        "[1,2,3,4,5,6,7,8,9,10][0] > 0",
        "len(map([0..100000000], # * 2)) > 0",
    ),
]
PROBE_TIMEOUT_S = 5.0


def _cel_rs() -> tuple[Callable[[str], Any], Callable[[Any, dict[str, Any]], Any]]:
    import cel

    return cel.compile, lambda program, facts: program.execute(facts)


def per_transaction_cel_us(n: int, rules: int = 20) -> float:
    """The way posgate runs CEL: the facts converted once per transaction (`cel.Context`), then every rule."""
    import cel

    programs = [cel.compile(RULE_CEL) for _ in range(rules)]
    started = time.perf_counter()
    for _ in range(n):
        context = cel.Context(FACTS)
        for program in programs:
            program.execute(context)
    return (time.perf_counter() - started) / n * 1e6


def _cel_python() -> tuple[Callable[[str], Any], Callable[[Any, dict[str, Any]], Any]]:
    import celpy

    env = celpy.Environment()

    def compile_(text: str) -> Any:
        return env.program(env.compile(text))

    def run(program: Any, facts: dict[str, Any]) -> Any:
        return program.evaluate({k: celpy.json_to_cel(v) for k, v in facts.items()})

    return compile_, run


def _rule_engine() -> tuple[Callable[[str], Any], Callable[[Any, dict[str, Any]], Any]]:
    import rule_engine

    context = rule_engine.Context(resolver=rule_engine.resolve_item)
    return lambda text: rule_engine.Rule(text, context=context), lambda rule, facts: rule.evaluate(facts)


def _zen() -> tuple[Callable[[str], Any], Callable[[Any, dict[str, Any]], Any]]:
    import zen

    return zen.compile_expression, lambda expression, facts: expression.evaluate(facts)


ENGINES: list[tuple[str, Callable[[], Any], str, int]] = [
    ("common-expression-language", _cel_rs, RULE_CEL, 1),
    ("cel-python", _cel_python, RULE_CEL, 1),
    ("rule-engine", _rule_engine, RULE_RULE_ENGINE, 2),
    ("zen-engine", _zen, RULE_ZEN, 3),
]


def measure(name: str, make: Callable[[], Any], text: str, n: int) -> str:
    try:
        compile_, run = make()
    except ImportError:
        return f"| {name} | not installed | | | |"
    program = compile_(text)
    assert run(program, FACTS) in (True, 1), f"{name}: the rule should hit"
    for _ in range(min(n, 500)):
        run(program, FACTS)
    started = time.perf_counter()
    for _ in range(n):
        run(program, FACTS)
    per_eval_us = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for _ in range(50):
        compile_(text)
    compile_us = (time.perf_counter() - started) / 50 * 1e6
    if name == "common-expression-language":
        per_txn_us = per_transaction_cel_us(max(n // 10, 100))
    else:  # no shared conversion: every rule converts the facts again
        per_txn_us = per_eval_us * 20
    return f"| {name} | {per_eval_us:.1f} | {per_txn_us:.0f} | {compile_us:.0f} |"


def _probe_child(engine_index: int, text: str, out: Any) -> None:
    _, make, _, _ = ENGINES[engine_index]
    compile_, run = make()
    try:
        out.put(("value", repr(run(compile_(text), FACTS))[:60]))
    except Exception as error:  # every refusal is an answer here
        out.put(("refused", f"{type(error).__name__}: {str(error).splitlines()[0][:60]}"))


def probe(engine_index: int, text: str) -> str:
    """Run one probe in a child process with a deadline: a hang or a crash is itself the finding."""
    queue: Any = multiprocessing.Queue()
    child = multiprocessing.Process(target=_probe_child, args=(engine_index, text, queue))
    started = time.perf_counter()
    child.start()
    child.join(PROBE_TIMEOUT_S)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if child.is_alive():
        child.kill()
        child.join()
        return f"HUNG > {PROBE_TIMEOUT_S:.0f} s"
    if queue.empty():
        return f"crashed (exit {child.exitcode})"
    kind, detail = queue.get()
    return f"{kind} in {elapsed_ms:.0f} ms: {detail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="evaluations per engine")
    args = parser.parse_args()
    print("| engine | µs per evaluation (compiled) | µs per transaction, 20 rules | µs per compile |")
    print("|---|---|---|---|")
    for name, make, text, _ in ENGINES:
        print(measure(name, make, text, args.n))
    print()
    print("| probe | " + " | ".join(name for name, *_ in ENGINES) + " |")
    print("|---" * (len(ENGINES) + 1) + "|")
    for label, cel_text, rule_engine_text, zen_text in PROBES:
        texts = {1: cel_text, 2: rule_engine_text, 3: zen_text}
        cells = []
        for index, (_, make, _, syntax) in enumerate(ENGINES):
            try:
                make()
            except ImportError:
                cells.append("not installed")
                continue
            cells.append(probe(index, texts[syntax]))
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
