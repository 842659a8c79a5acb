"""Judgments that can be trusted, tested from outside: a careless bot, a no-JS participant who skips, colluding
participants pooling what they see, and the completion code only after the last page is stored."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

from scipy.stats import binomtest
from sqlmodel import func, select

from app.models import Assignment, Participant, Ranking, RankingSkip, RoundImage
from tests.factories import parse, walk

DEMO = Path(__file__).resolve().parents[2] / "study_designs" / "demo.toml"
QUESTIONS = {
    "description": "How well does each image match the description?",
    "offensiveness": "How offensive do you personally find each image?",
}


def roomy(tmp_path: Path, target: int = 40) -> Path:
    path = tmp_path / "roomy.toml"
    path.write_text(DEMO.read_text().replace("target_rankings_per_page = 2", f"target_rankings_per_page = {target}"))
    return path


def counts(study) -> tuple[int, int, int]:
    with study.session() as s:
        return (
            s.exec(select(func.count()).select_from(Ranking)).one(),
            s.exec(select(func.count()).select_from(RankingSkip)).one(),
            s.exec(select(func.count()).select_from(Assignment).where(Assignment.submitted_at.is_not(None))).one(),
        )


def first_page(study, round_id: str):
    w = walk(study.client, f"/s/{round_id}", culture="korea", stop_after_pages=0)
    return w.code, parse(w.final_html).forms[0], w.final_html


def test_careless_bot_posting_the_untouched_page_is_refused_with_every_question_named(make_study):
    study = make_study()
    code, form, _ = first_page(study, "r1")
    before = counts(study)
    r = study.client.post(form.action, data=dict(form.hidden) | {k: "" for k in form.selects}, follow_redirects=False)
    assert r.status_code == 400 and counts(study) == before
    summary = r.text[r.text.index('id="error-summary"') : r.text.index("</div>", r.text.index('id="error-summary"'))]
    linked = re.findall(r'href="#q-([a-z_]+)"', summary)
    criteria = sorted({name.removeprefix("rank-").rsplit("-", 1)[0] for name in form.selects})
    assert sorted(linked) == criteria  # one line per question, linked to its fieldset
    for cid, question in QUESTIONS.items():
        assert f"Rank every image for “{question}”" in r.text  # quoting the question's own text
        assert f'id="err-{cid}"' in r.text
    assert "Too distressing to judge" in r.text.split('id="err-offensiveness"')[1].split("</p>")[0]
    # one question answered, the rest not: the answered one is kept, only the others are flagged
    ranks = {f"rank-description-{i}": str(i + 1) for i in range(3)}
    r = study.client.post(form.action, data=dict(form.hidden) | ranks, follow_redirects=False)
    assert r.status_code == 400 and 'id="err-description"' not in r.text and counts(study) == before
    again = parse(r.text).forms[0]
    assert [again.selects[f"rank-description-{i}"]["selected"] for i in range(3)] == ["1", "2", "3"]


def test_without_javascript_a_ticked_skip_box_ignores_whatever_that_question_sends(make_study):
    study = make_study()
    code, form, _ = first_page(study, "r1")
    data = dict(form.hidden)
    marked = form.marked
    for name in form.selects:
        crit, i = name.removeprefix("rank-").rsplit("-", 1)
        if crit == "offensiveness":
            data[name] = ["", "9" * 50, "\u0661"][int(i)]  # a no-JS browser sends the skipped question's selects
            continue
        order = [j for j in range(3) if j != marked.get(crit)] + ([marked[crit]] if crit in marked else [])
        data[name] = str(order.index(int(i)) + 1)
    data["skip-offensiveness"] = "1"
    r = study.client.post(form.action, data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    with study.session() as s:
        assert s.exec(select(RankingSkip.criterion)).all() == ["offensiveness"]
        assert "offensiveness" not in set(s.exec(select(Ranking.criterion)).all())


def test_completion_code_appears_only_after_the_last_page_is_stored(make_study):
    study = make_study()
    w = walk(study.client, "/s/r1", culture="korea", stop_after_pages=0)
    seen_code_before_last = False
    for _ in range(20):
        page = study.client.get(f"/p/{w.code}")
        form = parse(page.text).forms[0]
        seen_code_before_last |= "DEMO-DONE" in page.text
        last = ">Finish<" in page.text
        bad = study.client.post(form.action, data=dict(form.hidden), follow_redirects=False)
        assert bad.status_code == 400 and "DEMO-DONE" not in bad.text  # a refused last page gives no code
        walk_one = walk(study.client, f"/p/{w.code}", culture="korea", stop_after_pages=1)
        with study.session() as s:
            person = s.exec(select(Participant).where(Participant.code == w.code)).one()
            pending = s.exec(
                select(func.count())
                .select_from(Assignment)
                .where(Assignment.participant_id == person.id, Assignment.submitted_at.is_(None))
            ).one()
        if last:
            assert pending == 0 and person.status == "completed" and person.completed_at is not None
            final = study.client.get(f"/p/{w.code}")
            assert "DEMO-DONE" in final.text
            break
        assert pending > 0 and "DEMO-DONE" not in walk_one.final_html
    else:
        raise AssertionError("never reached the last page")
    assert not seen_code_before_last


def image_srcs(html: str) -> list[str]:
    """The page's image tokens in display order (each image is shown once per question)."""
    return list(dict.fromkeys(re.findall(r'<img src="/i/([^"]+)"', html)))


def test_image_tokens_differ_between_participants_and_resolve_only_within_their_slot(make_study, tmp_path):
    study = make_study(roomy(tmp_path))
    _, _, html_a = first_page(study, "r1")
    seen: dict[str, set[str]] = {}  # image bytes -> tokens seen for it
    tokens_a = image_srcs(html_a)
    pages = [html_a] + [first_page(study, "r1")[2] for _ in range(5)]
    for html in pages:
        for t in image_srcs(html):
            body = study.client.get(f"/i/{t}").content
            seen.setdefault(hashlib.sha256(body).hexdigest(), set()).add(t)
    shared = [toks for toks in seen.values() if len(toks) > 1]
    assert shared  # the same image was shown to several participants ...
    all_tokens = [t for html in pages for t in image_srcs(html)]
    assert len(all_tokens) == len(set(all_tokens))  # ... under a different token every time
    # a token is a capability for one image of one slot: another slot's mac, or a made-up one, finds nothing
    slot_a = tokens_a[0].split(".")[0]
    other = next(t for t in image_srcs(pages[1]))
    for forged in (f"{slot_a}.{other.split('.')[1]}", f"{slot_a}.{'A' * 22}", f"{other.split('.')[0]}.{tokens_a[0]}"):
        assert study.client.get(f"/i/{forged}").status_code == 404
    # the launch-time tokens (same for everyone) no longer open anything
    with study.session() as s:
        launch_token = s.exec(select(RoundImage.token)).first()
    assert study.client.get(f"/i/{launch_token}").status_code == 404


def test_colluders_pooling_everything_they_see_do_no_better_than_chance(make_study, tmp_path):
    """Twenty participants pool orders, tokens, headers, byte sizes, pixel sizes and times of every image they saw.

    What is constant or unique carries nothing: every header but Content-Length is the same for every image,
    every token is unique, every page gives one pixel size. The one attack left is the order: the adversary takes
    the first pooled page as a key (position p = model of that page's image at p) and labels every other pooled
    image by its position. Statistic: the share of correct labels, against chance 1/K, one-sided binomial test.
    """
    study = make_study(roomy(tmp_path))
    with study.session() as s:
        model_of = {
            (r.page_id, hashlib.sha256((study.settings.media_root / r.path).read_bytes()).hexdigest()): r.model_id
            for r in s.exec(select(RoundImage)).all()
        }
        by_bytes = {h: m for (_, h), m in model_of.items()}
    observations = []  # (participant, page number, position, model)
    header_sets: Counter[tuple] = Counter()
    for person in range(20):
        w = walk(study.client, "/s/r1", culture="korea" if person % 2 else "nigeria", record=True)
        pages = [x.body.decode() for x in w.seen if x.method == "GET" and b'<img src="/i/' in x.body]
        for n, html in enumerate(pages):
            sizes = set(re.findall(r'<img src="/i/[^"]+" alt="Image \d+" width="(\d+)" height="(\d+)"', html))
            assert len(sizes) == 1  # the page's size, the same for every image on it
            for pos, t in enumerate(image_srcs(html)):
                r = study.client.get(f"/i/{t}")
                assert r.status_code == 200
                assert "last-modified" not in r.headers and "etag" not in r.headers
                header_sets[
                    tuple(sorted((k, v) for k, v in r.headers.items() if k not in ("content-length", "date")))
                ] += 1
                observations.append((person, n, pos, by_bytes[hashlib.sha256(r.content).hexdigest()]))
    assert len(header_sets) == 1  # identical headers for every image
    key_person, key_page = observations[0][0], observations[0][1]
    key = {pos: m for p, n, pos, m in observations if (p, n) == (key_person, key_page)}
    k = len(key)
    trials = [(m == key[pos]) for p, n, pos, m in observations if (p, n) != (key_person, key_page)]
    hits = sum(trials)
    result = binomtest(hits, len(trials), 1 / k, alternative="greater")
    print(
        f"adversary: {hits}/{len(trials)} right = {hits / len(trials):.3f}; chance {1 / k:.3f}, p = {result.pvalue:.3f}"
    )
    assert result.pvalue > 0.01
    assert len(trials) > 250
