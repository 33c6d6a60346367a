"""schemathesis against the running registry's own OpenAPI document: generated requests (valid and
invalid) never get a 5xx, and every error is a Confluent-style body `{"error_code": int, "message": str}`.
Bounded by MAX_EXAMPLES per operation."""

from __future__ import annotations

import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.reliability.figures import record_figures

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 300 if os.environ.get("REFINERY_SOAK") == "1" else 50


def check(case: schemathesis.Case, statuses: Counter[int]) -> None:
    response = case.call(timeout=30)
    statuses[response.status_code] += 1
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error_code", "message"}, (case.method, case.formatted_path, body)
        # a Confluent code (40401: the status and two digits), or the status itself where Confluent's
        # generic answers have it too (405 for a method a path lacks; 400 for a context name with a colon)
        code = body["error_code"]
        assert isinstance(code, int) and response.status_code in (code, code // 100), (case.path, body)
        assert isinstance(body["message"], str) and body["message"]


def test_no_server_errors_and_confluent_error_bodies(registry_url: str) -> None:
    # Driven by hypothesis directly: schemathesis' pytest plugin does not support our pytest version.
    schema = schemathesis.openapi.from_url(f"{registry_url}/openapi.json")
    statuses: Counter[int] = Counter()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            check(case, statuses)

        run()
    assert operations >= 15
    record_figures("registry_openapi_fuzz", operations=operations, requests=sum(statuses.values()),
                   by_status=dict(sorted(statuses.items())), max_examples=MAX_EXAMPLES)  # fmt: skip
