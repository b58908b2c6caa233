"""`make mutation`: mutation testing of the guard modules with mutmut 3, one group at a time.

Each group in tools/mutation.toml names the code whose mutants count (whole modules, or only some of their
functions and methods) and the fast tests that cover it. A group runs in build/mutation/<group>/: a copy
of src/ and tests/ and a pyproject.toml whose [tool.mutmut] table restricts mutmut to that code and those
tests (SQLite only: `-k "not postgresql"`, but for the tests a group lists in `postgresql`). mutmut then
runs each mutant against just the tests of the selection that execute the mutated function, stopping at
the first failure.

Killed = killed or timed out. Survived = survived, or no selected test reaches the function. A mutant
listed in tools/mutation.toml's [equivalent] table (with the reason it cannot change behaviour) is left
out of the score. The run fails when any group, or all of them together, scores below `threshold_percent`.

    python tools/mutation.py                 # every group, from scratch
    python tools/mutation.py --group ledger  # one group (repeatable)
    python tools/mutation.py --incremental   # keep build/mutation/<group>/mutants (mutmut's cache)
    python tools/mutation.py --retest-survivors  # after adding tests: re-test only what survived

A function a module calls while it is imported (one that builds a table at module level) runs in
mutmut's forked workers before any mutant is active: its mutants never take effect there, and its stats
name only the test that happened to import it. A group lists such functions as `import_time`; after
mutmut, each of their mutants it did not kill is tested again in a fresh interpreter that imports the
module with the mutant active, against all of the group's tests (results in
build/mutation/<group>/import_time.json, which override mutmut's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tools" / "mutation.toml"
WORK = ROOT / "build" / "mutation"
MUTMUT = Path(sys.executable).with_name("mutmut")
KILLED = {"killed", "timeout", "caught by type check"}
TIMEOUT_MULTIPLIER = 60.0
IMPORT_TIME_LIMIT_S = 1800.0  # one import-time mutant against all of its group's tests
# pytest's exit code → verdict: 0 all passed; 1 a test failed; 2 or 4 the mutated import failed (the
# selection collects without a mutant); -1 over IMPORT_TIME_LIMIT_S
IMPORT_TIME_VERDICTS = {0: "survived", 1: "killed", 2: "killed", 4: "killed", -1: "timeout"}
# pytest options for every mutant run: no cache, no doctests or -ra from pyproject's addopts; SQLite only,
# but for the tests a group names in `postgresql` (what only PostgreSQL can show: its row locks), see
# `_selection`
PYTEST_ARGS = ["-p", "no:cacheprovider", "-o", "addopts=--strict-markers"]


@dataclass(frozen=True)
class Target:
    """A module whose mutants count, or only some of its functions (`Class.method` or `function`)."""

    path: str  # relative to src/, e.g. posgate/host/links.py
    only: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.path.removesuffix(".py").replace("/", ".")

    def patterns(self) -> list[str]:
        """mutmut's mutant-name globs for this target."""
        if not self.only:
            return [f"{self.module}.*"]
        globs = []
        for name in self.only:
            cls, _, method = name.rpartition(".")
            mangled = f"xǁ{cls}ǁ{method}" if cls else f"x_{method}"
            globs.append(f"{self.module}.{mangled}__mutmut_*")
        return globs

    def label(self) -> str:
        return self.path + (f" ({', '.join(self.only)})" if self.only else "")


@dataclass
class Group:
    name: str
    targets: list[Target]
    tests: list[str]
    skip_lines: list[str] = field(default_factory=list)
    import_time: list[str] = field(default_factory=list)  # "module.py::function": called at import
    postgresql: list[str] = field(default_factory=list)  # test names run on PostgreSQL too
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    survivors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def load_groups(config: dict) -> list[Group]:  # type: ignore[type-arg]
    groups = []
    for raw in config["group"]:
        targets = []
        for item in raw["mutate"]:
            targets.append(Target(*_split(item)))
        groups.append(
            Group(
                raw["name"],
                targets,
                list(raw["tests"]),
                list(raw.get("skip_lines", [])),
                list(raw.get("import_time", [])),
                list(raw.get("postgresql", [])),
            )
        )
    return groups


def _selection(group: Group) -> list[str]:
    """SQLite runs only, but the PostgreSQL runs of the tests the group names in `postgresql`."""
    return ["-k", " or ".join(["not postgresql", *group.postgresql])]


def prepare(group: Group, incremental: bool, deselect: list[str]) -> Path:
    """build/mutation/<group>/ with fresh copies of src/ and tests/ and the group's pyproject.toml."""
    workdir = WORK / group.name
    if not incremental and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for folder in ("src", "tests"):
        shutil.rmtree(workdir / folder, ignore_errors=True)
        shutil.copytree(ROOT / folder, workdir / folder, ignore=shutil.ignore_patterns("__pycache__"))
    table = {
        "source_paths": ["src/posgate"],
        "only_mutate": sorted({f"src/{t.path}" for t in group.targets}),
        "pytest_add_cli_args_test_selection": group.tests,
        "pytest_add_cli_args": PYTEST_ARGS
        + _selection(group)
        + [arg for test in deselect for arg in ("--deselect", test)],
        "also_copy": ["conftest.py"],
        "do_not_mutate_patterns": group.skip_lines,
        # mutmut stops a mutant after 15× its tests' measured time; on a shared, loaded machine an
        # unchanged end-to-end run exceeds that and an equivalent mutant "times out" (counted killed)
        "timeout_multiplier": TIMEOUT_MULTIPLIER,
    }
    lines = [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    pyproject = (ROOT / "pyproject.toml").read_text()
    (workdir / "pyproject.toml").write_text(pyproject + "\n[tool.mutmut]\n" + "\n".join(lines) + "\n")
    (workdir / ".gitignore").write_text("*\n")
    (workdir / "conftest.py").write_text(ORDER_CONFTEST)
    return workdir


# mutmut hands pytest a mutant's tests in no particular order: run the fast layers first, so that a mutant
# a unit test kills does not wait for the end-to-end tests (the first failure ends the run).
# mutmut's first pass traces every call, and the machine is shared: the end-to-end stack's 1 s issuer
# time-out then turns a slow approval into 98 and fails a clean run. Under mutation the stack waits 5 s
# (a test that sets its own time-out keeps it).
ORDER_CONFTEST = """
import sys

import pytest

LAYERS = ("tests/unit/", "tests/contract/", "tests/integration/", "tests/e2e/")
PATIENT_ISSUER_S = 5.0


def pytest_collection_modifyitems(items):
    def layer(item):
        path = item.nodeid
        return next((n for n, prefix in enumerate(LAYERS) if path.startswith(prefix)), len(LAYERS))

    items.sort(key=layer)


@pytest.fixture(autouse=True)
def _patient_issuer(monkeypatch):
    e2e = sys.modules.get("tests.e2e.conftest")
    if e2e is None:
        return
    original = e2e.stack_settings

    def stack_settings(tmp_path, database_url, **overrides):
        return original(tmp_path, database_url, **{"issuer_timeout_s": PATIENT_ISSUER_S, **overrides})

    for name, module in list(sys.modules.items()):
        if name.startswith("tests.e2e") and getattr(module, "stack_settings", None) is original:
            monkeypatch.setattr(module, "stack_settings", stack_settings)
"""


def run_group(
    group: Group,
    max_children: int,
    incremental: bool,
    deselect: list[str],
    survivors_only: bool = False,
    equivalent: frozenset[str] = frozenset(),
) -> None:
    workdir = prepare(group, incremental or survivors_only, deselect)
    patterns = [p for t in group.targets for p in t.patterns()]
    if survivors_only:  # the same code, more tests: only what was not killed needs testing again
        collect(group)
        patterns = [name for line in group.survivors if (name := line.split(": ")[0]) not in equivalent]
        group.survivors, group.counts = [], {}
        if not patterns:
            collect(group)
            return
    started = time.monotonic()
    with (workdir / "mutmut.log").open("w") as log:
        done = subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(max_children), *patterns],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            check=False,
        )
    if done.returncode != 0:
        tail = (workdir / "mutmut.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"mutation: mutmut failed for group {group.name} (exit {done.returncode}):\n{tail}")
    retest_import_time(group, workdir, deselect, max_children)
    if not survivors_only:
        (workdir / "seconds.txt").write_text(f"{time.monotonic() - started:.0f}\n")
    collect(group)


def _statuses(workdir: Path) -> dict[str, str]:
    """mutmut's verdict for every mutant of the group's last run, by name."""
    listing = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    statuses = {}
    for line in listing.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            statuses[name] = status
    return statuses


def _import_time_patterns(group: Group) -> list[str]:
    return [p for item in group.import_time for p in Target(*_split(item)).patterns()]


def _split(item: str) -> tuple[str, tuple[str, ...]]:
    """ "path.py::A.f,g" → ("path.py", ("A.f", "g"))."""
    path, _, only = item.partition("::")
    return path, tuple(n.strip() for n in only.split(",") if n.strip())


def retest_import_time(group: Group, workdir: Path, deselect: list[str], max_children: int) -> None:
    """Test each not-yet-killed mutant of the group's import-time functions in a fresh interpreter: the
    mutant is active (MUTANT_UNDER_TEST) while `src/` of mutmut's copy is imported, so the module's tables
    are built by the mutated function. First failing test kills it, as with mutmut."""
    patterns = _import_time_patterns(group)
    if not patterns:
        return
    record = workdir / "import_time.json"
    verdicts: dict[str, str] = json.loads(record.read_text()) if record.exists() else {}
    todo = [
        name
        for name, status in sorted(_statuses(workdir).items())
        if status not in KILLED and any(fnmatch(name, p) for p in patterns)
    ]
    command = [sys.executable, "-m", "pytest", "-x", "-q", "--rootdir=.", "-p", "no:randomly", *PYTEST_ARGS]
    command += _selection(group)
    command += [arg for test in deselect for arg in ("--deselect", test)] + group.tests
    base_env = {**os.environ, "PYTHONPATH": "src", "PYTHONDONTWRITEBYTECODE": "1"}
    # without a mutant the selection must collect: a usage error (4) under a mutant is then its import failing
    baseline = subprocess.run(
        [*command, "--collect-only"], cwd=workdir / "mutants", env=base_env, capture_output=True, check=False
    )
    if baseline.returncode != 0:
        raise SystemExit(f"mutation: the import-time re-test does not collect:\n{baseline.stdout[-2000:]!r}")
    running: dict[str, tuple[subprocess.Popen[bytes], float]] = {}
    while todo or running:
        while todo and len(running) < max_children:
            name = todo.pop(0)
            process = subprocess.Popen(
                command,
                cwd=workdir / "mutants",
                env={**base_env, "MUTANT_UNDER_TEST": name},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            running[name] = (process, time.monotonic())
        time.sleep(0.2)
        for name, (process, started) in list(running.items()):
            code = process.poll()
            if code is None and time.monotonic() - started > IMPORT_TIME_LIMIT_S:
                process.kill()
                process.wait()
                code = -1
            if code is None:
                continue
            del running[name]
            verdicts[name] = IMPORT_TIME_VERDICTS.get(code, "")
            if not verdicts[name]:
                raise SystemExit(f"mutation: pytest exited {code} for {name} (import-time re-test)")
    record.write_text(json.dumps(verdicts, indent=1, sort_keys=True) + "\n")


def collect(group: Group) -> None:
    """Read the results of the group's last run from build/mutation/<group>/."""
    workdir = WORK / group.name
    if not (workdir / "mutants").is_dir():
        raise SystemExit(f"mutation: group {group.name} has not run yet (no {workdir}/mutants)")
    seconds = workdir / "seconds.txt"
    group.seconds = float(seconds.read_text()) if seconds.exists() else 0.0
    statuses = _statuses(workdir)
    record = workdir / "import_time.json"
    if record.exists():  # verdicts of the fresh-interpreter re-test override mutmut's for those mutants
        fresh = json.loads(record.read_text())
        statuses.update({name: status for name, status in fresh.items() if name in statuses})
    for target in group.targets:
        counts: Counter[str] = Counter()
        for name, status in sorted(statuses.items()):
            if not any(fnmatch(name, pattern) for pattern in target.patterns()):
                continue
            counts[status] += 1
            if status not in KILLED and status != "not checked":
                group.survivors.append(f"{name}: {status}")
        if not counts:
            raise SystemExit(
                f"mutation: no mutants for {target.label()} — renamed or moved? (tools/mutation.toml)"
            )
        group.counts[target.label()] = counts


def score(counts: Counter[str], equivalent: int) -> tuple[int, int, float]:
    """(killed, counted, percent) with `equivalent` survivors left out of the count."""
    killed = sum(n for status, n in counts.items() if status in KILLED)
    counted = sum(n for status, n in counts.items() if status != "not checked") - equivalent
    return killed, counted, 100.0 * killed / counted if counted else 100.0


def summary(groups: list[Group], equivalent: set[str]) -> list[str]:
    """One row per group: mutants, killed, survived, equivalent, score, run time and the command."""
    rows = [
        "| group | mutants | killed | survived | equivalent | score | run time | command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for group in groups:
        counts: Counter[str] = sum(group.counts.values(), Counter())
        patterns = [p for t in group.targets for p in t.patterns()]
        eq = sum(1 for name in equivalent if any(fnmatch(name, pattern) for pattern in patterns))
        killed, counted, percent = score(counts, eq)
        command = f'`make mutation MUTATION_ARGS="--group {group.name}"`'
        timed_out = f" ({counts['timeout']} timed out)" if counts["timeout"] else ""
        cells = [
            f"`{group.name}`",
            counted + eq,
            f"{killed}{timed_out}",
            counted - killed,
            eq,
            f"**{percent:.1f} %**",
        ]
        rows.append("| " + " | ".join(str(c) for c in [*cells, f"{group.seconds:,.0f} s", command]) + " |")
    return rows


def report(groups: list[Group], equivalent: dict[str, str], threshold: float) -> bool:
    """Print the table (Markdown) and the mutants not killed; True when every group and the total pass."""
    ok = True
    rows = [
        "| group | module | mutants | killed | survived | equivalent | killed % | % of non-equivalent |",
        "|---|---|---|---|---|---|---|---|",
    ]
    not_killed = {line.split(": ")[0] for g in groups for line in g.survivors}
    total: Counter[str] = Counter()
    total_equivalent = 0

    def row(group: str, what: str, counts: Counter[str], eq: int) -> float:
        killed, counted, percent = score(counts, eq)
        raw = 100.0 * killed / (counted + eq) if counted + eq else 100.0
        cells = [group, what, counted + eq, killed, counted - killed, eq, f"{raw:.1f}", f"{percent:.1f}"]
        rows.append("| " + " | ".join(str(cell) for cell in cells) + " |")
        return percent

    for group in groups:
        group_counts: Counter[str] = Counter()
        group_equivalent = 0
        for target in group.targets:
            counts = group.counts[target.label()]
            eq = sum(
                1
                for name in not_killed & equivalent.keys()
                if any(fnmatch(name, pattern) for pattern in target.patterns())
            )
            row(group.name, f"`{target.label()}`", counts, eq)
            group_counts += counts
            group_equivalent += eq
        percent = row(f"**{group.name}**", f"all ({group.seconds:.0f} s)", group_counts, group_equivalent)
        ok = ok and percent >= threshold
        total += group_counts
        total_equivalent += group_equivalent
    ok = row("**total**", "", total, total_equivalent) >= threshold and ok
    print("\n".join(summary(groups, equivalent.keys() & not_killed)))
    print()
    print("\n".join(rows))
    if not_killed:
        print(
            "\nnot killed (`cd build/mutation/<group> && ../../../.venv/bin/mutmut show <name>` shows each):"
        )
        for line in (s for g in groups for s in g.survivors):
            reason = equivalent.get(line.split(": ")[0])
            print(f"  {line}" + (f"  — equivalent: {reason}" if reason else ""))
    patterns = [p for g in groups for t in g.targets for p in t.patterns()]
    for name in sorted(equivalent.keys() - not_killed):
        if any(fnmatch(name, pattern) for pattern in patterns):
            print(f"  note: {name} is listed as equivalent but was killed or no longer exists")
    verdict = "met" if ok else "NOT met"
    print(f"\nthreshold {threshold:g} % (of non-equivalent mutants) per group and in total: {verdict}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--group", action="append", help="run only this group (repeatable)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--incremental", action="store_true", help="reuse earlier results for unchanged code")
    parser.add_argument(
        "--report-only", action="store_true", help="report the last runs' results, run nothing"
    )
    parser.add_argument(
        "--retest-survivors",
        action="store_true",
        help="after adding tests (code unchanged): test again only the mutants the last run did not kill",
    )
    args = parser.parse_args()
    config = tomllib.loads(CONFIG.read_text())
    groups = load_groups(config)
    if args.group:
        unknown = set(args.group) - {g.name for g in groups}
        if unknown:
            parser.error(
                f"unknown group(s) {', '.join(sorted(unknown))}; known: {', '.join(g.name for g in groups)}"
            )
        groups = [g for g in groups if g.name in args.group]
    for group in groups:
        if args.report_only:
            collect(group)
            continue
        print(f"mutation: group {group.name} …", flush=True)
        deselect = list(config.get("deselect", []))
        known = frozenset(config.get("equivalent", {}))
        run_group(group, args.max_children, args.incremental, deselect, args.retest_survivors, known)
    equivalent = {name: reason.strip() for name, reason in config.get("equivalent", {}).items()}
    return 0 if report(groups, equivalent, float(config["threshold_percent"])) else 1


if __name__ == "__main__":
    sys.exit(main())
