"""Ranking-page submissions under fuzzing: the parser accepts exactly the full permutations, and the page route
answers random forms with a 4xx and stores nothing, or with 303 and stores exactly what was sent."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from app.errors import domain_status
from app.flow import SubmissionError, parse_submission
from app.models import Assignment, Ranking, RankingSkip
from tests.factories import onboarded
from tests.reliability.harness import DESIGNS
from tests.reliability.inproc import start

CRITERIA = ("description", "cultural_relevance", "offensiveness")
N = 3
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

names = st.one_of(
    st.sampled_from([f"rank-{c}-{i}" for c in (*CRITERIA, "unknown") for i in range(-1, N + 2)]),
    st.sampled_from([f"skip-{c}" for c in (*CRITERIA, "unknown")] + ["token", "position", "rank-", "rank--0"]),
    st.text(max_size=12),
)
values = st.one_of(
    st.sampled_from([str(i) for i in range(-1, N + 2)] + ["", " 1", "1.0", "٣", "1e0", "0x1", "１"]),
    st.text(max_size=6),
)
forms = st.dictionaries(names, st.lists(values, min_size=1, max_size=2), max_size=12)


def _valid(form: dict[str, list[str]]) -> bool:
    seen: dict[str, dict[int, str]] = {c: {} for c in CRITERIA}
    skipped = set()
    for key, vals in form.items():
        if len(vals) != 1:
            return False
        if key in ("token", "position"):
            continue
        if key.startswith("skip-") and key[5:] == "offensiveness":
            skipped.add("offensiveness")
            continue
        parts = key.split("-")
        if len(parts) != 3 or parts[0] != "rank" or parts[1] not in CRITERIA or parts[2] not in {"0", "1", "2"}:
            return False
        seen[parts[1]][int(parts[2])] = vals[0]
    for c in CRITERIA:
        if c in skipped:
            continue
        if sorted(seen[c].values()) != ["1", "2", "3"]:
            return False
    return True


@FUZZ
@given(form=forms)
def test_parser_accepts_exactly_complete_permutations(form):
    try:
        sub = parse_submission(form, criteria=CRITERIA, n_items=N, skippable={"offensiveness"})
    except SubmissionError as err:
        assert domain_status(err) == 400 and err.message  # a fixable form: the page comes back with the reason
        assert not _valid(form), f"a valid page was refused: {err.message}"
        return
    assert _valid(form), f"an invalid page was accepted: {form}"
    for crit, ranks in sub.ranks.items():
        assert sorted(ranks) == [1, 2, 3] and crit not in sub.skipped


@given(perms=st.lists(st.permutations([1, 2, 3]), min_size=3, max_size=3), skip=st.booleans())
@settings(max_examples=50, deadline=None, derandomize=True)
def test_every_complete_permutation_is_accepted(perms, skip):
    form = {f"rank-{c}-{i}": [str(r)] for c, p in zip(CRITERIA, perms, strict=True) for i, r in enumerate(p)}
    if skip:
        form["skip-offensiveness"] = ["1"]
    sub = parse_submission(form, criteria=CRITERIA, n_items=N, skippable={"offensiveness"})
    assert set(sub.ranks) == (set(CRITERIA) - {"offensiveness"} if skip else set(CRITERIA))


def test_fuzzed_page_posts_store_nothing_unless_valid(tmp_path):
    study = start(tmp_path, DESIGNS / "demo.toml", "fz")
    c = study.client
    person = onboarded(c, "fz", "korea")
    action, good = person.prepare()
    token = good["token"]
    statuses: dict[int, int] = {}

    def counts() -> tuple[int, int, int]:
        with study.session() as s:
            return (
                s.exec(select(func.count()).select_from(Ranking)).one(),
                s.exec(select(func.count()).select_from(RankingSkip)).one(),
                s.exec(select(func.count()).select_from(Assignment).where(Assignment.submitted_at.is_not(None))).one(),
            )

    @settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(form=forms, keep_token=st.booleans(), raw=st.binary(max_size=200), as_raw=st.booleans())
    def post(form, keep_token, raw, as_raw):
        before = counts()
        body = [(k, v) for k, vs in form.items() for v in vs]
        if keep_token:
            body.append(("token", token))
        if as_raw:
            r = c.post(action, content=raw, headers={"content-type": "application/x-www-form-urlencoded"})
        else:
            r = c.post(action, data=body)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, r.text[:300]
        if r.status_code == 303:  # only a complete, well-formed page with its token can be accepted
            assert keep_token and not as_raw
        else:
            assert 400 <= r.status_code < 500 and counts() == before, (r.status_code, form)
            assert "Traceback" not in r.text

    try:
        post()
        print(f"fuzzed page posts: {sum(statuses.values())}, statuses {dict(sorted(statuses.items()))}")
        assert statuses.get(400, 0) > 0
    finally:
        study.close()
