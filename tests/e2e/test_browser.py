"""Real browser (Playwright + /usr/bin/chromium): keyboard-only and touch/drag participants complete the demo."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlmodel import select

from app.db import make_engine, new_session
from app.export import write_responses
from app.models import Participant
from tests.e2e.steps import reveal, to_last

pytestmark = pytest.mark.browser


def watch_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    return errors


def tab_to(page, selector: str, limit: int = 300) -> None:
    """Press Tab until the focused element matches ``selector`` (keyboard only, no clicks)."""
    for _ in range(limit):
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"could not reach {selector} with Tab")


def current_ranks(page) -> dict[str, dict[int, int]]:
    """criterion -> {image number: rank} as the selects hold them (what the form will submit)."""
    raw = page.evaluate(
        """() => {
        const out = {};
        for (const s of document.querySelectorAll('form.ranking select')) {
          if (s.disabled) continue;
          const [, crit, idx] = s.name.match(/^rank-(.+)-(\\d+)$/);
          (out[crit] = out[crit] || {})[Number(idx) + 1] = Number(s.value);
        }
        return out;
      }"""
    )
    return {crit: {int(k): v for k, v in by.items()} for crit, by in raw.items()}


def marked_image(page, crit: str) -> int | None:
    return page.evaluate(
        """c => { const m = document.querySelector(`fieldset[data-criterion="${c}"] .marker`);
                  return m ? Number(m.closest('li').dataset.index) + 1 : null; }""",
        crit,
    )


def criteria_on(page) -> list[str]:
    return page.eval_on_selector_all("fieldset.criterion", "els => els.map(e => e.dataset.criterion)")


def export_rows(live, tmp_path: Path) -> list[dict[str, str]]:
    engine = make_engine(live.settings.database_url)
    out = tmp_path / "responses.csv"
    with new_session(engine) as s:
        write_responses(s, live.round_id, out)
        people = {p.pseudonym: p for p in s.exec(select(Participant)).all()}
    engine.dispose()
    with out.open(newline="") as fh:
        return [dict(r, _code=people[r["participant_id"]].code) for r in csv.DictReader(fh)]


def test_keyboard_only_participant_completes_the_demo(live_demo, browser, tmp_path):
    shots = tmp_path / "screens-keyboard"
    shots.mkdir()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = watch_errors(page)
    page.goto(f"{live_demo.base_url}/s/{live_demo.round_id}")
    page.screenshot(path=shots / "consent.png", full_page=True)
    assert "Content warning" in page.content()
    tab_to(page, "input[name=agree]")
    page.keyboard.press("Space")
    tab_to(page, "button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_selector("input[name=culture]")
    tab_to(page, "input[name=culture]")
    page.keyboard.press("Space")  # the first option: Korea
    assert page.is_checked("input[value=korea]")
    tab_to(page, "button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=How it works")
    tab_to(page, "button[type=submit]")
    page.keyboard.press("Enter")
    code = page.url.rstrip("/").split("/p/")[-1]

    expected: dict[tuple[int, str, int], int] = {}
    for n_page in range(10):
        page.wait_for_selector("form.ranking, #completion-code")
        if page.query_selector("#completion-code"):
            break
        assert page.locator("select").first.get_attribute("id").startswith("rank-")
        label = page.locator(f"label[for={page.locator('select').first.get_attribute('id')}]").inner_text()
        assert "rank" in label.lower()
        for crit in criteria_on(page):
            marked = marked_image(page, crit)
            fs = f'fieldset[data-criterion="{crit}"]'
            reveal(page, crit, "keyboard")
            if crit == "offensiveness" and n_page == 0:
                tab_to(page, f"{fs} .skip input")
                page.keyboard.press("Space")
                continue
            # nothing is ranked yet: press "Rank next" from best to worst (reverse of the shown order, the image
            # marked "Rank me last" last), then swap the best two with Alt+ArrowDown
            n = page.locator(f"{fs} li.item").count()
            order = [i for i in range(n - 1, -1, -1) if i + 1 != marked] + ([marked - 1] if marked else [])
            for rank, i in enumerate(order, start=1):
                tab_to(page, f"{fs} li.item[data-index='{i}'] button.tap")
                page.keyboard.press("Enter")
                assert f"ranked {rank} of {n}" in page.inner_text("#rank-status")
            tab_to(page, f"{fs} li.item[data-index='{order[0]}'] button.tap")
            page.keyboard.press("Alt+ArrowDown")
            assert "moved to rank 2" in page.inner_text("#rank-status")
        ranks = current_ranks(page)
        for crit, by_image in ranks.items():
            assert sorted(by_image.values()) == [1, 2, 3]
            if (m := marked_image(page, crit)) is not None:
                assert by_image[m] == 3
        page.screenshot(path=shots / f"page-{n_page}.png", full_page=True)
        position = int(page.get_attribute("form.ranking", "action").rsplit("/", 1)[-1])
        for crit, by_image in ranks.items():
            for image_no, rank in by_image.items():
                expected[(position, crit, image_no - 1)] = rank
        to_last(page, "keyboard")
        tab_to(page, "button.next")
        page.keyboard.press("Enter")
        page.wait_for_load_state("load")
    assert page.inner_text("#completion-code") == "DEMO-DONE"
    page.screenshot(path=shots / "done.png", full_page=True)
    assert not errors, errors

    rows = [r for r in export_rows(live_demo, tmp_path) if r["_code"] == code]
    assert len(rows) == len(expected)
    with_positions = {}
    engine = make_engine(live_demo.settings.database_url)
    from app.models import Assignment

    with new_session(engine) as s:
        person = s.exec(select(Participant).where(Participant.code == code)).one()
        for slot in s.exec(select(Assignment).where(Assignment.participant_id == person.id)):
            with_positions[slot.page_id, slot.kind] = slot.position
    engine.dispose()
    for r in rows:
        kind = "attention" if r["is_attention_check"] == "true" else "regular"
        key = (with_positions[r["page_id"], kind], r["criterion"], int(r["initial_position"]))
        assert int(r["rank"]) == expected[key]
    assert any(r["moved"] == "true" for r in rows)
    assert all(r["attention_passed"] == "true" for r in rows if r["is_attention_check"] == "true")
    assert list(shots.glob("*.png"))


def test_touch_participant_taps_and_drags_at_390px(live_demo, browser, tmp_path):
    shots = tmp_path / "screens-touch"
    shots.mkdir()
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True, device_scale_factor=2
    )
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(f"{live_demo.base_url}/s/{live_demo.round_id}?PROLIFIC_PID=touch01&STUDY_ID=s1&SESSION_ID=x1")
    page.tap("input[name=agree]")
    page.tap("button[type=submit]")
    page.tap("input[value=nigeria]")
    page.tap("button[type=submit]")
    page.tap("button[type=submit]")
    code = page.url.rstrip("/").split("/p/")[-1]

    # tapping an image opens it larger; closing returns to the page
    page.wait_for_selector("form.ranking")
    page.locator("a.zoom").first.tap()
    page.wait_for_selector("dialog.zoom-view[open]")
    big = page.locator("dialog.zoom-view img").bounding_box()
    assert big["width"] > 250
    page.screenshot(path=shots / "zoom.png")
    page.tap("dialog.zoom-view button")
    assert page.query_selector("dialog.zoom-view[open]") is None

    submitted: dict[tuple[int, str], dict[int, int]] = {}
    for n_page in range(10):
        page.wait_for_selector("form.ranking, #completion-code")
        if page.query_selector("#completion-code"):
            break
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"horizontal scrolling at 390 px: {width}"
        for crit in criteria_on(page):
            fs = f'fieldset[data-criterion="{crit}"]'
            marked = marked_image(page, crit)
            items = page.locator(f"{fs} li.item")
            reveal(page, crit, "tap")
            if marked is not None:  # tap the unmarked images first: the marked one is left last
                for i in [i for i in range(3) if i + 1 != marked] + [marked - 1]:
                    page.locator(f"{fs} li.item[data-index='{i}'] button.tap").tap()
            elif n_page % 2 == 0:  # tap-to-rank: third image best, then the first, then the second
                for i in (2, 0, 1):
                    page.locator(f"{fs} li.item[data-index='{i}'] button.tap").tap()
                assert current_ranks(page)[crit] == {3: 1, 1: 2, 2: 3}
            else:  # rank in the shown order, then drag the last image onto the first place
                for i in (0, 1, 2):
                    page.locator(f"{fs} li.item[data-index='{i}'] button.tap").tap()
                items.nth(2).drag_to(items.nth(0))
                assert current_ranks(page)[crit] == {3: 1, 1: 2, 2: 3}
                assert "drag" in page.inner_text("#rank-status")
        ranks = current_ranks(page)
        for crit, by_image in ranks.items():
            if (m := marked_image(page, crit)) is not None:
                assert by_image[m] == 3
        position = int(page.get_attribute("form.ranking", "action").rsplit("/", 1)[-1])
        for crit, by_image in ranks.items():
            submitted[(position, crit)] = by_image
        page.screenshot(path=shots / f"page-{n_page}.png", full_page=True)
        to_last(page, "tap")
        page.locator("button.next").tap()
        page.wait_for_load_state("load")
    assert page.inner_text("#completion-code") == "DEMO-DONE"
    page.screenshot(path=shots / "done.png")
    assert not errors, errors
    context.close()

    rows = [r for r in export_rows(live_demo, tmp_path) if r["_code"] == code]
    assert len(rows) == sum(len(v) for v in submitted.values())
    assert {r["participant_culture"] for r in rows} == {"nigeria"}
    assert "touch01" not in (tmp_path / "responses.csv").read_text()


def test_without_javascript_the_plain_form_works(live_demo, browser, tmp_path):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 740})
    page = context.new_page()
    page.goto(f"{live_demo.base_url}/s/{live_demo.round_id}")
    page.check("input[name=agree]")
    page.click("button[type=submit]")
    page.check("input[value=korea]")
    page.click("button[type=submit]")
    page.click("button[type=submit]")
    page.wait_for_selector("form.ranking")
    assert page.query_selector(".rank-badge") is None  # no enhancement without JavaScript
    crits = criteria_on(page)
    for crit in crits:  # every rank starts empty and must be chosen
        for i, rank in enumerate((3, 1, 2)):
            page.select_option(f"select[name=rank-{crit}-{i}]", str(rank))
    marked = {c: m for c in crits if (m := marked_image(page, c)) is not None}
    for crit, m in marked.items():  # the attention check: the marked image last
        other = next(i for i in range(3) if page.input_value(f"select[name=rank-{crit}-{i}]") == "3")
        page.select_option(f"select[name=rank-{crit}-{other}]", page.input_value(f"select[name=rank-{crit}-{m - 1}]"))
        page.select_option(f"select[name=rank-{crit}-{m - 1}]", "3")
    crit = crits[0]
    mine, keep = page.input_value(f"select[name=rank-{crit}-0]"), page.input_value(f"select[name=rank-{crit}-1]")
    page.select_option(f"select[name=rank-{crit}-0]", keep)  # a duplicate rank: the server explains
    page.click("button.next")
    assert "Use each rank from 1 to 3 once" in page.inner_text(f"#err-{crit}")  # beside the question
    assert page.get_attribute("#error-summary a", "href") == f"#q-{crit}"  # and in the summary, linked to it
    assert page.input_value(f"select[name=rank-{crit}-0]") == keep  # the choices are kept
    page.select_option(f"select[name=rank-{crit}-0]", mine)
    page.click("button.next")
    assert page.inner_text(".progress").startswith("Page 2 of")
    page.screenshot(path=tmp_path / "no-js.png", full_page=True)
    context.close()


def test_enhanced_page_fits_360px(live_demo, browser, tmp_path):
    context = browser.new_context(viewport={"width": 360, "height": 740}, has_touch=True, is_mobile=True)
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(f"{live_demo.base_url}/s/{live_demo.round_id}")
    page.tap("input[name=agree]")
    page.tap("button[type=submit]")
    page.tap("input[value=nigeria]")
    page.tap("button[type=submit]")
    page.tap("button[type=submit]")
    page.wait_for_selector("fieldset.enhanced")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    tap = page.locator("button.tap").first.bounding_box()
    assert tap["height"] >= 40 and tap["x"] >= 0 and tap["x"] + tap["width"] <= 360  # a comfortable touch target
    page.screenshot(path=tmp_path / "enhanced-360.png", full_page=True)
    assert not errors, errors
    context.close()
