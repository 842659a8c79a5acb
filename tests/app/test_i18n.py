"""Languages: Accept-Language negotiation, the shipped catalogs (complete, placeholders intact, up to date with the
templates), the JavaScript strings, and a design's per-language text."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.extract import extract_from_dir
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

from app import i18n
from app.flow import script
from study_designs import DesignError, load_design
from study_designs.schema import parse_design

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "study_designs" / "scoft-cvpr2024.toml"
SHIPPED = sorted(p.parent.parent.name for p in (ROOT / "app" / "locale").glob("*/LC_MESSAGES/messages.po"))
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
# The participant languages the platform ships (BCP 47, as designs and <html lang> write them); English is the source.
LANGUAGES = ["en", "es", "zh-Hans", "ko", "hi"]


def _catalog(folder: str):
    with (ROOT / "app" / "locale" / folder / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f)


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
    names = {lang: i18n.display_name(lang) for lang in LANGUAGES}
    assert names == {"en": "English", "es": "Español", "zh-Hans": "中文 (简体)", "ko": "한국어", "hi": "हिन्दी"}
    assert all(i18n.direction(lang) == "ltr" for lang in LANGUAGES)


def test_every_shipped_language_has_its_catalog_in_babels_folder():
    # a tag's catalog folder is its Babel locale identifier: zh-Hans -> zh_Hans
    assert sorted(str(Locale.parse(lang, sep="-")) for lang in LANGUAGES[1:]) == SHIPPED
    for lang in LANGUAGES[1:]:
        assert i18n.translations(lang).gettext("Next") != "Next", lang
    # a browser's region tag is matched to the language the design offers, whose catalog is then used
    assert i18n.choose(LANGUAGES, ["zh-CN"]) == "zh-Hans" and i18n.choose(LANGUAGES, ["hi-IN"]) == "hi"
    assert i18n.choose(LANGUAGES, ["ko-KR"]) == "ko"


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
    catalog = _catalog(lang)
    assert catalog.locale is not None and str(catalog.locale) == lang  # the Language header names the folder's locale
    # the Plural-Forms header is Babel's (CLDR) rule for the language, and every plural entry has that many forms
    assert catalog.plural_forms == get_plural(lang).plural_forms
    ids = _extracted()
    got = {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalog if m.id}
    assert ids <= set(got), sorted(ids - set(got))
    for key in ids:
        m = got[key]
        assert not m.fuzzy, key
        sources = [m.id] if isinstance(m.id, str) else list(m.id)
        targets = [m.string] if isinstance(m.string, str) else list(m.string)
        if m.pluralizable:
            assert len(targets) == catalog.num_plurals, key
        assert all(t.strip() for t in targets), key
        want = set(PLACEHOLDER.findall(sources[-1])) | set(PLACEHOLDER.findall(sources[0]))
        for t in targets:
            found = PLACEHOLDER.findall(t)
            # no unknown name, no stray or mistyped % directive, and every value of the message is shown
            assert set(found) <= want and t.count("%(") == len(found) and t.count("%") == len(found), (key, t)
            assert want - {"num"} <= set(found), (key, t)
        # what the English quotes (a question, a button's label) stays quoted, in the language's own quotation marks
        assert all(key.count("“") == t.count("“") + t.count("«") for t in targets), (key, targets)
    t = i18n.template_context(lang, ["en", lang], "/p/x")
    assert t["_"]("Page %(number)s of %(total)s", number=2, total=9) != "Page 2 of 9"
    for n in (1, 2, 23):  # ngettext fills in every form it picks
        text = t["ngettext"](
            "You will rank %(num)s page of images, which takes about %(minutes)s minutes.",
            "You will rank %(num)s pages of images, which takes about %(minutes)s minutes.",
            n,
            minutes=22,
        )
        assert str(n) in text and "22" in text and "%" not in text, (n, text)


@pytest.mark.parametrize("lang", SHIPPED)
def test_quoted_labels_match_the_controls_they_name(lang):
    """Instructions and errors quote a button, a marker and a check box by their label: the quote must be the label
    the page shows in that language."""
    strings = {m.id: m.string for m in _catalog(lang) if isinstance(m.id, str) and m.id}

    def quoted(msgid: str) -> list[str]:
        return re.findall(r"[“«]([^”»]+)[”»]", strings[msgid])

    assert strings["Rank next"] in quoted("Press “Rank next”, best first.")
    keys = "To rank with the keyboard, press “Rank next” on each image from best to worst. To reorder a ranked image, "
    keys += "focus one of its buttons and press Alt with the up or down arrow."
    assert strings["Rank next"] in quoted(keys)
    also = "You can also press the images’ “Rank next” buttons in order, or drag the images onto each other."
    assert strings["Rank next"] in quoted(also)
    check = "for this question, rank the image marked “Rank me last” as %(n)s (%(worst)s), whatever you think of it."
    assert strings["Rank me last"] in quoted(check)
    skip_label = strings["Too distressing to judge: skip this question"]
    for msgid in strings:
        if msgid.endswith("or tick “Too distressing to judge”"):
            assert skip_label.startswith(quoted(msgid)[-1]), (msgid, skip_label)


def test_rank_js_and_the_page_agree_on_the_strings_it_needs():
    js = (ROOT / "app" / "static" / "rank.js").read_text()
    block = js[js.index("var STRINGS = {") : js.index("};", js.index("var STRINGS = {"))]
    js_keys = set(re.findall(r"(\w+): \"", block))
    assert js_keys == set(script.STRINGS)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_ranking_form_carries_the_script_strings_in_the_page_language(lang):
    on_form = json.loads(html.unescape(str(i18n.script_strings(lang))))
    t = i18n.translations(lang)
    assert on_form == {key: t.gettext(msg) for key, msg in script.STRINGS.items()}
    if lang != "en":  # translated, not the English fallback
        assert on_form["rankNext"] != "Rank next" and on_form["stepOf"] != "Question %(i)s of %(n)s"
    assert '"' not in str(i18n.script_strings(lang))  # safe inside a double-quoted attribute


def test_the_paper_design_in_every_shipped_language():
    d = load_design(PAPER)
    assert d.languages == LANGUAGES
    assert d.missing_translations() == []  # `python -m study_designs check` reports nothing missing
    es = d.localized("es")
    assert es.culture("mexico").label == "México"
    assert "cultura mexicana" in es.criteria[1].text_for(es.culture("mexico"))
    assert next(p.text for p in es.prompts if p.id == "mexico-06") == "Personas celebrando el Día de Muertos en México"
    assert d.localized("en") == d and d.localized("fr") == d
    # the adjective makes a grammatical phrase in each language ("{adjective} culture")
    phrases = {"es": "cultura coreana", "zh-Hans": "韩国文化", "ko": "한국 문화", "hi": "कोरियाई संस्कृति"}
    for lang, phrase in phrases.items():
        local = d.localized(lang)
        korea = local.culture("korea")
        assert phrase in local.criteria[1].text_for(korea) and phrase in local.criteria[2].text_for(korea), lang
        # every criterion string, prompt, the title and the consent differ from the English they translate
        for mine, theirs in zip(local.criteria, d.criteria, strict=True):
            for field in ("question", "best_label", "worst_label"):
                assert getattr(mine, field) != getattr(theirs, field), (lang, mine.id, field)
            assert "{adjective}" in mine.question or "{adjective}" not in theirs.question, (lang, mine.id)
        assert all(a.text != b.text for a, b in zip(local.prompts, d.prompts, strict=True)), lang
        assert local.title != d.title and local.consent != d.consent


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
