"""The ranking page shows one question at a time with JavaScript: helpers that move through its steps as a
participant does (pointer, touch or keyboard). Without JavaScript every question is shown and they do nothing."""

from __future__ import annotations


def _current(page):
    return page.locator("fieldset.criterion:not([hidden])").first


def reveal(page, crit: str, how: str = "click") -> None:
    """Press "Next question" (or "Back") until ``crit``'s question is the one shown."""
    target = page.locator(f'fieldset[data-criterion="{crit}"]')
    steps = page.eval_on_selector_all("fieldset.criterion", "els => els.map(e => e.dataset.criterion)")
    for _ in range(len(steps) + 1):
        if target.is_visible():
            return
        shown = _current(page).get_attribute("data-criterion")
        forward = steps.index(crit) > steps.index(shown)
        button = _current(page).locator("button.forward" if forward else "button.back")
        if how == "tap":
            button.tap()
        elif how == "keyboard":
            button.focus()
            page.keyboard.press("Enter")
        else:
            button.click()
    assert target.is_visible(), f"question {crit} could not be reached"


def to_last(page, how: str = "click") -> None:
    """Move to the last question, where the page's Next/Finish button is."""
    steps = page.eval_on_selector_all("fieldset.criterion", "els => els.map(e => e.dataset.criterion)")
    if steps:
        reveal(page, steps[-1], how)
