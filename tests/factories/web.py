"""A participant over HTTP: the real pages through their forms, on a Starlette ``TestClient`` or an
``httpx.Client`` to a live server (the same calls work on both)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.factories.clock import FakeClock
from tests.factories.pages import (
    PAGE_ACTION,
    Form,
    RankChooser,
    answer,
    parse,
    random_ranks,
    reverse_ranks,
    step_answer,
    step_of,
)


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
            if r.status_code == 503 and "Retry-After" in r.headers:  # the culture is momentarily full: come back
                self.html = self.final_html = r.text
                return self
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
            if f is None or kind == "unknown":  # the end, or a form for another site (MTurk's externalSubmit)
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
