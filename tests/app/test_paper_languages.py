"""The paper's study in each of its languages, over HTTP: a browser asking for Chinese, Korean, Hindi or Spanish gets
the consent, culture, instructions and ranking pages (and a refused page) in that language, with ``<html lang>`` set,
the platform's strings from that language's catalog and the design's own text from its translation."""

from __future__ import annotations

import gettext
import html

import pytest
from sqlmodel import select

from app import i18n
from app.models import Participant
from study_designs import load_design
from tests.app.conftest import DESIGNS
from tests.factories.pages import parse
from tests.factories.web import WebParticipant, prolific

PAPER = DESIGNS / "scoft-cvpr2024.toml"

# Accept-Language as a phone in each place sends it -> (the language shown, the culture chosen, sentences that must
# appear word for word on the first ranking page: the page heading and the culture question of the paper design)
BROWSERS = {
    "zh-CN,zh;q=0.9,en;q=0.8": ("zh-Hans", "china", ["第 1 页，共 23 页", "每张图片在多大程度上代表了中国文化？"]),
    "ko-KR,ko;q=0.9,en-US;q=0.8": (
        "ko",
        "korea",
        ["23페이지 중 1페이지", "각 이미지가 한국 문화를 얼마나 잘 대표합니까?"],
    ),
    "hi-IN,hi;q=0.9,en;q=0.8": ("hi", "india", ["23 में से पृष्ठ 1", "हर चित्र भारतीय संस्कृति का कितनी अच्छी तरह"]),
    "es-MX,es;q=0.9": ("es", "mexico", ["Página 1 de 23", "¿Qué tan bien representa cada imagen la cultura mexicana?"]),
}
NATIVE_NAMES = {"en": "English", "es": "Español", "zh-Hans": "中文 (简体)", "ko": "한국어", "hi": "हिन्दी"}


def _text(page: str) -> str:
    """The page's markup with entities decoded (Jinja escapes quotes in text)."""
    return html.unescape(page)


def test_the_paper_design_is_offered_in_every_language_the_platform_ships():
    design = load_design(PAPER)
    assert design.languages == ["en", "es", "zh-Hans", "ko", "hi"]
    assert design.missing_translations() == []
    for lang in design.languages[1:]:
        assert isinstance(i18n.translations(lang), gettext.GNUTranslations), f"{lang}: no platform catalog"
    assert {lang: i18n.display_name(lang) for lang in design.languages} == NATIVE_NAMES
    assert {i18n.direction(lang) for lang in design.languages} == {"ltr"}


@pytest.mark.parametrize("accept", list(BROWSERS), ids=[v[0] for v in BROWSERS.values()])
def test_each_language_is_served_from_accept_language(make_study, accept):
    lang, culture, sentences = BROWSERS[accept]
    study = make_study("scoft-cvpr2024.toml", "cvpr", size=16)
    design = load_design(study.design_path)
    local = design.localized(lang)
    t = i18n.translations(lang)
    study.client.headers["accept-language"] = accept
    p = WebParticipant(study.client, "cvpr", culture, params=prolific(f"p-{culture}"), record=True)
    p.walk(stop_after_pages=0)
    pages = {}
    for seen in p.seen:
        if seen.method == "GET" and seen.status == 200 and "<html" in seen.text:
            form = parse(seen.text).forms
            step = form[0].action.rsplit("/", 1)[-1] if form else "end"
            pages["page" if step.isdigit() else step] = _text(seen.text)
    assert set(pages) >= {"consent", "profile", "instructions", "page"}, sorted(pages)
    for step, page in pages.items():
        assert f'<html lang="{lang}" dir="ltr">' in page, step
        assert local.title in page, step
        for other, name in NATIVE_NAMES.items():  # the switcher names every language in itself
            assert f'hreflang="{other}"' in page and f">{name}</a>" in page, (step, other)

    consent, profile, instructions, page = (pages[k] for k in ("consent", "profile", "instructions", "page"))
    assert t.gettext("Content warning:") in consent and local.consent.content_warning in consent
    assert t.gettext("I have read the information above and agree to take part.") in consent
    assert "Content warning:" not in consent and "You are invited" not in consent
    assert t.gettext("Which of these cultures do you most identify with?") in profile
    assert all(c.label in profile for c in local.cultures)
    assert t.gettext("How it works") in instructions and "How it works" not in instructions

    for s in sentences:
        assert s in page, s
    shown = local.culture(culture)
    for c in local.criteria:
        assert c.text_for(shown) in page and c.best_label in page and c.worst_label in page
    prompt_ids = {p_.id for p_ in design.prompts if p_.culture == culture}
    assert any(f"“<span>{pr.text}</span>”" in page for pr in local.prompts if pr.id in prompt_ids)
    assert t.gettext("Description:") in page and t.gettext("Choose rank") in page
    assert "How well does each image" not in page and "Choose rank" not in page

    # a refused page quotes the translated question inside the translated message
    form = parse(p.final_html).forms[0]
    r = study.client.post(form.action, data={"token": form.hidden["token"]})
    assert r.status_code == 400
    refused = _text(r.text)
    first = local.criteria[0].text_for(shown)
    assert t.gettext("Rank every image for “%(question)s”") % {"question": first} in refused
    assert t.gettext("There is a problem with your answers") in refused and "Rank every image" not in refused

    with study.session() as s:
        row = s.exec(select(Participant).where(Participant.code == p.code)).one()
    assert row.language == lang
