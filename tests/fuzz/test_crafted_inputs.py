"""Crafted input on SQLite and PostgreSQL: each case the issue found gets a 4xx with a clear message, never a 500,
and stores nothing; then a fuzz over path parameters (huge integers, non-ASCII, NUL) on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from app.models import Assignment, AuditLog, Participant, Ranking, RankingSkip
from tests.factories import onboarded
from tests.factories.postgres import pg_schema
from tests.reliability.harness import DESIGNS
from tests.reliability.inproc import start


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path: Path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'study.db'}"
        return
    with pg_schema() as url:
        yield url


@pytest.fixture
def on_page(database_url, tmp_path):
    study = start(tmp_path, DESIGNS / "demo.toml", "cr", database_url=database_url, raise_server_exceptions=False)
    person = onboarded(study.client, "cr", "korea")
    code = person.code
    action, good = person.prepare()
    yield study, code, action, good
    study.close()


def stored(study) -> tuple[int, ...]:
    with study.session() as s:
        return (
            s.exec(select(func.count()).select_from(Participant)).one(),
            s.exec(select(func.count()).select_from(Ranking)).one(),
            s.exec(select(func.count()).select_from(RankingSkip)).one(),
            s.exec(select(func.count()).select_from(Assignment).where(Assignment.submitted_at.is_not(None))).one(),
            s.exec(select(func.count()).select_from(AuditLog)).one(),
        )


FIELD_CASES = {
    "5,000-digit rank": ("rank-description-0", "9" * 5000, "Choose a rank from 1 to 3"),
    "Arabic-Indic digit": ("rank-description-0", "\u0661", "Choose a rank from 1 to 3"),
    "full-width digit": ("rank-description-0", "\uff11", "Choose a rank from 1 to 3"),
    "NUL in a rank": ("rank-description-0", "1\x00", "Choose a rank from 1 to 3"),
    "NUL in a field name": ("rank-description-0\x00", "1", "Unknown field"),
    "non-ASCII field name": ("rank-d\u00e9scription-0", "1", "Unknown field"),
    "non-ASCII token": ("token", "t\u00f6ken\u0661", "stale token"),
    "NUL in the token": ("token", "abc\x00", "stale token"),
}


@pytest.mark.parametrize("case", list(FIELD_CASES))
def test_crafted_field_gets_a_clear_4xx_and_stores_nothing(on_page, case):
    study, _, action, good = on_page
    field, value, reason = FIELD_CASES[case]
    before = stored(study)
    r = study.client.post(action, data=good | {field: value}, follow_redirects=False)
    assert 400 <= r.status_code < 500 and reason in r.text, (r.status_code, r.text[:400])
    assert stored(study) == before
    assert study.client.post(action, data=good, follow_redirects=False).status_code == 303  # still answerable


PATH_CASES = {
    "position 2^63": "/p/{code}/page/9223372036854775808",
    "position 2^31": "/p/{code}/page/2147483648",
    "position 2^64 + 1": "/p/{code}/page/18446744073709551617",
    "negative position": "/p/{code}/page/-1",
    "non-ASCII position": "/p/{code}/page/\u0661",
    "NUL in the code": "/p/{code}%00/page/0",
    "non-ASCII code": "/p/{code}\u00e9/page/0",
    "5,000-character code": "/p/" + "a" * 5000 + "/page/0",
}


@pytest.mark.parametrize("case", list(PATH_CASES))
def test_crafted_path_gets_a_clear_4xx_and_stores_nothing(on_page, case):
    study, code, _, good = on_page
    before = stored(study)
    r = study.client.post(PATH_CASES[case].format(code=code), data=good, follow_redirects=False)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:400])
    assert "Traceback" not in r.text and any(m in r.text for m in ("not part of your study", "participant link"))
    assert stored(study) == before


GET_CASES = [
    "/p/%00",
    "/p/\u00e9\u0661",
    "/i/%00",
    "/i/\u00e9.\u0661",
    "/i/" + "a" * 24 + "." + "\u0661" * 22,
    "/s/%00",
    "/s/r\u00e9",
    "/s/" + "r" * 5000,
    "/s/cr?PROLIFIC_PID=%00&STUDY_ID=x",
    "/s/cr?workerId=w%0A&hitId=h",
]


@pytest.mark.parametrize("url", GET_CASES)
def test_crafted_gets_are_4xx(on_page, url):
    study, *_ = on_page
    before = stored(study)
    r = study.client.get(url, follow_redirects=False)
    assert 400 <= r.status_code < 500 and "Traceback" not in r.text, (r.status_code, r.text[:300])
    assert stored(study) == before


segments = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(max_size=30),
    st.sampled_from(["\x00", "\u0661\u0662", "\uff11", "9" * 400, "%00", "..", "é"]),
)


def test_fuzzed_path_parameters_never_500(on_page):
    study, code, _, good = on_page
    c = study.client

    @settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(a=segments, b=segments, which=st.integers(0, 4))
    def probe(a, b, which):
        before = stored(study)
        quoted_a, quoted_b = a, b
        urls = [
            ("post", f"/p/{code}/page/{quoted_a}"),
            ("post", f"/p/{quoted_a}/page/{quoted_b}"),
            ("get", f"/p/{quoted_a}"),
            ("get", f"/i/{quoted_a}.{quoted_b}"),
            ("get", f"/s/{quoted_a}"),
        ]
        method, url = urls[which]
        try:
            r = c.post(url, data=good) if method == "post" else c.get(url, follow_redirects=False)
        except Exception as err:  # a URL the HTTP client itself refuses to send (e.g. a raw control character)
            if type(err).__name__ != "InvalidURL":
                raise
            return
        assert r.status_code < 500, (url, r.status_code, r.text[:300])
        if r.status_code != 303:
            assert stored(study) == before

    probe()
