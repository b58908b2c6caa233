"""The figures of one `posgate bench auth` run: counts by response code, latencies (exact percentiles and a
log-bucketed, HDR-style histogram), CPU seconds and peak RSS of every process, the machine's load — and
their JSON form (the Contract keys of issue 14, last line of standard output) and `posgate bench compare`.

Nothing here talks to the stack; `bench_auth` fills a `BenchReport` and prints what this module renders.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Histogram buckets per decade of milliseconds: each bucket is 10^(1/20) ≈ 12 % wide (HDR-style: the
#: relative error is bounded whatever the value, 0.01 ms to minutes in ~130 buckets).
BUCKETS_PER_DECADE = 20
_MIN_MS = 0.01


def bucket_upper_ms(index: int) -> float:
    """The upper bound of bucket `index` (ms).

    >>> bucket_upper_ms(40), round(bucket_upper_ms(41), 3)
    (1.0, 1.122)
    """
    return round(_MIN_MS * 10 ** (index / BUCKETS_PER_DECADE), 3)


@dataclass
class LatencyHistogram:
    """Log-bucketed counts of latencies: bucket i holds values in (upper(i-1), upper(i)] ms.

    >>> h = LatencyHistogram()
    >>> for v in (0.9, 1.0, 5.0, 5.2):
    ...     h.record(v)
    >>> h.buckets()
    [(1.0, 2), (5.012, 1), (5.623, 1)]
    >>> h.percentile(50), h.total
    (1.0, 4)
    """

    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0

    def record(self, value_ms: float) -> None:
        index = max(0, math.ceil(round(math.log10(max(value_ms, _MIN_MS) / _MIN_MS) * BUCKETS_PER_DECADE, 9)))
        self.counts[index] = self.counts.get(index, 0) + 1
        self.total += 1

    def buckets(self) -> list[tuple[float, int]]:
        """(upper bound ms, count) of the non-empty buckets, in order."""
        return [(bucket_upper_ms(i), self.counts[i]) for i in sorted(self.counts)]

    def percentile(self, p: float) -> float:
        """The upper bound of the bucket holding the nearest-rank `p`th percentile (0.0 when empty)."""
        if not self.total:
            return 0.0
        rank = max(1, math.ceil(p / 100 * self.total))
        seen = 0
        for upper, count in self.buckets():
            seen += count
            if seen >= rank:
                return upper
        return self.buckets()[-1][0]


@dataclass
class ProcessFigures:
    """One process's CPU seconds over the measured window and its peak resident set (VmHWM)."""

    role: str
    pid: int
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0

    def as_json(self, duration_s: float) -> dict[str, Any]:
        return {
            "role": self.role,
            "pid": self.pid,
            "cpu_s": round(self.cpu_s, 2),
            "cpu_share": round(self.cpu_s / duration_s, 3) if duration_s else 0.0,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds `pid` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime (fields 14 and 15)


def process_peak_rss_mb(pid: int) -> float:
    """The peak resident set of `pid` so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class BenchReport:
    """What one run measured. Latencies are those of approved answers after the warm-up: from writing the
    request (closed loop) or from its scheduled send time (open loop, `--rate`) to the MAC-checked answer."""

    duration_s: float
    latencies_ms: list[float] = field(default_factory=list)
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    codes: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    sent: int = 0
    scheduled: int = 0  # open loop: arrivals scheduled over the whole run, warm-up included
    unsent: int = 0  # open loop: arrivals still waiting for a free terminal when the window ended
    processes: list[ProcessFigures] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    host_means_ms: dict[str, float] = field(default_factory=dict)
    host_connections_open: float | None = None  # the host's own count at the end of the window

    @property
    def approved(self) -> int:
        return self.codes.get("00", 0)

    @property
    def tps(self) -> float:
        return self.approved / self.duration_s if self.duration_s else 0.0

    @property
    def stack_cpu_ms_per_approved(self) -> float:
        """CPU milliseconds the stack's processes (not the load generator, not PostgreSQL) spent per
        approved sale: a figure the machine's other load disturbs far less than the rate."""
        stack = sum(p.cpu_s for p in self.processes if p.role.startswith("posgate "))
        return round(stack * 1000 / self.approved, 3) if self.approved else 0.0

    def record(self, code: str, latency_ms: float, approved: bool) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1
        if approved:
            self.latencies_ms.append(latency_ms)
            self.histogram.record(latency_ms)

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the latencies, in ms."""
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        rank = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
        return ordered[rank]

    def as_json(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The run as one JSON object: the Contract keys first, then the details and the parameters."""
        document: dict[str, Any] = {
            "approved_per_s": round(self.tps, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p95_ms": round(self.percentile(95), 2),
            "p99_ms": round(self.percentile(99), 2),
            "approved": self.approved,
            "errors": self.errors,
            "codes": dict(sorted(self.codes.items())),
            "terminals": parameters["terminals"],
            "duration_s": self.duration_s,
            "store": parameters["store"],
            "workers": parameters["workers"],
            "rules": parameters["rules"],
            "p999_ms": round(self.percentile(99.9), 2),
            "max_ms": round(max(self.latencies_ms), 2) if self.latencies_ms else 0.0,
            "sent": self.sent,
            "unsent": self.unsent,
            "scheduled": self.scheduled,
            "histogram_ms": [[upper, count] for upper, count in self.histogram.buckets()],
            "processes": [p.as_json(self.duration_s) for p in self.processes],
            "stack_cpu_ms_per_approved": self.stack_cpu_ms_per_approved,
            "host_means_ms": self.host_means_ms,
            "host_connections_open": self.host_connections_open,
            "load_average_before": list(self.load_before),
            "load_average_after": list(self.load_after),
            "cpus": os.cpu_count(),
        }
        document.update({k: v for k, v in parameters.items() if k not in document})
        return document


#: The host's histograms whose mean over the window `host_means_ms` gives: metric → its label, if any.
_MEANS = {
    "posgate_pipeline_step_seconds": "step",
    "posgate_store_commit_seconds": None,
    "posgate_issuer_round_trip_seconds": "issuer",
    "posgate_pos_request_seconds": "kind",
}


def host_means_ms(before: str, after: str) -> dict[str, float]:
    r"""Mean ms of each pipeline step, commit, issuer round trip and request kind between two scrapes of
    the host's /metrics (the measured window), e.g. `{"step AskIssuer": 2.1, "commit": 0.4, …}`.

    >>> scrape = '# TYPE posgate_store_commit_seconds histogram\n' + (
    ...     'posgate_store_commit_seconds_sum {}\nposgate_store_commit_seconds_count {}\n')
    >>> host_means_ms(scrape.format(1.0, 100), scrape.format(1.5, 300))
    {'commit': 2.5}
    """
    from prometheus_client.parser import text_string_to_metric_families

    def totals(text: str) -> dict[tuple[str, str], list[float]]:
        found: dict[tuple[str, str], list[float]] = {}
        for family in text_string_to_metric_families(text):
            label = _MEANS.get(family.name, "absent")
            if label == "absent":
                continue
            for sample in family.samples:
                if sample.name.endswith(("_sum", "_count")):
                    key = (family.name, sample.labels.get(label, "") if label else "")
                    pair = found.setdefault(key, [0.0, 0.0])
                    pair[0 if sample.name.endswith("_sum") else 1] = sample.value
        return found

    start, end = totals(before), totals(after)
    names = {
        "posgate_pipeline_step_seconds": "step",
        "posgate_store_commit_seconds": "commit",
        "posgate_issuer_round_trip_seconds": "issuer",
        "posgate_pos_request_seconds": "request",
    }
    means = {}
    for (metric, label), (total, count) in sorted(end.items()):
        old_total, old_count = start.get((metric, label), [0.0, 0.0])
        if count > old_count:
            name = f"{names[metric]} {label}".strip()
            means[name] = round((total - old_total) / (count - old_count) * 1000, 3)
    return means


def gauge_value(text: str, name: str) -> float | None:
    r"""The value of the unlabelled gauge `name` in a scrape (None when absent).

    >>> gauge_value("# TYPE posgate_pos_connections_open gauge\nposgate_pos_connections_open 52.0\n",
    ...             "posgate_pos_connections_open")
    52.0
    """
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    return None


#: The figures `compare` sets side by side, and whether more is better.
COMPARED = [
    ("approved_per_s", True),
    ("p50_ms", False),
    ("p95_ms", False),
    ("p99_ms", False),
    ("approved", True),
    ("errors", False),
]


def read_run(path: Path) -> dict[str, Any]:
    """A stored run: the file's last line that is a JSON object (the whole stdout of `--json` is fine)."""
    for line in reversed(path.read_text().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                document = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(document, dict) and "approved_per_s" in document:
                return document
    raise ValueError(f"{path}: no `posgate bench auth --json` object in it")


def compare(baseline: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, float, float, str]]:
    """(figure, baseline, current, change) for the compared figures and each process's CPU and RSS.

    >>> rows = compare({"approved_per_s": 200.0, "p99_ms": 80.0}, {"approved_per_s": 250.0, "p99_ms": 60.0})
    >>> [(name, change) for name, _, _, change in rows]
    [('approved_per_s', '+25.0 % better'), ('p99_ms', '-25.0 % better')]
    """
    rows = []
    for name, more_is_better in COMPARED:
        if name in baseline and name in current:
            rows.append(
                (
                    name,
                    float(baseline[name]),
                    float(current[name]),
                    _change(baseline[name], current[name], more_is_better),
                )
            )
    before = {p["role"]: p for p in baseline.get("processes", [])}
    for process in current.get("processes", []):
        old = before.get(process["role"])
        if old is None:
            continue
        for key in ("cpu_s", "peak_rss_mb"):
            rows.append(
                (
                    f"{process['role']} {key}",
                    float(old[key]),
                    float(process[key]),
                    _change(old[key], process[key], False),
                )
            )
    return rows


def _change(old: float, new: float, more_is_better: bool) -> str:
    if old == new:
        return "same"
    if not old:
        return "new"
    relative = (new - old) / abs(old) * 100
    better = (relative > 0) == more_is_better
    return f"{relative:+.1f} % {'better' if better else 'worse'}"


def describe_settings(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The parameters that differ between two runs (a comparison across them says less)."""
    keys = (
        "terminals",
        "duration_s",
        "store",
        "workers",
        "rules",
        "rate",
        "connections",
        "topology",
        "mix",
        "cards",
    )
    return [
        f"{k}: {baseline.get(k)!r} → {current.get(k)!r}" for k in keys if baseline.get(k) != current.get(k)
    ]
