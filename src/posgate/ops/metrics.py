"""The host's Prometheus metrics (prometheus-client), in a registry of their own per host process.

What is counted and where it comes from:

- `posgate_pos_messages_total{kind,code}`: every answered POS request, by kind (`sale`, `sign_in`, …,
  `malformed` for a message that could not be decoded) and field 39 as the terminal got it (`PosServer`);
- `posgate_pos_request_seconds{kind}`: decoded request → composed answer;
- `posgate_pipeline_step_seconds{step}`: each step's prepare + commit, from the run's trace;
- `posgate_issuer_round_trip_seconds{issuer}`: request written on the issuer link → its reply, echo tests
  included; `posgate_issuer_link_up{issuer}`: 1 while the link is signed on;
- `posgate_store_commit_seconds`: the commit of each unit of work of this process;
- `posgate_saf_queue_depth`: store-and-forward entries not yet delivered (read from the store when scraped);
- `posgate_pos_connections_open`: terminal connections open now.

No label carries card data, a TID, a MID or an amount: kinds, response codes, step and issuer names only
(`tests/e2e/test_ops_endpoints.py` checks a scrape for PANs).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

#: Seconds: 0.5 ms to 10 s, roughly ×2 apart (a POS answer should take a few ms; a time-out is 10 s+).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Seconds, for steps and commits: 50 µs to 1 s.
STEP_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class _LoopHistogram:
    """Bucket counts and a sum per label value, kept with plain lists: one `bisect` and two additions per
    observation, about a tenth of prometheus-client's `labels(…).observe` (which locks and looks the child
    up). For the event loop's thread only — the host's messages and steps all end there."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.upper = buckets
        self.by_label: dict[str, tuple[list[int], list[float]]] = {}

    def observe(self, label: str, value: float) -> None:
        entry = self.by_label.get(label)
        if entry is None:
            entry = self.by_label[label] = ([0] * (len(self.upper) + 1), [0.0])
        entry[0][bisect_left(self.upper, value)] += 1
        entry[1][0] += value

    def family(self, name: str, documentation: str, label: str) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation, labels=[label])
        for value, (counts, total) in sorted(self.by_label.items()):
            cumulative, buckets = 0, []
            for upper, count in zip([*map(floatToGoString, self.upper), "+Inf"], counts, strict=True):
                cumulative += count
                buckets.append((upper, cumulative))
            family.add_metric([value], buckets, total[0])
        return family


class _MessageCollector(Collector):
    """`posgate_pos_messages_total`, `posgate_pos_request_seconds` and `posgate_pipeline_step_seconds`,
    rendered from the plain counts at scrape time."""

    def __init__(self) -> None:
        self.messages: dict[tuple[str, str], int] = {}
        self.requests = _LoopHistogram(LATENCY_BUCKETS)
        self.steps = _LoopHistogram(STEP_BUCKETS)

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        counter = CounterMetricFamily(
            "posgate_pos_messages",
            "POS requests answered, by kind and response code",
            labels=["kind", "code"],
        )
        for (kind, code), count in sorted(self.messages.items()):
            counter.add_metric([kind, code], count)
        yield counter
        yield self.requests.family(
            "posgate_pos_request_seconds", "Decoded POS request to composed answer", "kind"
        )
        yield self.steps.family(
            "posgate_pipeline_step_seconds", "One pipeline step (prepare and commit)", "step"
        )


class HostMetrics:
    """The collectors of one host process; `render()` is the `/metrics` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._messages = _MessageCollector()
        r.register(self._messages)
        self.issuer_seconds = Histogram(
            "posgate_issuer_round_trip_seconds",
            "Request written on the issuer link to its reply",
            ["issuer"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "posgate_store_commit_seconds",
            "Commit of one unit of work of this process",
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.link_up = Gauge(
            "posgate_issuer_link_up", "1 while the issuer link is signed on", ["issuer"], registry=r
        )
        self.saf_depth = Gauge(
            "posgate_saf_queue_depth", "Store-and-forward entries not yet delivered", registry=r
        )
        self.connections = Gauge("posgate_pos_connections_open", "Terminal connections open", registry=r)

    def answered(self, kind: str, code: str, seconds: float, steps: Iterable[tuple[str, int]]) -> None:
        """One POS request answered with `code` after `seconds`; `steps`: (step name, µs) of its trace.
        On the event loop's thread."""
        collector = self._messages
        collector.messages[kind, code] = collector.messages.get((kind, code), 0) + 1
        collector.requests.observe(kind, seconds)
        observe = collector.steps.observe
        for step, micros in steps:
            observe(step, micros / 1e6)

    def count(self, kind: str, code: str) -> None:
        """An answer that ran no pipeline (`malformed` → 30, `failed` → 96)."""
        messages = self._messages.messages
        messages[kind, code] = messages.get((kind, code), 0) + 1

    def issuer_observer(self, issuer: str) -> Callable[[float], None]:
        """The round-trip observer an issuer link calls with seconds."""
        return self.issuer_seconds.labels(issuer).observe

    def render(self) -> bytes:
        return generate_latest(self.registry)
