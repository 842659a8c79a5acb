"""Nothing is pre-ranked: in a real browser, with JavaScript on and off, every rank starts empty and must be chosen."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from app import i18n
from tests.e2e.steps import reveal, to_last

pytestmark = pytest.mark.browser

TEMPLATES = Path(__file__).resolve().parents[2] / "app" / "templates"
STATIC = Path(__file__).resolve().parents[2] / "app" / "static"

SELECT_VALUES = "() => Array.from(document.querySelectorAll('form.ranking select'), s => [s.name, s.value])"


def watch_errors(page) -> list[str]:
    """Script errors and console errors, except the 400 that a refused page is sent with (expected here)."""
    errors: list[str] = []

    def console(msg) -> None:
        if msg.type == "error" and "status of 400" not in msg.text:
            errors.append(f"console {msg.type}: {msg.text}")

    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", console)
    return errors


def enter(page, base_url: str, round_id: str, culture: str = "korea") -> None:
    """Consent, profile and instructions, by clicks (works with JavaScript on or off)."""
    page.goto(f"{base_url}/s/{round_id}")
    page.check("input[name=agree]")
    page.click("button[type=submit]")
    page.check(f"input[value={culture}]")
    page.click("button[type=submit]")
    page.click("button[type=submit]")
    page.wait_for_selector("form.ranking")


def criteria_on(page) -> list[str]:
    return page.eval_on_selector_all("fieldset.criterion", "els => els.map(e => e.dataset.criterion)")


def marked_index(page, crit: str) -> int | None:
    return page.evaluate(
        """c => { const m = document.querySelector(`fieldset[data-criterion="${c}"] .marker`);
                  return m ? Number(m.closest('li').dataset.index) : null; }""",
        crit,
    )


def n_items(page, crit: str) -> int:
    return page.locator(f'fieldset[data-criterion="{crit}"] li.item').count()


def wanted_order(page, crit: str) -> list[int]:
    """Image indices from best to worst: reverse of the shown order, with an attention check's marked image last."""
    n = n_items(page, crit)
    marked = marked_index(page, crit)
    order = [i for i in range(n - 1, -1, -1) if i != marked]
    return order + ([marked] if marked is not None else [])


def action(page) -> str:
    return page.get_attribute("form.ranking", "action")


def select_values(page) -> dict[str, str]:
    return dict(page.evaluate(SELECT_VALUES))


# -- JavaScript on ---------------------------------------------------------------------------------------------------


def test_js_page_starts_unranked_and_an_untouched_next_is_refused(live_roomy, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = watch_errors(page)
    enter(page, live_roomy.base_url, live_roomy.round_id)
    page.wait_for_selector("fieldset.enhanced")
    values = select_values(page)
    assert values and set(values.values()) == {""}, values
    assert page.locator(".rank-badge:not(:empty)").count() == 0
    assert page.locator("button.tap", has_text="Unrank").count() == 0
    before, progress = action(page), page.inner_text(".progress")

    to_last(page)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("button.next")
    page.wait_for_load_state("load")
    assert posted.value.status == 400
    assert action(page) == before and page.inner_text(".progress") == progress  # nothing advanced
    assert page.get_attribute("#error-summary", "role") == "alert"
    assert page.evaluate("() => document.activeElement && document.activeElement.id") == "error-summary"
    assert not errors, errors
    context.close()


def test_js_tapping_every_image_ranks_the_page_and_next_advances(live_roomy, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    page = context.new_page()
    errors = watch_errors(page)
    enter(page, live_roomy.base_url, live_roomy.round_id, culture="nigeria")
    page.wait_for_selector("fieldset.enhanced")
    before = action(page)
    for crit in criteria_on(page):
        fs = f'fieldset[data-criterion="{crit}"]'
        order = wanted_order(page, crit)
        reveal(page, crit, "tap")
        boxes = [page.locator(f"{fs} li.item").nth(k).bounding_box() for k in range(len(order))]
        for rank, i in enumerate(order, start=1):
            page.locator(f"{fs} li.item[data-index='{i}'] button.tap").tap()
            assert page.input_value(f"select[name=rank-{crit}-{i}]") == str(rank)
            assert f"ranked {rank} of {len(order)}" in page.inner_text("#rank-status")
        # nothing moved under the finger: the images stay in the page's order and place, each with its badge
        shown = page.eval_on_selector_all(f"{fs} li.item", "els => els.map(e => Number(e.dataset.index))")
        assert shown == list(range(len(order)))
        assert [page.locator(f"{fs} li.item").nth(k).bounding_box() for k in range(len(order))] == boxes
        badges = page.locator(f"{fs} .rank-badge").all_inner_texts()
        assert [badges[i] for i in order] == [str(r) for r in range(1, len(order) + 1)]
    to_last(page, "tap")
    page.locator("button.next").tap()
    page.wait_for_load_state("load")
    page.wait_for_selector("form.ranking, #completion-code")
    assert page.query_selector("#error-summary") is None
    assert page.query_selector("#completion-code") or action(page) != before
    assert not errors, errors
    context.close()


def test_js_second_tap_unranks_and_later_ranks_move_up(live_roomy, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = watch_errors(page)
    enter(page, live_roomy.base_url, live_roomy.round_id)
    page.wait_for_selector("fieldset.enhanced")
    crit = criteria_on(page)[0]
    fs = f'fieldset[data-criterion="{crit}"]'

    def ranks() -> list[str]:
        return [page.input_value(f"select[name=rank-{crit}-{i}]") for i in range(3)]

    for i in (0, 1, 2):
        page.click(f"{fs} li.item[data-index='{i}'] button.tap")
    assert ranks() == ["1", "2", "3"]
    page.click(f"{fs} li.item[data-index='0'] button.tap")  # unrank the best: the others move up
    assert ranks() == ["", "1", "2"]
    assert "unranked" in page.inner_text("#rank-status")
    assert page.inner_text(f"{fs} li.item[data-index='0'] button.tap") == "Rank next"
    page.click(f"{fs} li.item[data-index='0'] button.tap")  # the next tap continues after the others
    assert ranks() == ["3", "1", "2"]

    # Alt+Arrow moves a ranked image by swapping with its ranked neighbour; an unranked one cannot be moved
    page.focus(f"{fs} li.item[data-index='0'] button.tap")
    page.keyboard.press("Alt+ArrowUp")
    assert ranks() == ["2", "1", "3"]
    assert "moved to rank 2" in page.inner_text("#rank-status")
    # focus stays on the moved image's button
    assert page.evaluate("() => document.activeElement.closest('li.item').dataset.index") == "0"
    assert page.evaluate("() => document.activeElement.tagName") == "BUTTON"
    page.click(f"{fs} li.item[data-index='2'] button.tap")
    assert ranks() == ["2", "1", ""]
    page.focus(f"{fs} li.item[data-index='2'] button.tap")
    page.keyboard.press("Alt+ArrowUp")
    assert ranks() == ["2", "1", ""]
    assert "not ranked yet" in page.inner_text("#rank-status")

    # dragging an unranked image onto a ranked one ranks it there
    page.locator(f"{fs} li.item[data-index='2']").drag_to(page.locator(f"{fs} li.item[data-index='1']"))
    assert ranks() == ["3", "2", "1"]
    assert "drag" in page.inner_text("#rank-status")

    # a select chosen directly swaps with the image that held that rank
    page.select_option(f"select[name=rank-{crit}-0]", "1")
    assert ranks() == ["1", "2", "3"]
    page.click(f"{fs} button.reset")
    assert ranks() == ["", "", ""]
    assert not errors, errors
    context.close()


def test_js_skip_box_disables_that_question_and_sends_no_ranks(live_roomy, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = watch_errors(page)
    enter(page, live_roomy.base_url, live_roomy.round_id)
    page.wait_for_selector("fieldset.enhanced")
    skippable = page.eval_on_selector_all(
        "fieldset.criterion:has(.skip input)", "els => els.map(e => e.dataset.criterion)"
    )
    assert skippable == ["offensiveness"]
    fs = 'fieldset[data-criterion="offensiveness"]'
    reveal(page, "offensiveness")
    page.check(f"{fs} .skip input")
    assert page.locator(f"{fs} select:disabled").count() == n_items(page, "offensiveness")
    assert page.locator(f"{fs} button.tap:disabled").count() == n_items(page, "offensiveness")
    assert "skipped" in page.inner_text("#rank-status")
    page.uncheck(f"{fs} .skip input")
    assert page.locator(f"{fs} select:disabled").count() == 0
    page.check(f"{fs} .skip input")
    before = action(page)
    for crit in criteria_on(page):
        if crit == "offensiveness":
            continue
        reveal(page, crit)
        for i in wanted_order(page, crit):
            page.click(f'fieldset[data-criterion="{crit}"] li.item[data-index="{i}"] button.tap')
    to_last(page)
    with page.expect_request(lambda r: r.method == "POST") as sent:
        page.click("button.next")
    page.wait_for_load_state("load")
    assert "rank-offensiveness-" not in (sent.value.post_data or "")
    assert "skip-offensiveness=1" in (sent.value.post_data or "")
    page.wait_for_selector("form.ranking, #completion-code")
    assert page.query_selector("#completion-code") or action(page) != before
    assert not errors, errors
    context.close()


def test_rank_js_never_changes_a_select_on_load(live_roomy, browser):
    """The values the server sent are the values after rank.js ran: for an empty page and for a kept choice."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = watch_errors(page)
    enter(page, live_roomy.base_url, live_roomy.round_id)
    url = page.url
    captured = "window.__before"
    page.add_init_script(
        """document.addEventListener('readystatechange', () => {
             if (document.readyState === 'interactive' && !window.__before) {
               window.__before = Array.from(document.querySelectorAll('form.ranking select'), s => [s.name, s.value]);
             }
           }, true);"""
    )
    page.goto(url)
    page.wait_for_selector("fieldset.enhanced")
    page.wait_for_load_state("load")
    before = dict(page.evaluate(captured))
    after = select_values(page)
    assert before and before == after
    assert set(after.values()) == {""}

    # a refused page comes back with the participant's one choice kept; rank.js adds nothing to it
    crit = criteria_on(page)[0]
    page.select_option(f"select[name=rank-{crit}-1]", "1")
    to_last(page)
    page.click("button.next")
    page.wait_for_selector("#error-summary")
    page.wait_for_load_state("load")
    before = dict(page.evaluate(captured))
    after = select_values(page)
    assert before == after
    assert after[f"rank-{crit}-1"] == "1"
    assert [v for k, v in after.items() if k != f"rank-{crit}-1"] == [""] * (len(after) - 1)
    assert not errors, errors
    context.close()


# -- JavaScript off --------------------------------------------------------------------------------------------------


def test_no_js_selects_start_empty_and_every_rank_must_be_chosen(live_roomy, browser, tmp_path):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 740})
    page = context.new_page()
    enter(page, live_roomy.base_url, live_roomy.round_id)
    assert page.query_selector(".rank-badge") is None and page.query_selector("fieldset.enhanced") is None
    values = select_values(page)
    assert values and set(values.values()) == {""}
    first = page.locator("form.ranking select").first
    labels = first.locator("option").all_inner_texts()
    crit = criteria_on(page)[0]
    n = n_items(page, crit)
    assert labels[0] == "Choose rank" and len(labels) == n + 1
    assert labels[1].startswith("1 – ") and labels[n].startswith(f"{n} – ")

    before, progress = action(page), page.inner_text(".progress")
    page.click("button.next")  # untouched
    assert page.inner_text(".progress") == progress and action(page) == before
    assert page.locator("[role=alert]").count() >= 1

    for crit in criteria_on(page):
        for rank, i in enumerate(wanted_order(page, crit), start=1):
            page.select_option(f"select[name=rank-{crit}-{i}]", str(rank))
    page.click("button.next")
    page.wait_for_selector("form.ranking, #completion-code")
    assert page.query_selector("#completion-code") or action(page) != before
    if page.query_selector("form.ranking"):
        assert page.inner_text(".progress") != progress
        assert set(select_values(page).values()) == {""}  # the next page starts empty too
    page.screenshot(path=tmp_path / "no-js-unranked.png", full_page=True)
    context.close()


# -- Error display (the template with `errors` and `c.error`, as the server will send them) --------------------------


def render_page(**overrides) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    env.globals.update(i18n.english())
    question = {"description": "How well does each image match the description?", "stereotypes": "How stereotypical?"}
    criteria = [
        {
            "id": cid,
            "question": text,
            "show_prompt": cid == "description",
            "check_index": None,
            "best_label": "Best",
            "worst_label": "Worst",
            "selected": [2, None, None] if cid == "description" else [1, 2, 3],
            "allow_skip": False,
            "skipped": False,
            "error": f"Rank every image for “{text}”." if cid == "description" else None,
        }
        for cid, text in question.items()
    ]
    ctx = {
        "code": "ABC",
        "position": 0,
        "token": "tok",
        "criteria": criteria,
        "images": [{"token": f"t{i}", "width": 64, "height": 64} for i in range(3)],
        "number": 1,
        "total": 4,
        "title": "Study",
        "prompt": "A street",
        "n_items": 3,
        "last": False,
        "error": None,
        "errors": [{"criterion_id": "description", "message": criteria[0]["error"]}],
    }
    ctx.update(overrides)
    return env.get_template("participant/page.html").render(**ctx)


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_error_summary_links_to_the_incomplete_question(browser, js):
    context = browser.new_context(java_script_enabled=js)
    page = context.new_page()
    errors = watch_errors(page)
    html = render_page()
    page.route(
        "http://study.test/static/**", lambda route: route.fulfill(path=STATIC / route.request.url.split("/")[-1])
    )
    page.route("http://study.test/i/**", lambda route: route.fulfill(path=STATIC / "favicon.svg"))
    page.route("http://study.test/p/**", lambda route: route.fulfill(body=html, content_type="text/html"))
    page.goto("http://study.test/p/ABC/page/0")
    page.wait_for_load_state("load")
    assert page.title().startswith("Error: ")
    summary = page.locator("#error-summary")
    assert summary.get_attribute("role") == "alert"
    assert page.evaluate("() => document.querySelector('main').firstElementChild.id") == "error-summary"
    links = summary.locator("a")
    assert links.count() == 1 and links.first.get_attribute("href") == "#q-description"
    question = page.inner_text("#q-description legend")
    message = page.inner_text("#q-description .field-error")
    assert question in message  # the error quotes the question's own text
    for i in range(3):
        sel = page.locator(f"#rank-description-{i}")
        assert sel.get_attribute("aria-invalid") == "true"
        assert "err-description" in sel.get_attribute("aria-describedby").split()
        assert page.locator(f"#rank-stereotypes-{i}").get_attribute("aria-invalid") is None
    assert page.query_selector("#q-stereotypes .field-error") is None
    # the kept choice stays chosen; the rest are empty
    assert [page.input_value(f"#rank-description-{i}") for i in range(3)] == ["2", "", ""]
    if js:
        assert page.evaluate("() => document.activeElement.id") == "error-summary"
        links.first.click()
        assert page.evaluate("() => document.activeElement.id") == "rank-description-1"  # the first one left empty
        page.click("#q-description li.item[data-index='1'] button.tap")
        assert page.get_attribute("#rank-description-1", "aria-invalid") == "true"  # still incomplete
        page.click("#q-description li.item[data-index='2'] button.tap")
        assert [page.input_value(f"#rank-description-{i}") for i in range(3)] == ["2", "1", "3"]
        assert page.get_attribute("#rank-description-1", "aria-invalid") == "false"
    else:
        links.first.click()
        assert page.url.endswith("#q-description")
    assert not errors, errors
    context.close()


def test_without_errors_there_is_no_summary_and_no_invalid_marking():
    html = render_page(errors=None, criteria=[])
    assert "error-summary" not in html and "aria-invalid" not in html
    assert "<title>Page 1 of 4" in html
