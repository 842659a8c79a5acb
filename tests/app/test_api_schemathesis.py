"""Property-based run of schemathesis against the app's own /openapi.json, in-process, with the Bearer header.

schemathesis' pytest plugin does not load under this pytest version, so the operations are driven directly with
their Hypothesis strategies (bounded, derandomized).
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.app.console_support import BEARER, app_client, launch_demo

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 12


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schemathesis")
    with app_client(tmp) as client:
        launch_demo(client, tmp / "images")
        app = client.app
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_schema_covers_the_researcher_api(api_schema):
    labels = {result.ok().label for result in api_schema.get_all_operations()}
    assert {
        "GET /api/rounds",
        "POST /api/rounds",
        "GET /api/rounds/{round_id}",
        "GET /api/rounds/{round_id}/status",
        "POST /api/rounds/{round_id}/pause",
        "POST /api/rounds/{round_id}/resume",
        "POST /api/rounds/{round_id}/close",
        "GET /api/rounds/{round_id}/export",
        "POST /api/rounds/{round_id}/reclaim",
    } <= labels
    raw = api_schema.raw_schema
    close = raw["paths"]["/api/rounds/{round_id}/close"]["post"]
    assert {"401", "404", "409", "422"} <= set(close["responses"])
    assert {"401", "422"} <= set(raw["paths"]["/api/rounds"]["post"]["responses"])
    assert "HTTPBearer" in raw["components"]["securitySchemes"]


def test_api_never_answers_5xx_and_keeps_to_its_schema(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert operations
    seen: Counter[tuple[str, int]] = Counter()
    for operation in operations:

        @given(case=operation.as_strategy(), existing=st.booleans())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def run(case, existing: bool) -> None:
            if existing and "round_id" in (case.path_parameters or {}):
                case.path_parameters["round_id"] = "demo"  # reach the existing round too, not only 404s
            response = case.call_and_validate(headers=BEARER, checks=CHECKS)
            seen[(case.operation.label, response.status_code)] += 1

        run()
    statuses = {status for (_, status) in seen}
    assert 200 in statuses and 404 in statuses and 422 in statuses and 409 in statuses, seen
