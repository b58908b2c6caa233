"""`make fuzz`: run every fuzz target under atheris for a number of inputs, then write a summary table.

    python -m tests.fuzz [--runs N] [--timeout-s S] [--out DIR] [target ...]
    python -m tests.fuzz --merge [--out DIR] [--max-files N] [target ...]

Each target runs in its own process (`python -m tests.fuzz.<target> -runs=N …`) with a scratch corpus in
`DIR/work/<target>/` (the repo corpus `tests/fuzz/corpus/<target>/` is read, never written), crash, hang and
slow-input files written to `DIR/crashes/`, and its log to `DIR/logs/<target>.log`. A target whose
one_input raised stops there; the summary says so and names the input that did it. The summary
(inputs, exec/s, coverage, corpus size, result per target) is printed and written to `DIR/summary.md`.
Exit status 1 when any target found something.

`--merge` keeps what a run learnt: libFuzzer's `-merge=1` picks, from the repo corpus and
`DIR/work/<target>/`, a minimal set of inputs with the same coverage; those not yet in the repo are added
as `min-<sha1 prefix>` (at most `--max-files` files per target in all, smallest first).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz._harness import CORPUS_ROOT, FUZZ_DIR

_DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/\S+ .*?exec/s: (\d+)")
_PROGRESS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/\S+ .*?exec/s: (\d+)")
_ONE_INPUT = re.compile(r"^def (one_input|test_one_input|TestOneInput)\(", re.MULTILINE)
_ARTIFACT = re.compile(r"Test unit written to (\S+)")


def all_targets() -> list[str]:
    """Every module of tests/fuzz that defines `one_input` (or atheris' `TestOneInput` / `test_one_input`),
    not `_private`, not `test_*`."""
    return sorted(
        p.stem
        for p in FUZZ_DIR.glob("*.py")
        if not p.stem.startswith(("_", "test_")) and _ONE_INPUT.search(p.read_text())
    )


def _runs_cap(target: str) -> int:
    """A target over TCP (posport: a few dozen inputs a second) sets `RUNS_CAP` so `make fuzz` ends."""
    source = (FUZZ_DIR / f"{target}.py").read_text()
    match = re.search(r"^RUNS_CAP = ([\d_]+)", source, re.MULTILINE)
    return int(match[1]) if match else sys.maxsize


def run_target(target: str, runs: int, timeout_s: int, out: Path, extra: list[str]) -> dict[str, object]:
    work = out / "work" / target
    work.mkdir(parents=True, exist_ok=True)
    (out / "crashes").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    log_path = out / "logs" / f"{target}.log"
    corpus = CORPUS_ROOT / target
    command = [
        sys.executable,
        "-m",
        f"tests.fuzz.{target}",
        f"-runs={runs}",
        f"-timeout={timeout_s}",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        f"-artifact_prefix={out / 'crashes'}/{target}-",
        *extra,
        str(work),
        *([str(corpus)] if corpus.is_dir() else []),
    ]
    started = time.monotonic()
    with log_path.open("w") as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    elapsed = time.monotonic() - started
    text = log_path.read_text(errors="replace")
    done = _DONE.findall(text) or _PROGRESS.findall(text)
    inputs, cov, ft, corp, exec_s = (int(x) for x in done[-1]) if done else (0, 0, 0, 0, 0)
    artifacts = _ARTIFACT.findall(text)
    uncaught = re.findall(r"^(\w+(?:Error|Exception)\b[^\n]*)", text, re.MULTILINE)
    if status == 0:
        result = "no crash, hang or unhandled exception"
    elif "timeout" in text.lower() and "ERROR: libFuzzer: timeout" in text:
        result = f"HANG (over {timeout_s} s): {', '.join(artifacts)}"
    else:
        result = f"FOUND: {uncaught[-1] if uncaught else 'exit ' + str(status)} — {', '.join(artifacts)}"
    return {
        "target": target,
        "inputs": inputs,
        "seconds": round(elapsed),
        "exec_s": exec_s or (round(inputs / elapsed) if elapsed else 0),
        "cov": cov,
        "ft": ft,
        "corpus": corp,
        "result": result,
        "ok": status == 0,
    }


def merge_target(target: str, out: Path, max_files: int) -> int:
    """Add to the repo corpus the minimized inputs of a run; the number of files added."""
    corpus, work = CORPUS_ROOT / target, out / "work" / target
    if not work.is_dir():
        return 0
    with tempfile.TemporaryDirectory(prefix=f"posgate-merge-{target}-") as merged:
        command = [sys.executable, "-m", f"tests.fuzz.{target}", "-merge=1", merged, str(corpus), str(work)]
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        known = {hashlib.sha1(p.read_bytes()).hexdigest() for p in corpus.iterdir() if p.is_file()}
        room = max_files - len(known)
        added = 0
        for path in sorted(Path(merged).iterdir(), key=lambda p: p.stat().st_size):
            digest = hashlib.sha1(path.read_bytes()).hexdigest()
            if digest in known or added >= room:
                continue
            shutil.copyfile(path, corpus / f"min-{digest[:16]}")
            known.add(digest)
            added += 1
    return added


def summary(rows: list[dict[str, object]], runs: int) -> str:
    lines = [
        f"fuzz run of {time.strftime('%Y-%m-%d %H:%M')} — {runs} inputs per target",
        "",
        "| target | inputs | seconds | exec/s | coverage (edges / features) | corpus | result |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['target']} | {r['inputs']:,} | {r['seconds']} | {r['exec_s']:,} | {r['cov']} / {r['ft']} "
            f"| {r['corpus']} | {r['result']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="targets to run (default: all)")
    parser.add_argument("--runs", type=int, default=int(os.environ.get("FUZZ_RUNS", "1000000")))
    parser.add_argument("--timeout-s", type=int, default=10, help="an input slower than this is a hang")
    parser.add_argument("--out", type=Path, default=Path(".fuzz"))
    parser.add_argument("--libfuzzer", default="", help="extra libFuzzer flags, space-separated")
    parser.add_argument("--uncapped", action="store_true", help="ignore a target's RUNS_CAP")
    parser.add_argument("--merge", action="store_true", help="add a run's new coverage to the repo corpus")
    parser.add_argument("--max-files", type=int, default=300, help="corpus files per target at most")
    args = parser.parse_args(argv)
    targets = args.targets or all_targets()
    unknown = sorted(set(targets) - set(all_targets()))
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)}; known: {', '.join(all_targets())}")
    if args.merge:
        for target in targets:
            print(f"{target}: {merge_target(target, args.out, args.max_files)} inputs added", flush=True)
        return 0
    rows = []
    for target in targets:
        runs = args.runs if args.uncapped else min(args.runs, _runs_cap(target))
        print(f"fuzzing {target} for {runs:,} inputs …", flush=True)
        row = run_target(target, runs, args.timeout_s, args.out, args.libfuzzer.split())
        print(
            f"  {row['inputs']:,} inputs, {row['exec_s']:,}/s, cov {row['cov']}: {row['result']}", flush=True
        )
        rows.append(row)
    text = summary(rows, args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
