"""A participant bot that reads the study's HTML forms (no JavaScript) and submits them like a browser would."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Form:
    action: str
    hidden: dict[str, str] = field(default_factory=dict)
    selects: dict[str, dict] = field(default_factory=dict)  # name -> {"options": [...], "selected": str, "label": ..}
    radios: dict[str, list[str]] = field(default_factory=dict)
    checkboxes: dict[str, str] = field(default_factory=dict)
    marked: dict[str, int] = field(default_factory=dict)  # criterion -> index of the "rank me last" image
    legends: list[str] = field(default_factory=list)
    button: str = ""


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


RankChooser = Callable[[str, int, "int | None"], list[int]]  # (criterion, n_items, marked index) -> ranks by index


def reverse_ranks(criterion: str, n: int, marked: int | None) -> list[int]:
    """Rank the images in reverse of the shown order, but honour an attention check's marked image."""
    ranks = list(range(n, 0, -1))
    if marked is not None:
        ranks = [0] * n
        ranks[marked] = n
        others = [i for i in range(n) if i != marked]
        for r, i in enumerate(others, start=1):
            ranks[i] = r
    return ranks


@dataclass
class Walk:
    code: str
    given: dict[tuple[int, str, int], int] = field(default_factory=dict)  # (position, criterion, index) -> rank
    pages: int = 0
    final_html: str = ""
    seen_html: list[str] = field(default_factory=list)


def page_position(action: str) -> int | None:
    m = re.search(r"/page/(\d+)$", action)
    return int(m.group(1)) if m else None


def walk(
    client,
    entry_url: str,
    *,
    culture: str,
    choose: RankChooser = reverse_ranks,
    skip: Callable[[int, str], bool] | None = None,
    stop_after_pages: int | None = None,
    params: dict[str, str] | None = None,
) -> Walk:
    """Complete the study from ``entry_url`` through the plain HTML forms (as a new browser: no cookies)."""
    client.cookies.clear()
    r = client.get(entry_url, params=params, follow_redirects=True)
    assert r.status_code == 200, r.text
    code = str(r.url).rstrip("/").split("/p/")[-1]
    w = Walk(code=code)
    for _ in range(500):
        w.seen_html.append(r.text)
        forms = parse(r.text).forms
        if not forms:
            w.final_html = r.text
            return w
        f = forms[0]
        data: dict[str, str] = dict(f.hidden)
        if f.action.endswith("/consent"):
            data["agree"] = "yes"
        elif f.action.endswith("/profile"):
            data["culture"] = culture
        elif (pos := page_position(f.action)) is not None:
            if stop_after_pages is not None and w.pages >= stop_after_pages:
                w.final_html = r.text
                return w
            criteria: dict[str, int] = {}
            for name in f.selects:
                crit, idx = name.removeprefix("rank-").rsplit("-", 1)
                criteria[crit] = max(criteria.get(crit, 0), int(idx) + 1)
            for crit, n in criteria.items():
                if skip and skip(pos, crit) and f"skip-{crit}" in f.checkboxes:
                    data[f"skip-{crit}"] = "1"
                ranks = choose(crit, n, f.marked.get(crit))
                for i, rank in enumerate(ranks):
                    data[f"rank-{crit}-{i}"] = str(rank)
                    if f"skip-{crit}" not in data:
                        w.given[(pos, crit, i)] = rank
            w.pages += 1
        r = client.post(f.action, data=data, follow_redirects=True)
        if r.status_code == 503 and "Retry-After" in r.headers:  # the culture is momentarily full: come back later
            w.final_html = r.text
            return w
        assert r.status_code == 200, r.text
    raise AssertionError("the study did not end")
