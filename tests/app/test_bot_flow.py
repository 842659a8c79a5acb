"""Bots walk each shipped design through the plain HTML forms; the export must hold exactly what they gave."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

from sqlmodel import select

from app.export import COLUMNS, write_responses
from app.models import Assignment, Participant, RankingSkip
from study_designs.schema import load_design
from tests.factories import in_order, parse, walk


def export(study, tmp_path: Path) -> list[dict[str, str]]:
    out = tmp_path / "responses.csv"
    with study.session() as s:
        write_responses(s, study.round_id, out)
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0].keys()) == COLUMNS if rows else True
    assert out.read_text().splitlines()[0] == ",".join(COLUMNS)
    return rows


def pseudonyms(study) -> dict[str, Participant]:
    with study.session() as s:
        return {p.code: p for p in s.exec(select(Participant)).all()}


def check_rows_match_walks(rows, walks, study) -> None:
    people = pseudonyms(study)
    by_pid = {people[w.code].pseudonym: w for w in walks}
    seen = Counter()
    for row in rows:
        w = by_pid[row["participant_id"]]
        seen[row["participant_id"]] += 1
        assert row["participant_culture"] == people[w.code].culture
        assert row["page_culture"] == row["participant_culture"]  # same_culture_only
        assert int(row["rank"]) >= 1 and int(row["rank"]) <= int(row["n_items"])
        assert row["moved"] == ("true" if int(row["rank"]) != int(row["initial_position"]) + 1 else "false")
        assert float(row["seconds_on_page"]) >= 0 and row["submitted_at"].endswith("Z")
    for pid, n in seen.items():
        assert n == len(by_pid[pid].given)
    given = Counter(rank for w in walks for rank in w.given.values())
    assert given == Counter(int(r["rank"]) for r in rows)


def test_demo_bots_fill_every_page_to_its_target(make_study, tmp_path):
    study = make_study("demo.toml", "demo")
    design = load_design(study.design_path)
    walks = []
    for culture in ("korea", "nigeria"):
        for _ in range(design.participants_needed(culture)):
            walks.append(walk(study.client, "/s/demo", culture=culture))
            study.clock.advance(seconds=30)
    for w in walks:
        assert "DEMO-DONE" in w.final_html and "Thank you" in w.final_html
        assert w.pages == design.assignment.pages_per_participant + design.quality.attention_checks
    # every page now has its target: the next participant of a culture has nothing left and is told politely
    extra = walk(study.client, "/s/demo", culture="korea")
    assert extra.pages == 0 and "nothing left to rank" in extra.final_html
    other = walk(study.client, "/s/demo", culture="other")
    assert other.pages == 0 and "Thank you for your interest" in other.final_html

    rows = export(study, tmp_path)
    n_models, n_criteria = len(design.models), len(design.criteria)
    per_person = (
        design.assignment.pages_per_participant * n_criteria * n_models + design.quality.attention_checks * n_models
    )
    assert len(rows) == len(walks) * per_person
    check_rows_match_walks(rows, walks, study)

    regular = [r for r in rows if r["is_attention_check"] == "false"]
    per_page = Counter(
        r["page_id"] for r in regular if r["criterion"] == "description" and r["initial_position"] == "0"
    )
    assert set(per_page.values()) == {design.assignment.target_rankings_per_page}
    assert len(per_page) == len(design.pages())
    checks = [r for r in rows if r["is_attention_check"] == "true"]
    assert checks and all(r["attention_passed"] == "true" for r in checks)
    assert all(r["attention_passed"] == "" for r in regular)
    assert all(r["excluded"] == "false" for r in rows)
    for culture in ("korea", "nigeria"):  # Latin square: each model once per position per culture over 4 slots x 2
        pos = Counter(
            (r["model_id"], r["initial_position"])
            for r in regular
            if r["page_culture"] == culture and r["criterion"] == "description"
        )
        assert max(pos.values()) - min(pos.values()) <= 1 and len(pos) == n_models * n_models


def test_demo_skip_failed_check_and_resume(make_study, tmp_path):
    study = make_study("demo.toml", "demo")

    w = walk(  # keeps the shown order, not reading the check: fails the instructed item unless it is last
        study.client,
        "/s/demo",
        culture="nigeria",
        choose=in_order,
        heed_checks=False,
        skip=lambda pos, crit: crit == "offensiveness" and pos == 0,
    )
    with study.session() as s:
        person = s.exec(select(Participant).where(Participant.code == w.code)).one()
        skips = s.exec(select(RankingSkip)).all()
    assert [sk.criterion for sk in skips] == ["offensiveness"]
    rows = export(study, tmp_path)
    with study.session() as s:
        first_page = s.exec(select(Assignment.page_id).where(Assignment.position == 0)).one()
    first = [r for r in rows if r["page_id"] == first_page and r["is_attention_check"] == "false"]
    assert {r["criterion"] for r in first} == {"description", "cultural_relevance", "stereotypes"}
    check = [r for r in rows if r["is_attention_check"] == "true"]
    passed = check[0]["attention_passed"] == "true"
    assert person.failed_checks == (0 if passed else 1)
    assert {r["excluded"] for r in rows} == {"false" if passed else "true"}  # demo excludes after one failure
    design = load_design(study.design_path)
    assert len(rows) == len(w.given)
    assert len(rows) == (4 * 4 - 1) * len(design.models) + len(design.models)


def test_cvpr_bots_with_prolific_ids_resume_and_redirect(make_study, tmp_path):
    study = make_study("scoft-cvpr2024.toml", "cvpr", size=16)
    design = load_design(study.design_path)
    walks = []
    cultures = [c.id for c in design.cultures]
    for i, culture in enumerate([*cultures, cultures[0]]):  # two raters of the first culture: criteria rotate
        params = {"PROLIFIC_PID": f"pid{i:04d}", "STUDY_ID": "study1", "SESSION_ID": f"sess{i}"}
        if i == 0:  # leave half-way, come back from another browser with the same id: same participant, same page
            first = walk(study.client, "/s/cvpr", culture=culture, params=params, stop_after_pages=3)
            study.client.cookies.clear()
            again = study.client.get("/s/cvpr", params=params, follow_redirects=True)
            assert again.url.path == f"/p/{first.code}"
            assert parse(again.text).forms[0].action.endswith("/page/3")
            assert again.text.count('alt="Image ') == first.final_html.count('alt="Image ')
        w = walk(study.client, "/s/cvpr", culture=culture, params=params)
        if i == 0:
            assert w.code == first.code
            w.given.update(first.given)
        study.client.cookies.clear()
        walks.append(w)
        done = w.final_html
        assert "SCOFT2024" in done and 'http-equiv="refresh"' in done
        assert "https://app.prolific.com/submissions/complete?cc=SCOFT2024" in done
    rows = export(study, tmp_path)
    a, q = design.assignment, design.quality
    k, c = len(design.models), len(design.criteria)
    per_person = (a.pages_per_participant + q.repeat_pages) * c * k + q.attention_checks * k
    assert len(rows) == len(walks) * per_person
    check_rows_match_walks(rows, walks, study)
    repeats = [r for r in rows if r["is_repeat"] == "true"]
    assert len(repeats) == len(walks) * q.repeat_pages * c * k
    by_person = defaultdict(set)
    for r in rows:
        if r["is_attention_check"] == "false" and r["is_repeat"] == "false":
            by_person[r["participant_id"]].add(r["page_id"])
    for r in repeats:
        assert r["page_id"] in by_person[r["participant_id"]]
    criteria_orders = set()
    for w in (walks[0], walks[-1]):
        first_page = min(p for p, _, _ in w.given)
        criteria_orders.add(tuple(dict.fromkeys(crit for p, crit, _ in w.given if p == first_page)))
    assert len(criteria_orders) == 2  # counterbalanced criteria order within a culture
    raw = (tmp_path / "responses.csv").read_text()
    assert "pid0000" not in raw and "sess0" not in raw  # raw platform ids never leave the database


def test_network_retries_of_every_page_store_each_answer_once(make_study, tmp_path):
    study = make_study("demo.toml", "demo")
    design = load_design(study.design_path)
    twice = walk(study.client, "/s/demo", culture="korea", retries=2)  # every page posted twice, same token
    once = walk(study.client, "/s/demo", culture="korea")
    assert "DEMO-DONE" in twice.final_html and twice.pages == once.pages == 5
    rows = export(study, tmp_path)
    per_person = 4 * len(design.criteria) * len(design.models) + len(design.models)
    assert len(rows) == 2 * per_person
    check_rows_match_walks(rows, [twice, once], study)
