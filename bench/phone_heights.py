"""How tall each question step of the paper design's ranking page is on a phone (390×844), in every language.

Run from a checkout's root: ``python bench/phone_heights.py [--pages N]``. Serves the paper design (the browser
tests' subset: every Mexico prompt, one prompt of each other culture) and, for each language, enters as a participant
of the culture that speaks it (Spanish: Mexico, Chinese: China, Korean: Korea, Hindi: India, English: Nigeria),
then reads the page height with each question shown on their first ``N`` pages. A translation that makes a step taller
than one 844 px screen is marked. Heights depend on the fonts installed (CJK and Devanagari: Debian's
``fonts-noto-cjk`` and ``fonts-deva``), which is why this is a bench and not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, paper_study  # noqa: E402
from tests.e2e.steps import reveal  # noqa: E402
from tests.factories.pages import parse, step_answer  # noqa: E402

PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 2}
# the bottom of the page's content (what must fit: the document itself is never shorter than the screen)
CONTENT_BOTTOM = """() => Math.ceil(window.scrollY + Math.max(...Array.from(document.body.children)
  .filter(el => el.offsetParent !== null).map(el => el.getBoundingClientRect().bottom
    + parseFloat(getComputedStyle(el).marginBottom))))"""
# language -> (the culture that speaks it, the browser locale that asks for it through Accept-Language)
SPEAKERS = {
    "en": ("nigeria", "en-NG"),
    "es": ("mexico", "es-MX"),
    "zh-Hans": ("china", "zh-CN"),
    "ko": ("korea", "ko-KR"),
    "hi": ("india", "hi-IN"),
}


def measure(page, base: str, round_id: str, lang: str, culture: str, pages: int) -> dict[str, list[int]]:
    page.goto(f"{base}/s/{round_id}")
    page.tap("input[name=agree]")
    page.tap("button[type=submit]")
    page.tap(f"input[value={culture}]")
    page.tap("button[type=submit]")
    page.tap("button[type=submit]")
    assert page.get_attribute("html", "lang") == lang, page.get_attribute("html", "lang")
    heights: dict[str, list[int]] = {}
    for _ in range(pages):
        page.wait_for_selector("form.stepped")
        crits = page.eval_on_selector_all("fieldset.criterion", "els => els.map(e => e.dataset.criterion)")
        if len(crits) < 2:  # an attention-check page asks one question: not the page measured here
            crits = []
        for crit in crits:
            reveal(page, crit, "tap")
            heights.setdefault(crit, []).append(page.evaluate(CONTENT_BOTTOM))
        form = parse(page.content()).forms[0]
        page.request.post(page.url.split("/p/")[0] + form.action, form=step_answer(form, culture))
        page.goto(page.url)
    return heights


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=2, help="ranking pages measured per language (default 2)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, contextmanager(paper_study)(Path(tmp)) as study, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        rows = []
        for lang, (culture, locale) in SPEAKERS.items():
            context = browser.new_context(**PHONE, locale=locale)
            heights = measure(context.new_page(), study.base_url, study.round_id, lang, culture, args.pages)
            context.close()
            rows.append((lang, culture, {c: max(v) for c, v in heights.items()}))
        browser.close()
    crits = list(rows[0][2])
    print(f"tallest step over {args.pages} pages at 390×844, px (one screen: 844; * = taller)")
    print("| language | culture | " + " | ".join(crits) + " |")
    print("|---|---|" + "---|" * len(crits))
    over = 0
    for lang, culture, tallest in rows:
        cells = [f"{tallest.get(c, 0)}{' *' if tallest.get(c, 0) > 844 else ''}" for c in crits]
        over += sum(tallest.get(c, 0) > 844 for c in crits)
        print(f"| {lang} | {culture} | " + " | ".join(cells) + " |")
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
