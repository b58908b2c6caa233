"""`python -m tests.chaos` (what `make chaos` runs): chaos runs with their reports; exit 1 on a violation.

python -m tests.chaos --rounds 50 --seed 7 --variant postgresql/split --variant sqlite/single
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
from pathlib import Path

from tests.chaos.harness import ChaosRun, RunConfig

VARIANTS = ("postgresql/split", "postgresql/two-hosts", "sqlite/split", "sqlite/single")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("CHAOS_ROUNDS", "50")))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", "0")) or None)
    parser.add_argument("--variant", action="append", choices=VARIANTS, help="default: all four")
    parser.add_argument("--terminals", type=int, default=8)
    parser.add_argument("--cards", type=int, default=60)
    parser.add_argument("--double-fault", type=float, default=0.25, help="chance of two faults in a round")
    parser.add_argument("--recovery", type=float, default=60.0, help="seconds allowed to resolve in-doubt")
    parser.add_argument("--out", type=Path, default=None, help="run folders go here (default: a temp dir)")
    args = parser.parse_args()
    seed = args.seed or random.SystemRandom().randrange(1, 10**6)
    out = args.out or Path(tempfile.mkdtemp(prefix="posgate-chaos-"))
    print(f"chaos: seed {seed} (replay with --seed {seed}), runs in {out}", flush=True)
    failed = False
    for variant in args.variant or VARIANTS:
        store, topology = variant.split("/")
        config = RunConfig(
            store=store,
            topology=topology,
            rounds=args.rounds,
            seed=seed,
            terminals=args.terminals,
            cards=args.cards,
            recovery_s=args.recovery,
            double_fault_p=args.double_fault,
        )
        report = asyncio.run(ChaosRun(config, out / variant.replace("/", "-")).run())
        print(report.text(), flush=True)
        failed |= not report.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
