"""schemathesis over the app's /openapi.json with every check it has, in-process with the Bearer header:
no 5xx anywhere, and a rejected request never leaves anything behind in the database."""

from __future__ import annotations

from collections import Counter

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS, load_all_checks
from sqlmodel import func, select

from app.models import Assignment, AuditLog, Participant, Ranking, Round, RoundImage, RoundPage
from tests.reliability.harness import DESIGNS
from tests.reliability.inproc import RESEARCHER_TOKEN, start

BEARER = {"Authorization": f"Bearer {RESEARCHER_TOKEN}"}
MAX_EXAMPLES = 15
# Known, reported in notes/app-bugs.md: LaunchIn's schema cannot say "exactly one of design_path / design_toml (and of
# manifest_path / manifest_jsonl)", so a schema-valid body such as {"round_id": "x"} gets the documented 422.
KNOWN = {"POST /api/rounds: RejectedPositiveData"}
STATELESS_ONLY = {"use_after_free", "ensure_resource_availability"}  # need a stateful (linked) run


def _all_checks():
    load_all_checks()
    return [c for c in CHECKS.get_all() if c.__name__ not in STATELESS_ONLY]


def _snapshot(study) -> tuple:
    with study.session() as s:
        counts = tuple(
            s.exec(select(func.count()).select_from(t)).one()
            for t in (Round, RoundPage, RoundImage, Participant, Assignment, Ranking)
        )
        audit = s.exec(select(func.count()).select_from(AuditLog)).one()
        statuses = tuple(s.exec(select(Round.id, Round.status).order_by(Round.id)).all())
    return counts, audit, statuses


def test_api_fuzz_all_checks_no_5xx_and_nothing_stored_when_rejected(tmp_path):
    study = start(tmp_path, DESIGNS / "demo.toml", "r1")
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", study.app)
        checks = _all_checks()
        assert len(checks) >= 10
        operations = [r.ok() for r in schema.get_all_operations()]
        assert len(operations) >= 8
        seen: Counter[tuple[str, int]] = Counter()
        failures: list[str] = []

        for operation in operations:

            @given(case=operation.as_strategy(), existing=st.booleans())
            @settings(
                max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
            )
            def run(case, existing: bool) -> None:
                if existing and "round_id" in (case.path_parameters or {}):
                    case.path_parameters["round_id"] = "r1"
                before = _snapshot(study)
                response = case.call(headers=BEARER)
                seen[(case.operation.label, response.status_code)] += 1
                assert response.status_code < 500, f"{case.operation.label}: {response.status_code}"
                if response.status_code >= 400:
                    assert _snapshot(study) == before, f"{case.operation.label} {response.status_code} changed data"
                try:
                    case.validate_response(response, checks=checks, headers=BEARER)
                except (Exception, BaseExceptionGroup) as err:  # noqa: BLE001  (collect every failure, report together)
                    for sub in getattr(err, "exceptions", [err]):
                        failures.append(f"{case.operation.label}: {type(sub).__name__}")

            run()
        total = sum(seen.values())
        fivexx = sum(n for (_, status), n in seen.items() if status >= 500)
        print(f"\nschemathesis: {total} requests over {len(operations)} operations, 5xx: {fivexx}")
        print("statuses:", dict(sorted(Counter(s for (_, s) in seen.elements()).items())))
        assert fivexx == 0
        assert sorted(set(failures) - KNOWN) == []
        assert {s for (_, s) in seen} >= {200, 401, 404, 422} or {s for (_, s) in seen} >= {200, 404, 422}
    finally:
        study.close()
