"""The paper's study on a phone (390×844): one question per screen, images at least 150 px wide that never move, 44 px
tap targets, hints only where they apply, the language from the browser and the language menu, and an axe-core audit
of every page type in English and Spanish with JavaScript on and off and in Chinese with it on.

Measured figures (step heights, image widths, the smallest tap target, the whole page without JavaScript) are
printed and written to ``phone-figures.json`` under the test's tmp dir with a screenshot of every step.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.steps import reveal, to_last

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 2}

# Visible controls a finger must hit: buttons, selects, links, and the labels that wrap checkboxes and radios.
TARGETS = """() => Array.from(document.querySelectorAll(
    'button, select, a[href], label:has(> input[type=checkbox]), label:has(> input[type=radio])'))
  .filter(el => el.offsetParent !== null && getComputedStyle(el).visibility !== 'hidden')
  .map(el => { const r = el.getBoundingClientRect();
               return {what: el.tagName + '.' + el.className + ' ' + el.textContent.trim().slice(0, 30),
                       w: r.width, h: r.height}; })"""

VISIBLE_IMAGES = """() => Array.from(document.querySelectorAll('form.ranking img'))
  .filter(el => el.offsetParent !== null).map(el => el.getBoundingClientRect().width)"""


def enter(page, base: str, round_id: str, *, tap: bool, culture: str = "mexico", query: str = "") -> None:
    act = page.tap if tap else page.click
    page.goto(f"{base}/s/{round_id}{query}")
    act("input[name=agree]")
    act("button[type=submit]")
    act(f"input[value={culture}]")
    act("button[type=submit]")
    act("button[type=submit]")
    page.wait_for_selector("form.ranking")


def small_targets(page) -> list[dict]:
    return [t for t in page.evaluate(TARGETS) if t["w"] < 44 or t["h"] < 44]


def test_each_question_fits_one_phone_screen(live_paper, browser, tmp_path):
    context = browser.new_context(**PHONE)
    page = context.new_page()
    enter(page, live_paper.base_url, live_paper.round_id, tap=True)
    page.wait_for_selector("form.stepped")
    figures: dict[str, object] = {"steps": {}}
    crits = page.eval_on_selector_all("fieldset.criterion", "els => els.map(e => e.dataset.criterion)")
    assert len(crits) == 4 and page.locator("fieldset.criterion:first-of-type li.item").count() == 4
    for n, crit in enumerate(crits, start=1):
        reveal(page, crit, "tap")
        fs = f'fieldset[data-criterion="{crit}"]'
        height = page.evaluate("() => document.documentElement.scrollHeight")
        widths = page.evaluate(VISIBLE_IMAGES)
        figures["steps"][crit] = {"height": height, "image_widths": widths}
        page.screenshot(path=tmp_path / f"step-{n}-{crit}.png", full_page=True)
        assert height <= 844, f"question {crit}: {height} px tall, more than one 844 px screen"
        assert len(widths) == 4 and min(widths) >= 150, widths
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        assert not small_targets(page), small_targets(page)
        # the skip box sits with its question, above its images, and greys them out and disables them
        if page.locator(f"{fs} .skip input").count():
            skip_box = page.locator(f"{fs} .skip").bounding_box()
            assert skip_box["y"] < page.locator(f"{fs} ol.items").bounding_box()["y"]
            page.locator(f"{fs} .skip label").tap()
            assert page.locator(f"{fs} select:disabled").count() == 4
            assert page.locator(f"{fs} button.tap:disabled").count() == 4
            opacity = page.evaluate(f"() => getComputedStyle(document.querySelector('{fs} ol.items')).opacity")
            assert float(opacity) < 0.5
            page.locator(f"{fs} .skip label").tap()
            assert page.locator(f"{fs} select:disabled").count() == 0
        # ranking by taps moves nothing: every image keeps its place
        boxes = [page.locator(f"{fs} li.item").nth(i).bounding_box() for i in range(4)]
        for i in (3, 1, 0, 2):
            page.locator(f"{fs} li.item[data-index='{i}'] button.tap").tap()
        assert [page.locator(f"{fs} li.item").nth(i).bounding_box() for i in range(4)] == boxes
        assert [page.input_value(f"select[name=rank-{crit}-{i}]") for i in range(4)] == ["3", "2", "4", "1"]
        # options are readable in full: the closed select shows its whole label
        clipped = page.evaluate(
            f"""() => Array.from(document.querySelectorAll('{fs} select')).some(s => {{
                  const c = document.createElement('canvas').getContext('2d');
                  c.font = getComputedStyle(s).font;
                  return c.measureText(s.options[s.selectedIndex].text).width > s.clientWidth - 24; }})"""
        )
        assert not clipped
    # keyboard hints are for keyboards: not shown on a touch phone
    assert not page.locator("#rank-keys-help").is_visible()
    # a tap on an image opens it full width
    page.locator(f'fieldset[data-criterion="{crits[-1]}"] a.zoom').first.tap()
    page.wait_for_selector("dialog.zoom-view[open]")
    big = page.locator("dialog.zoom-view img").bounding_box()
    figures["zoom_width"] = big["width"]
    assert big["width"] >= 0.9 * 390
    page.tap("dialog.zoom-view button")
    figures["smallest_target"] = min(min(t["w"], t["h"]) for t in page.evaluate(TARGETS))
    print("phone figures:", json.dumps(figures))
    (tmp_path / "phone-figures.json").write_text(json.dumps(figures, indent=2))
    context.close()


def test_keyboard_hint_shows_on_a_desktop(live_paper, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    enter(page, live_paper.base_url, live_paper.round_id, tap=False)
    page.wait_for_selector("#rank-keys-help", state="visible", timeout=15_000)  # rank.js adds it after load
    assert page.locator("li.item[tabindex]").count() == 0  # image tiles are no tab stops
    context.close()


@pytest.mark.parametrize("width", [360, 390, 768, 1280])
def test_plain_form_without_javascript_at_each_width(live_paper, browser, tmp_path, width):
    context = browser.new_context(java_script_enabled=False, viewport={"width": width, "height": 844})
    page = context.new_page()
    enter(page, live_paper.base_url, live_paper.round_id, tap=False)
    height = page.evaluate("() => document.documentElement.scrollHeight")
    print(f"no-JS page at {width} px: {height} px tall ({height / 844:.2f} screens)")
    page.screenshot(path=tmp_path / f"no-js-{width}.png", full_page=True)
    assert page.locator("fieldset.criterion:visible").count() == 4  # one plain form: every question shown
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    assert min(page.evaluate(VISIBLE_IMAGES)) >= 150
    assert not small_targets(page), small_targets(page)
    context.close()


def test_language_from_accept_language_and_the_switcher(live_paper, browser):
    context = browser.new_context(locale="es-MX", extra_http_headers={"Accept-Language": "es-MX,es;q=0.9"}, **PHONE)
    page = context.new_page()
    page.goto(f"{live_paper.base_url}/s/{live_paper.round_id}")
    assert page.get_attribute("html", "lang") == "es" and page.get_attribute("html", "dir") == "ltr"
    assert "Advertencia sobre el contenido" in page.inner_text("main")
    assert "Clasificará 23 páginas de imágenes" in page.inner_text("#duration")
    assert "Le invitamos" in page.inner_text(".consent-text")

    def submit() -> None:
        with page.expect_navigation():
            page.locator("button[type=submit]:not([name=decline])").tap()

    page.tap("input[name=agree]")
    submit()
    assert "México" in page.inner_text("main")
    page.tap("input[value=mexico]")
    submit()
    assert "23 páginas" in page.inner_text("#page-count")
    submit()
    page.wait_for_selector("form.stepped")
    assert page.inner_text("h1").startswith("Página 1 de 23")
    legends = page.locator("fieldset.criterion legend").all_inner_texts()
    assert any("cultura mexicana" in t for t in legends), legends
    assert page.locator("button.tap").first.inner_text() == "Siguiente puesto"
    # the language menu shows the current language; opened, it names every language of the design in itself
    assert page.inner_text("header.languages summary").strip().endswith("Español")  # after a hidden "Idioma:"
    assert not page.locator("header.languages a[hreflang=en]").is_visible()
    page.locator("header.languages summary").tap()
    names = page.locator("header.languages a").all_inner_texts()
    assert names == ["English", "Español", "中文 (简体)", "한국어", "हिन्दी"], names
    assert page.locator("header.languages a[aria-current]").get_attribute("hreflang") == "es"
    assert not small_targets(page), small_targets(page)
    # English on this page and the pages after it (the choice is kept across the form posts)
    page.locator("header.languages a[hreflang=en]").tap()
    assert page.get_attribute("html", "lang") == "en"
    assert page.inner_text("h1").startswith("Page 1 of 23")
    assert page.locator("button.tap").first.inner_text() == "Rank next"
    to_last(page, "tap")
    page.locator("button.next").tap()  # untouched: refused, and the page comes back in English
    page.wait_for_selector("#error-summary")
    assert page.get_attribute("html", "lang") == "en"
    context.close()


PAGES = ("consent", "profile", "instructions", "ranking", "ranking-languages", "ranking-error", "message")


def audit(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    result = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result.response["violations"]
        if v["impact"] in {"serious", "critical"}
    ]


# (Accept-Language, the language the pages come in, JavaScript): two languages with JavaScript on and off, and a
# CJK language with it on
AUDITS = [
    ("en", "en", True),
    ("en", "en", False),
    ("es-MX", "es", True),
    ("es-MX", "es", False),
    ("zh-CN", "zh-Hans", True),
]


@pytest.mark.parametrize(
    ("accept", "lang", "js"), AUDITS, ids=[f"{lang}-{'js' if js else 'no-js'}" for _, lang, js in AUDITS]
)
def test_axe_finds_no_serious_problem_on_any_participant_page(live_paper, browser, accept, lang, js):
    # axe runs in the page, so "JavaScript off" means: the page's own script (rank.js) never loads
    context = browser.new_context(bypass_csp=True, extra_http_headers={"Accept-Language": accept}, **PHONE)
    page = context.new_page()
    if not js:
        page.route("**/static/rank.js", lambda route: route.fulfill(body="", content_type="text/javascript"))
    found: dict[str, list[str]] = {}

    def submit(selector: str = "button[type=submit]:not([name=decline])") -> None:
        with page.expect_navigation():
            page.locator(selector).tap()
        page.wait_for_load_state("load")

    page.goto(f"{live_paper.base_url}/s/{live_paper.round_id}")
    assert page.get_attribute("html", "lang") == lang and page.get_attribute("html", "dir") == "ltr"
    found["consent"] = audit(page)
    page.tap("input[name=agree]")
    submit()
    found["profile"] = audit(page)
    page.tap("input[value=mexico]")
    submit()
    found["instructions"] = audit(page)
    submit()
    page.wait_for_selector("form.ranking")
    found["ranking"] = audit(page)
    page.locator("header.languages summary").tap()  # the language menu, open
    found["ranking-languages"] = audit(page)
    page.locator("header.languages summary").tap()
    if js:
        to_last(page, "tap")
    submit("button.next")
    page.wait_for_selector("#error-summary")
    found["ranking-error"] = audit(page)
    page.goto(f"{live_paper.base_url}/p/not-a-code")
    found["message"] = audit(page)
    print(f"axe ({lang}, {'js' if js else 'no-js'}):", {k: len(v) for k, v in found.items()})
    assert tuple(found) == PAGES
    assert not any(found.values()), found
    context.close()
