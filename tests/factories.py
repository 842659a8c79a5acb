"""What the test suites share: one clock, one way to launch a placeholder round, and participant drivers that go
through the production code: in-process through ``app.crud`` (:class:`CrudParticipant`), or over HTTP through the
real pages (:class:`WebParticipant`, over a Starlette ``TestClient`` or an ``httpx.Client`` to a live server)."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from sqlmodel import Session

from app import crud
from app.db import session_scope
from app.flow import Slot
from app.identity import PlatformEntry
from app.launch import launch_round
from app.placeholder import write_placeholders
from study_designs.schema import load_design

REPO = Path(__file__).resolve().parents[1]
DESIGNS = REPO / "study_designs"
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """UTC time that only moves when a test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def launch_placeholders(
    database_url: str,
    media_root: Path,
    design_path: Path,
    images: Path,
    round_id: str,
    *,
    size: int = 16,
    now: datetime | None = None,
) -> Path:
    """Placeholder images and their manifest under ``images``, launched as round ``round_id``; returns the manifest."""
    manifest, _ = write_placeholders(load_design(design_path), images, size=size)
    with session_scope(database_url) as s:
        launch_round(
            s,
            design_path=design_path,
            manifest_path=manifest,
            round_id=round_id,
            media_root=media_root,
            now=now or datetime.now(UTC),
        )
    return manifest


def attentive_answer(slot: Slot) -> dict[str, list[str]]:
    """Ranks in the order shown, except that an attention check's marked image is ranked last, as asked."""
    n = len(slot.image_order)
    form: dict[str, list[str]] = {"token": [slot.token]}
    for crit in slot.criteria_order:
        ranks = list(range(1, n + 1))
        if slot.check_image_id is not None and crit == slot.check_criterion:
            ranks = list(range(1, n))
            ranks.insert(slot.image_order.index(slot.check_image_id), n)
        for i, r in enumerate(ranks):
            form[f"rank-{crit}-{i}"] = [str(r)]
    return form


@dataclass
class CrudParticipant:
    """A participant driven in-process through ``app.crud`` (the functions the routes call), without HTTP."""

    session: Callable[[], Session]
    round_id: str
    pid: str
    secret: str = "k"
    code: str = ""
    status: str = ""

    def onboard(self, culture: str, now: datetime) -> str:
        """Entry, consent, culture and instructions; returns the participant's code."""
        with self.session() as s:
            entry = PlatformEntry("prolific", self.pid, {"PROLIFIC_PID": self.pid})
            p = crud.enter(s, round_id=self.round_id, entry=entry, secret=self.secret, now=now)
            self.code = p.code
            crud.give_consent(s, code=p.code, agreed=True, now=now)
            p = crud.choose_culture(s, code=p.code, culture=culture, now=now)
            if p.status == "instructions":
                p = crud.finish_instructions(s, code=p.code, now=now)
            self.status = p.status
        return self.code

    def finish(
        self, now: datetime, *, retries: int = 1, answer: Callable[[Slot], Mapping[str, Sequence[str]]] | None = None
    ) -> int:
        """Submit every page in order (each ``retries`` times, as network retries would); returns pages stored."""
        stored = 0
        with self.session() as s:
            for slot in crud.load(s, self.code).state.slots:
                form = (answer or attentive_answer)(slot)
                for _ in range(retries):
                    out = crud.submit_page(
                        s, code=self.code, position=slot.position, token=slot.token, form=form, now=now
                    )
                    stored += not out.replay
        return stored


# -- the pages' HTML forms, read as a browser without JavaScript reads them ------------------------------------


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


# -- a participant over HTTP -----------------------------------------------------------------------------------


@dataclass
class Seen:
    """One response a participant saw (kept when ``record`` is on)."""

    method: str
    url: str
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def prolific(pid: str, study: str = "s1") -> dict[str, str]:
    """The query string Prolific adds to the study link."""
    return {"PROLIFIC_PID": pid, "STUDY_ID": study, "SESSION_ID": f"sess-{pid}"}


@dataclass
class WebParticipant:
    """A participant using the real pages through their HTML forms, as a browser without JavaScript does.

    ``client`` is a Starlette ``TestClient`` or an ``httpx.Client`` with a ``base_url`` (the same calls work on
    both). ``params`` is the platform's query string (None: an anonymous entry). Every rank is chosen by
    ``choose``; ``heed_checks=False`` fails attention checks; ``skip(position, criterion)`` ticks skip boxes;
    ``retries`` posts every ranking page that many times with the same token (network retries); ``record`` keeps
    every response in ``seen``; ``fetch_links`` (in :meth:`walk`) also fetches every image and link a page shows.
    """

    client: Any
    round_id: str
    culture: str = "korea"
    params: dict[str, str] | None = None
    choose: RankChooser = reverse_ranks
    heed_checks: bool = True
    skip: Callable[[int, str], bool] | None = None
    retries: int = 1
    seed: str = ""
    record: bool = False
    fetch_links: bool = False
    code: str = ""
    pages: int = 0
    given: dict[tuple[int, str, int], int] = field(default_factory=dict)  # (position, criterion, index) -> rank
    final_html: str = ""
    seen: list[Seen] = field(default_factory=list)
    html: str = ""  # the last page read

    def _get(self, url: str, **kw: Any) -> Any:
        r = self.client.get(url, follow_redirects=False, **kw)
        self._keep(r)
        return r

    def _post(self, url: str, data: Mapping[str, str]) -> Any:
        r = self.client.post(url, data=dict(data), follow_redirects=False)
        self._keep(r)
        return r

    def _keep(self, r: Any) -> None:
        if self.record:
            self.seen.append(Seen(r.request.method, str(r.request.url), r.status_code, dict(r.headers), r.content))

    def enter(self) -> Any:
        """Open the study link (the client's cookies are kept: a console login in the same client stays); the
        answer is the entry route's own (303 when in)."""
        r = self._get(f"/s/{self.round_id}", params=self.params)
        if r.status_code in (302, 303) and "/p/" in r.headers["location"]:
            self.code = r.headers["location"].rstrip("/").rsplit("/p/", 1)[-1]
        return r

    def page(self) -> Any:
        r = self._get(f"/p/{self.code}")
        self.html = r.text
        return r

    def form(self) -> Form | None:
        forms = parse(self.page().text).forms
        return forms[0] if forms else None

    def onboard(self, culture: str | None = None) -> Any:
        """Entry, then consent, culture and instructions as the pages ask; returns the last answer (a 303 into the
        first ranking page or the end, or the first refusal)."""
        self.culture = culture or self.culture
        r = self.enter()
        if r.status_code != 303:
            return r
        for _ in range(5):
            f = self.form()
            kind, _ = step_of(f)
            if f is None or kind not in ("consent", "profile", "instructions"):
                return r
            r = self._post(f.action, step_answer(f, self.culture))
            if r.status_code != 303:
                return r
        raise AssertionError("onboarding did not end")

    def prepare(self) -> tuple[str, dict[str, str]]:
        """The current ranking page's action and this participant's complete answer to it."""
        f = self.form()
        kind, pos = step_of(f)
        assert f is not None and kind == "page", self.html[:2000]
        return f.action, self._answer(f, pos)

    def _answer(self, f: Form, pos: int | None) -> dict[str, str]:
        skip = self.skip
        return answer(
            f,
            self.choose,
            heed_checks=self.heed_checks,
            seed=f"{self.seed}{self.code}",
            skip=(lambda crit: skip(pos or 0, crit)) if skip else None,
        )

    def post(self, prepared: tuple[str, dict[str, str]]) -> Any:
        r = None
        for _ in range(self.retries):
            r = self._post(*prepared)
        if r is not None and r.status_code == 303:
            self._remember(prepared)
        return r

    def _remember(self, prepared: tuple[str, dict[str, str]]) -> None:
        action, data = prepared
        m = PAGE_ACTION.search(action)
        assert m
        pos = int(m.group("pos"))
        self.pages += 1
        for name, value in data.items():
            if name.startswith("rank-"):
                crit, idx = name.removeprefix("rank-").rsplit("-", 1)
                if f"skip-{crit}" not in data:
                    self.given[(pos, crit, int(idx))] = int(value)

    def submit_current(self, clock: FakeClock | None = None, seconds: float = 10) -> Any:
        prepared = self.prepare()
        if clock is not None:
            clock.advance(seconds=seconds)
        return self.post(prepared)

    def finish(self, clock: FakeClock | None = None, max_pages: int = 50) -> int:
        """Answer ranking pages until none is left; returns how many were answered."""
        for pages in range(max_pages):
            if step_of(self.form())[0] != "page":
                self.final_html = self.html
                return pages
            r = self.submit_current(clock)
            assert r.status_code in (200, 303), r.text
        raise AssertionError("participant never finished")

    def walk(self, start: str | None = None, *, stop_after_pages: int | None = None) -> WebParticipant:
        """Through the whole study from the study link as a new browser (no cookies), or from ``start`` (e.g.
        ``/p/{code}``), until it ends, or until
        ``stop_after_pages`` ranking pages were answered (``final_html`` is then the next page)."""
        if start is None:
            self.client.cookies.clear()
        r = self._get(start or f"/s/{self.round_id}", params=self.params if start is None else None)
        fetched: set[str] = set()
        for _ in range(500):
            if r.status_code in (302, 303, 307):
                loc = r.headers["location"]
                if "/p/" in loc:
                    self.code = loc.rstrip("/").rsplit("/p/", 1)[-1]
                r = self._get(loc)
                continue
            assert r.status_code == 200, r.text[:500]
            self.html = self.final_html = r.text
            if start and not self.code and "/p/" in start:
                self.code = start.rstrip("/").rsplit("/p/", 1)[-1]
            if self.fetch_links:
                for url in re.findall(r'(?:src|href)="(/[^"]*)"', r.text):
                    if url not in fetched:
                        fetched.add(url)
                        self._get(url)
            forms = parse(r.text).forms
            f = forms[0] if forms else None
            kind, pos = step_of(f)
            if f is None:
                return self
            if kind == "page":
                if stop_after_pages is not None and self.pages >= stop_after_pages:
                    return self
                r = self.post((f.action, self._answer(f, pos)))
            else:
                r = self._post(f.action, step_answer(f, self.culture))
        raise AssertionError("the study did not end")


def onboarded(
    client: Any, round_id: str, culture: str, params: dict[str, str] | None = None, **options: Any
) -> WebParticipant:
    """A new participant (a new browser: no cookies) through entry, consent, culture and instructions, on their
    first ranking page."""
    client.cookies.clear()
    p = WebParticipant(client, round_id, culture, params=params, **options)
    r = p.onboard()
    assert r.status_code == 303 and step_of(p.form())[0] == "page", p.html[:500]
    return p


def walk(client: Any, start: str, *, culture: str, params: dict[str, str] | None = None, **options: Any):
    """A new :class:`WebParticipant` walked from ``start`` (a study link ``/s/{round}`` or a ``/p/{code}``)."""
    stop = options.pop("stop_after_pages", None)
    round_id = start.removeprefix("/s/") if start.startswith("/s/") else ""
    p = WebParticipant(client, round_id, culture, params=params, **options)
    return p.walk(None if start.startswith("/s/") else start, stop_after_pages=stop)


def crawl_participant(
    client: Any, round_id: str, culture: str, params: dict[str, str] | None = None, *, seed: str = "c"
) -> WebParticipant:
    """The whole study walked as a browser without JavaScript would, random ranks chosen, every response kept in
    ``seen`` and every image and link a page shows fetched too."""
    p = WebParticipant(
        client, round_id, culture, params=params, choose=random_ranks, seed=seed, record=True, fetch_links=True
    )
    return p.walk()
