"""`posgate bench auth` and `posgate bench compare`: the authorization bench's options, its printed report
(a table, the processes, the latency histogram; or one JSON object as the last line of standard output with
`--json`) and the comparison of two runs. A thin Typer shell over `posgate.tools.bench_auth`
(docs/performance.md).

Exit codes: 0 done, 2 refused (the message says why).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="data directory [POSGATE_DATA_DIR]")]
DatabaseUrl = Annotated[str | None, typer.Option("--database-url", help="[POSGATE_DATABASE_URL]")]


def bench_auth_command(
    terminals: Annotated[int, typer.Option("--terminals", min=1, max=2000, help="concurrent terminals")] = 16,
    duration: Annotated[float, typer.Option("--duration", min=1, help="measured seconds")] = 20,
    warmup: Annotated[float, typer.Option("--warmup", min=0, help="unmeasured seconds first")] = 3,
    cards: Annotated[
        int,
        typer.Option(
            "--cards", min=0, max=10_000_000, help="distinct card accounts (0: enough for ≤ 4 sales a card)"
        ),
    ] = 0,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
    topology: Annotated[
        str, typer.Option("--topology", help="single: `posgate up`; split: `posgate issuer` + `posgate host`")
    ] = "single",
    mix: Annotated[
        str,
        typer.Option("--mix", help="sale: 0.01 sales back to back; day: the terminal simulator's mixed day"),
    ] = "sale",
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0.1, help="open loop: sales arriving per second (latency from schedule)"),
    ] = None,
    connections: Annotated[
        str, typer.Option("--connections", help="persistent (one per terminal) or per-transaction")
    ] = "persistent",
    risk_rules: Annotated[
        str | None,
        typer.Option("--risk-rules", help="off, lists, default or a rule file (default: the setting)"),
    ] = None,
    profile: Annotated[
        Path | None, typer.Option("--profile", help="directory for py-spy flame graphs of the stack")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the figures as one JSON object (last line of stdout)")
    ] = False,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="a stored --json run: print the difference too")
    ] = None,
    idle_connections: Annotated[
        int,
        typer.Option(
            "--idle-connections", min=0, max=100_000, help="silent connections held open (host RSS)"
        ),
    ] = 0,
) -> None:
    """Approved sales per second and latency percentiles with N terminals against the stack."""
    from posgate.tools.bench_auth import BenchOptions, run_auth_bench

    checks = [
        ("--topology", topology, ("single", "split")),
        ("--mix", mix, ("sale", "day")),
        ("--connections", connections, ("persistent", "per-transaction")),
    ]
    for name, value, allowed in checks:
        if value not in allowed:
            typer.echo(f"posgate bench: {name} must be {' or '.join(allowed)}, got {value!r}", err=True)
            raise typer.Exit(2)
    if mix == "day" and (rate is not None or connections != "persistent"):
        typer.echo("posgate bench: --rate and --connections apply to --mix sale", err=True)
        raise typer.Exit(2)
    options = BenchOptions(
        terminals=terminals,
        duration_s=duration,
        warmup_s=warmup,
        cards=cards,
        database_url=database_url,
        data_dir=data_dir,
        topology=topology,
        mix=mix,
        rate=rate,
        connections=connections,
        risk_rules=risk_rules,
        profile_dir=profile,
        idle_connections=idle_connections,
    )
    report, parameters = run_auth_bench(options)
    document = report.as_json(parameters)
    if not as_json:
        _print_bench_run(document)
    if baseline is not None:
        _print_comparison(baseline, document, to_stderr=as_json)
    if as_json:
        typer.echo(json.dumps(document))


def _print_bench_run(run: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    mode = "closed loop" if run["rate"] is None else f"open loop {run['rate']:g}/s"
    table = Table(
        title=f"posgate bench auth --mix {run['mix']} — {run['terminals']} terminals,"
        f" {run['duration_s']:g} s, {run['store']}, {run['topology']}, {mode}, {run['connections']},"
        f" rules {run['rule_set']}"
    )
    for column in ("approved", "TPS (approved)", "p50 ms", "p95 ms", "p99 ms", "other codes", "errors"):
        table.add_column(column)
    others = ", ".join(f"{c}×{n}" for c, n in run["codes"].items() if c != "00") or "—"
    table.add_row(
        str(run["approved"]),
        f"{run['approved_per_s']:.0f}",
        f"{run['p50_ms']:.1f}",
        f"{run['p95_ms']:.1f}",
        f"{run['p99_ms']:.1f}",
        others,
        str(run["errors"]),
    )
    console.print(table)
    processes = Table(title="processes over the measured window")
    for column in ("process", "pid", "CPU s", "CPU share", "peak RSS MB"):
        processes.add_column(column)
    for p in run["processes"]:
        processes.add_row(
            p["role"],
            str(p["pid"] or "—"),
            f"{p['cpu_s']:.1f}",
            f"{p['cpu_share']:.2f}",
            f"{p['peak_rss_mb']:.0f}" if p["peak_rss_mb"] else "—",
        )
    console.print(processes)
    if run.get("host_means_ms"):
        means = Table(title="the host's own figures over the window (mean ms, from its /metrics)")
        means.add_column("step, commit, issuer round trip, request")
        means.add_column("mean ms")
        for name, ms in run["host_means_ms"].items():
            means.add_row(name, f"{ms:.3f}")
        console.print(means)
    histogram = run["histogram_ms"]
    if histogram:
        peak = max(count for _, count in histogram)
        console.print("latency histogram (approved; bucket upper bound ms: count)")
        for upper, count in histogram:
            console.print(f"  ≤ {upper:>10.2f}  {count:>7}  {'█' * max(1, round(40 * count / peak))}")
    before, after = run["load_average_before"], run["load_average_after"]
    console.print(f"load average (1 min) {before[0]:.2f} → {after[0]:.2f} on {run['cpus']} CPUs")
    if run.get("idle_connections"):
        console.print(
            f"{run['idle_connections']} idle connections held; the host counted"
            f" {run.get('host_connections_open')} connections open at the end"
        )
    for path in run.get("profiles", []):
        console.print(f"flame graph: {path}")
    if run["unsent"]:
        console.print(
            f"[yellow]{run['unsent']} arrivals were never sent: every terminal was busy (--terminals)"
        )


def _print_comparison(baseline_path: Path, current: dict[str, Any], to_stderr: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    from posgate.tools.bench_report import compare, describe_settings, read_run

    baseline = read_run(baseline_path)
    console = Console(stderr=to_stderr)
    for difference in describe_settings(baseline, current):
        console.print(f"[yellow]the runs differ in {difference}")
    table = Table(title=f"against {baseline_path}")
    for column in ("figure", "baseline", "this run", "change"):
        table.add_column(column)
    for name, old, new, change in compare(baseline, current):
        table.add_row(name, f"{old:g}", f"{new:g}", change)
    console.print(table)


def bench_compare_command(
    baseline: Annotated[Path, typer.Argument(help="a stored `posgate bench auth --json` run")],
    current: Annotated[
        Path | None,
        typer.Argument(
            help="another stored run (default: run the bench again with the baseline's parameters)"
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """The difference between a stored run and another one (or a new run with the same parameters)."""
    from posgate.tools.bench_auth import BenchOptions, run_auth_bench
    from posgate.tools.bench_report import read_run

    try:
        stored = read_run(baseline)
        if current is not None:
            _print_comparison(baseline, read_run(current))
            return
    except (OSError, ValueError) as exc:
        typer.echo(f"posgate bench compare: {exc}", err=True)
        raise typer.Exit(2) from None
    if stored["store"] == "postgresql" and not database_url:
        typer.echo("posgate bench compare: the baseline ran on PostgreSQL: give --database-url", err=True)
        raise typer.Exit(2)
    options = BenchOptions(
        terminals=stored["terminals"],
        duration_s=stored["duration_s"],
        warmup_s=stored.get("warmup_s", 3),
        cards=stored.get("cards", 0),
        database_url=database_url if stored["store"] == "postgresql" else None,
        topology=stored.get("topology", "single"),
        mix=stored.get("mix", "sale"),
        rate=stored.get("rate"),
        connections=stored.get("connections", "persistent"),
        risk_rules=stored.get("rule_set"),
    )
    report, parameters = run_auth_bench(options)
    document = report.as_json(parameters)
    _print_bench_run(document)
    _print_comparison(baseline, document)
    typer.echo(json.dumps(document))
