"""The pages' HTML forms read as a browser without JavaScript reads them, and complete answers to them (every rank
chosen: ranking pages arrive unranked)."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Form:
    action: str
    hidden: dict[str, str] = field(default_factory=dict)
    selects: dict[str, dict] = field(default_factory=dict)  # name -> {"options": [...], "selected": str | None}
    radios: dict[str, list[str]] = field(default_factory=dict)
    checkboxes: dict[str, str] = field(default_factory=dict)
    marked: dict[str, int] = field(default_factory=dict)  # criterion -> index of the "rank me last" image
    legends: list[str] = field(default_factory=list)
    button: str = ""

    def rank_counts(self) -> dict[str, int]:
        """Criterion -> number of images to rank, read from the ``rank-{criterion}-{index}`` selects."""
        counts: dict[str, int] = {}
        for name in self.selects:
            if name.startswith("rank-"):
                crit, idx = name.removeprefix("rank-").rsplit("-", 1)
                counts[crit] = max(counts.get(crit, 0), int(idx) + 1)
        return counts


class FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.imgs: list[dict[str, str]] = []
        self._select: str | None = None
        self._criterion: str | None = None
        self._item: int | None = None
        self._in: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        form = self.forms[-1] if self.forms else None
        if tag == "form":
            self.forms.append(Form(action=a.get("action", "")))
        elif tag == "img":
            self.imgs.append(a)
        elif form is None:
            return
        elif tag == "fieldset":
            self._criterion = a.get("data-criterion")
        elif tag == "li" and "data-index" in a:
            self._item = int(a["data-index"])
        elif tag == "span" and "marker" in a.get("class", "") and self._criterion is not None:
            form.marked[self._criterion] = self._item if self._item is not None else -1
        elif tag == "input":
            kind = a.get("type", "text")
            if kind == "hidden":
                form.hidden[a["name"]] = a.get("value", "")
            elif kind == "radio":
                form.radios.setdefault(a["name"], []).append(a.get("value", ""))
            elif kind == "checkbox":
                form.checkboxes[a["name"]] = a.get("value", "on")
        elif tag == "select":
            self._select = a["name"]
            form.selects[a["name"]] = {"options": [], "selected": None, "id": a.get("id")}
        elif tag == "option" and self._select is not None:
            sel = form.selects[self._select]
            sel["options"].append(a["value"])
            if "selected" in a:
                sel["selected"] = a["value"]
        elif tag in {"legend", "button"}:
            self._in, self._text = tag, []

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "li":
            self._item = None
        elif tag == self._in and self.forms:
            text = " ".join("".join(self._text).split())
            if tag == "legend":
                self.forms[-1].legends.append(text)
            else:
                self.forms[-1].button = text
            self._in = None


def parse(html: str) -> FormParser:
    p = FormParser()
    p.feed(html)
    return p


PAGE_ACTION = re.compile(r"/p/(?P<code>[^/]+)/page/(?P<pos>\d+)$")
STEP_ACTION = re.compile(r"/p/(?P<code>[^/]+)/(?P<step>consent|profile|instructions)$")


def step_of(form: Form | None) -> tuple[str, int | None]:
    """What a page asks for: ("page", position), ("consent" | "profile" | "instructions", None), ("end", None)."""
    if form is None:
        return "end", None
    if m := PAGE_ACTION.search(form.action):
        return "page", int(m.group("pos"))
    if m := STEP_ACTION.search(form.action):
        return m.group("step"), None
    return "unknown", None


# -- answering a ranking page: every rank is chosen (pages arrive unranked) -----------------------------------

# (criterion, number of images, index of an attention check's marked image or None, rng) -> rank of each image
RankChooser = Callable[[str, int, "int | None", random.Random], list[int]]


def _marked_last(order: list[int], marked: int | None) -> list[int]:
    """Ranks (by image index) from a preference ``order`` of indices, with ``marked`` moved to the end."""
    if marked is not None and 0 <= marked < len(order):
        order = [i for i in order if i != marked] + [marked]
    ranks = [0] * len(order)
    for rank, i in enumerate(order, start=1):
        ranks[i] = rank
    return ranks


def in_order(criterion: str, n: int, marked: int | None, rng: random.Random) -> list[int]:
    """Ranks in the order shown (a careless participant's answer when checks are not heeded)."""
    return _marked_last(list(range(n)), marked)


def reverse_ranks(criterion: str, n: int, marked: int | None, rng: random.Random) -> list[int]:
    """The shown order reversed; an attention check's marked image last, the others then in the shown order."""
    return _marked_last(list(range(n)), marked) if marked is not None else list(range(n, 0, -1))


def random_ranks(criterion: str, n: int, marked: int | None, rng: random.Random) -> list[int]:
    """A random permutation (from the participant's seeded rng); the marked image of a check is swapped to last."""
    ranks = list(range(1, n + 1))
    rng.shuffle(ranks)
    if marked is not None and marked >= 0:
        j = ranks.index(n)
        ranks[j], ranks[marked] = ranks[marked], ranks[j]
    return ranks


def answer(
    form: Form,
    choose: RankChooser = in_order,
    *,
    heed_checks: bool = True,
    seed: str = "",
    skip: Callable[[str], bool] | None = None,
) -> dict[str, str]:
    """A complete answer to a ranking page: its hidden fields (token) and a rank for every select.

    ``heed_checks=False`` answers as if the attention check's instruction went unread. ``skip(criterion)`` ticks
    the criterion's skip box where the page offers one (the ranks are still sent, as a browser does)."""
    data = dict(form.hidden)
    for crit, n in form.rank_counts().items():  # in the order the page asks
        if skip and skip(crit) and f"skip-{crit}" in form.checkboxes:
            data[f"skip-{crit}"] = "1"
        marked = form.marked.get(crit) if heed_checks else None
        rng = random.Random(f"{seed}:{form.action}:{crit}")
        for i, rank in enumerate(choose(crit, n, marked, rng)):
            data[f"rank-{crit}-{i}"] = str(rank)
    return data


def step_answer(form: Form, culture: str) -> dict[str, str]:
    """The answer to an onboarding step: consent given, the culture chosen, instructions read."""
    data = dict(form.hidden)
    kind, _ = step_of(form)
    if kind == "consent":
        data["agree"] = "yes"
    elif kind == "profile":
        data["culture"] = culture
    return data
