"""Property-based run of the whole REST API from its own OpenAPI document (schemathesis) against a live
console on loopback: for every operation, requests generated from the schema (valid ones and, with
negative testing, ones that break it) signed with an admin API key. No answer may be a 5xx, and every
4xx of the API is the JSON error `{"error": {"code", "message"}}`.

(The runner is hypothesis over schemathesis' strategies per operation: schemathesis' pytest plugin does not
load under pytest 9.) Short by default (SCHEMATHESIS_EXAMPLES=5 per operation and mode); a longer run:
    SCHEMATHESIS_EXAMPLES=500 .venv/bin/python -m pytest tests/integration/test_api_schemathesis.py
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from tests.integration.live_console import LiveConsole, live_console

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "5"))


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveConsole, str]]:
    with live_console(tmp_path_factory.mktemp("schemathesis")) as live:
        yield live, live.api_key("admin")


@pytest.mark.slow
def test_no_operation_answers_5xx(console: tuple[LiveConsole, str]) -> None:
    live, key = console
    schema = schemathesis.openapi.from_url(f"{live.base_url}/openapi.json")
    headers = {"Authorization": f"Bearer {key}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25, [op.label for op in operations]
    calls = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
            )
            def run(case) -> None:  # type: ignore[no-untyped-def]
                nonlocal calls
                calls += 1
                response = case.call(base_url=live.base_url, headers=headers, timeout=30)
                what = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                assert response.status_code < 500, what
                if 400 <= response.status_code < 500 and response.status_code != 405:
                    error = response.json().get("error", {})
                    assert error.get("code") and error.get("message"), what

            try:
                run()
            except Unsatisfiable:  # nothing to break (a path of free text, no body): no negative case
                continue
            except Exception as failure:
                failures.append(f"{operation.label} [{mode.value}]: {failure}")
    assert calls >= len(operations) * 2
    assert not failures, "\n".join(failures)
