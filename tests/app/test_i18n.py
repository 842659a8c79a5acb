"""Languages: Accept-Language negotiation, the shipped catalogs (complete, placeholders intact, up to date with the
templates), the JavaScript strings, and a design's per-language text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from app import i18n
from study_designs import DesignError, load_design
from study_designs.schema import parse_design

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "study_designs" / "scoft-cvpr2024.toml"
SHIPPED = sorted(p.parent.parent.name for p in (ROOT / "app" / "locale").glob("*/LC_MESSAGES/messages.po"))
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def test_accept_language_is_ranked_by_q_and_matched_by_language():
    assert i18n.parse_accept_language("fr;q=0.5, es-MX, en;q=0.8, *;q=0.1, de;q=0") == ["es-MX", "en", "fr"]
    assert i18n.choose(["en", "es"], ["es-MX"]) == "es"
    assert i18n.choose(["en", "zh-Hans"], ["zh-CN"]) == "zh-Hans"
    assert i18n.choose(["en", "es"], ["ko", "fr"]) == "en"  # none offered: the design's own language
    # the switcher's choice beats the browser
    assert i18n.choose(["en", "es"], i18n.preferences({"lang": "en"}, {}, "es")) == "en"
    assert i18n.choose(["en", "es"], i18n.preferences({}, {"scoft_lang": "es"}, "en")) == "es"


def test_direction_and_names():
    assert i18n.direction("ar") == "rtl" and i18n.direction("es") == "ltr"
    assert i18n.display_name("es") == "Español"


def _extracted() -> set[str]:
    ids = set()
    for _file, _line, msg, _comments, _ctx in extract_from_dir(
        str(ROOT),
        method_map=[
            ("app/flow/**.py", "python"),
            ("app/templates/participant/**.html", "jinja2"),
            ("app/templates/base.html", "jinja2"),
        ],
        keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None},
    ):
        ids.add(msg if isinstance(msg, str) else msg[0])
    return ids


def test_template_is_up_to_date_with_the_code():
    with (ROOT / "app" / "locale" / "messages.pot").open("rb") as f:
        pot = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(f) if m.id}
    assert _extracted() == pot, "run the pybabel extract command in babel.cfg"


@pytest.mark.parametrize("lang", SHIPPED)
def test_each_catalog_translates_every_string_with_its_placeholders(lang):
    assert "es" in SHIPPED
    with (ROOT / "app" / "locale" / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f)
    ids = _extracted()
    got = {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalog if m.id}
    assert ids <= set(got), sorted(ids - set(got))
    for key in ids:
        m = got[key]
        assert not m.fuzzy, key
        sources = [m.id] if isinstance(m.id, str) else list(m.id)
        targets = [m.string] if isinstance(m.string, str) else list(m.string)
        assert all(targets), key
        want = set(PLACEHOLDER.findall(sources[-1])) | set(PLACEHOLDER.findall(sources[0]))
        for t in targets:
            assert set(PLACEHOLDER.findall(t)) <= want and t.count("%(") == len(PLACEHOLDER.findall(t)), (key, t)
    t = i18n.template_context(lang, ["en", lang], "/p/x")
    assert t["_"]("Page %(number)s of %(total)s", number=2, total=9) != "Page 2 of 9"


def test_rank_js_and_the_page_agree_on_the_strings_it_needs():
    js = (ROOT / "app" / "static" / "rank.js").read_text()
    page = (ROOT / "app" / "templates" / "participant" / "page.html").read_text()
    block = js[js.index("var STRINGS = {") : js.index("};", js.index("var STRINGS = {"))]
    js_keys = set(re.findall(r"(\w+): \"", block))
    page_block = page[page.index("set js_strings") : page.index("%}", page.index("set js_strings"))]
    assert js_keys == set(re.findall(r'"(\w+)": _\(', page_block))


def test_the_paper_design_in_spanish():
    d = load_design(PAPER)
    assert d.languages == ["en", "es"]
    es = d.localized("es")
    assert es.culture("mexico").label == "México"
    assert "cultura mexicana" in es.criteria[1].text_for(es.culture("mexico"))
    assert next(p.text for p in es.prompts if p.id == "mexico-06") == "Personas celebrando el Día de Muertos en México"
    assert d.localized("en") == d and d.localized("ko") == d
    missing = d.missing_translations()
    assert missing and all(m.startswith("es: prompts.") and "mexico" not in m for m in missing)


def test_duration_is_computed_from_the_pages_served():
    d = load_design(PAPER)
    assert d.pages_served("mexico") == (20, 2, 1)
    assert d.expected_minutes() == 22  # (20 + 1) pages x 4 questions + 2 one-question checks, 15 s each
    assert "about 20 groups" not in d.consent.text


def _design(**extra) -> dict:
    import tomllib

    data = tomllib.loads((ROOT / "study_designs" / "demo.toml").read_text())
    data.update(extra)
    return data


def test_translations_must_name_declared_languages_and_known_ids():
    ok = parse_design(_design(languages=["en", "es"], translations={"es": {"criteria": {"description": {}}}}))
    assert ok.missing_translations()
    with pytest.raises(DesignError, match="not one of the further languages"):
        parse_design(_design(languages=["en"], translations={"es": {"title": "x"}}))
    with pytest.raises(DesignError, match="not one of the design's criteria"):
        parse_design(_design(languages=["en", "es"], translations={"es": {"criteria": {"nope": {}}}}))
    with pytest.raises(DesignError, match="languages"):
        parse_design(_design(languages=["english"]))
