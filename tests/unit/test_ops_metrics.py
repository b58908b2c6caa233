"""The host's cheap per-message histograms give what prometheus-client's own Histogram gives for the same
observations: the same bucket counts, count and sum, in the same exposition."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from posgate.ops.metrics import LATENCY_BUCKETS, STEP_BUCKETS, HostMetrics


def _samples(text: str, family: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        if f.name == family
        for s in f.samples
        if not s.name.endswith("_created")
    }


def test_the_loop_histograms_match_prometheus_clients() -> None:
    rng = random.Random(3)
    metrics = HostMetrics()
    registry = CollectorRegistry()
    steps = Histogram("posgate_pipeline_step_seconds", "x", ["step"], buckets=STEP_BUCKETS, registry=registry)
    requests = Histogram(
        "posgate_pos_request_seconds", "x", ["kind"], buckets=LATENCY_BUCKETS, registry=registry
    )
    for _ in range(2000):
        kind = rng.choice(["sale", "void", "sign-in"])
        # values on the bucket bounds too: `le` is "less than or equal"
        seconds = rng.choice([*LATENCY_BUCKETS, rng.random() * 0.2, 20.0])
        trace = [
            (rng.choice(["AskIssuer", "RecordOutcome"]), rng.choice([50, 100, 1000, rng.randrange(1, 10**6)]))
        ]
        metrics.answered(kind, rng.choice(["00", "55"]), seconds, trace)
        requests.labels(kind).observe(seconds)
        for step, micros in trace:
            steps.labels(step).observe(micros / 1e6)
    ours = metrics.render().decode()
    theirs = generate_latest(registry).decode()
    for family in ("posgate_pipeline_step_seconds", "posgate_pos_request_seconds"):
        mine, reference = _samples(ours, family), _samples(theirs, family)
        assert mine.keys() == reference.keys()
        for key, value in reference.items():
            assert abs(mine[key] - value) < 1e-9, key


def test_messages_are_counted_by_kind_and_code() -> None:
    metrics = HostMetrics()
    for code in ("00", "00", "55"):
        metrics.answered("sale", code, 0.01, [])
    metrics.count("malformed", "30")
    found = _samples(metrics.render().decode(), "posgate_pos_messages")
    assert found == {
        ("posgate_pos_messages_total", (("code", "00"), ("kind", "sale"))): 2.0,
        ("posgate_pos_messages_total", (("code", "55"), ("kind", "sale"))): 1.0,
        ("posgate_pos_messages_total", (("code", "30"), ("kind", "malformed"))): 1.0,
    }
