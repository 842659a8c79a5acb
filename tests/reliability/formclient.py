"""The crash campaign's async participant: it reads and answers pages with ``tests.factories`` (the same form
reading, step recognition and rank choice as :class:`tests.factories.WebParticipant`), and adds only what a server
restart needs on an ``httpx.AsyncClient``: every acknowledged answer, the one in flight, and the resume checks.

A submission counts as *acknowledged* only when the server answered it with its success redirect (303). When the
connection drops mid-request the answer is *in flight*: after the restart the participant must be shown either
the same page (nothing stored) or the next one (stored, and a retry with the same token is an idempotent replay).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx

from tests.factories import Form, answer, parse, random_ranks, step_answer, step_of


class ServerGone(Exception):
    """The connection failed (server killed or restarting)."""


class Unexpected(AssertionError):
    """The server answered something a correct server never answers."""


@dataclass
class Timings:
    """Latency samples per route label (seconds)."""

    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # 5xx answers
    dropped: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # connection errors

    def add(self, route: str, seconds: float) -> None:
        self.samples[route].append(seconds)


def route_label(method: str, path: str) -> str:
    if path.startswith("/s/"):
        return f"{method} /s/{{round}}"
    if path.startswith("/i/"):
        return f"{method} /i/{{token}}"
    if m := re.match(r"^/p/[^/]+(/.*)?$", path):
        rest = m.group(1) or ""
        rest = re.sub(r"/page/\d+$", "/page/{n}", rest)
        return f"{method} /p/{{code}}{rest}"
    return f"{method} {path}"


@dataclass
class Participant:
    pid: str
    culture: str
    round_id: str
    completion_code: str
    images: bool = False  # fetch the page's images like a browser
    reenter_after_crash: bool = False  # come back through the platform link (a fresh browser) instead of /p/{code}
    code: str | None = None
    acked: dict[int, dict[str, str]] = field(default_factory=dict)  # position -> the acknowledged form
    inflight: tuple[int, dict[str, str]] | None = None
    done: bool = False
    ineligible: bool = False
    crashes_seen: int = 0
    reentered: bool = False
    replays: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def entry_params(self) -> dict[str, str]:
        return {"PROLIFIC_PID": self.pid, "STUDY_ID": "reliability", "SESSION_ID": f"s-{self.pid}"}

    def form_data(self, form: Form) -> dict[str, str]:
        """Random ranks seeded by the participant, so a retry after a restart sends the same answer."""
        return answer(form, random_ranks, seed=self.pid)


async def _request(client: httpx.AsyncClient, timings: Timings | None, method: str, url: str, **kw) -> httpx.Response:
    t0 = time.perf_counter()
    try:
        r = await client.request(method, url, **kw)
    except httpx.TransportError as err:
        if timings is not None:
            timings.dropped[route_label(method, httpx.URL(url).path)] += 1
        raise ServerGone(str(err) or type(err).__name__) from err
    if timings is not None:
        label = route_label(method, r.request.url.path)
        timings.add(label, time.perf_counter() - t0)
        if r.status_code >= 500:
            timings.errors[label] += 1
    return r


async def current(p: Participant, client: httpx.AsyncClient, timings: Timings | None) -> httpx.Response:
    """The participant's current step: re-enter with the platform id (fresh browser) or open their own link."""
    if p.code is None or p.reentered:
        r = await _request(client, timings, "GET", f"/s/{p.round_id}", params=p.entry_params)
        if r.status_code != 303:
            raise Unexpected(f"{p.pid}: entry answered {r.status_code}: {r.text[:300]}")
        code = r.headers["location"].rstrip("/").rsplit("/p/", 1)[-1]
        if p.code is not None and code != p.code:
            p.problems.append(f"{p.pid}: re-entering with the same platform id gave another participant")
        p.code, p.reentered = code, False
    return await _request(client, timings, "GET", f"/p/{p.code}")


def _shown_position(html: str) -> tuple[str, int | None, Form | None]:
    forms = parse(html).forms
    form = forms[0] if forms else None
    return (*step_of(form), form)


async def run(p: Participant, client: httpx.AsyncClient, timings: Timings | None = None, max_steps: int = 400) -> None:
    """Walk the study until it ends; raises :class:`ServerGone` when the server disappears mid-walk."""
    for _ in range(max_steps):
        r = await current(p, client, timings)
        if r.status_code != 200:
            raise Unexpected(f"{p.pid}: GET /p/ answered {r.status_code}: {r.text[:300]}")
        kind, pos, form = _shown_position(r.text)
        if p.inflight is not None:
            check_resume(p, kind, pos, r.text)
            if (kind == "page" and pos == p.inflight[0] + 1) or kind == "end":
                await _retry_inflight(p, client, timings)
                continue
            p.inflight = None
        if kind == "end":
            _finish(p, r.text)
            return
        if form is None or kind == "unknown":
            raise Unexpected(f"{p.pid}: cannot read the page: {r.text[:300]}")
        if kind == "page":
            assert pos is not None
            if pos != len(p.acked):
                p.problems.append(f"{p.pid}: shown page {pos} but {len(p.acked)} pages were acknowledged")
            if p.images:
                for img in parse(r.text).imgs:
                    ir = await _request(client, timings, "GET", img["src"])
                    if ir.status_code != 200 or not ir.content.startswith(b"\x89PNG"):
                        raise Unexpected(f"{p.pid}: image {img['src']} answered {ir.status_code}")
            data = p.form_data(form)
            p.inflight = (pos, data)
        else:
            data = step_answer(form, p.culture)
        resp = await _request(client, timings, "POST", form.action, data=data)
        if resp.status_code != 303:
            raise Unexpected(f"{p.pid}: POST {form.action} answered {resp.status_code}: {resp.text[:300]}")
        if kind == "page":
            assert pos is not None
            p.acked[pos] = data
            p.inflight = None
    raise Unexpected(f"{p.pid}: the study did not end after {max_steps} steps")


def check_resume(p: Participant, kind: str, pos: int | None, html: str) -> None:
    """After a crash the participant must be on the page they were on, or the next one if it was stored."""
    assert p.inflight is not None
    q = p.inflight[0]
    ok = (kind == "page" and pos in {q, q + 1}) or (kind == "end" and p.completion_code in html)
    if not ok:
        p.problems.append(f"{p.pid}: after a restart shown {kind} {pos}, expected page {q} or {q + 1}")


async def _retry_inflight(p: Participant, client: httpx.AsyncClient, timings: Timings | None) -> None:
    """The in-flight page was stored without its answer reaching us: the same form again must be a replay (303)."""
    assert p.inflight is not None and p.code is not None
    pos, data = p.inflight
    resp = await _request(client, timings, "POST", f"/p/{p.code}/page/{pos}", data=data)
    if resp.status_code != 303:
        p.problems.append(f"{p.pid}: retry of stored page {pos} answered {resp.status_code}: {resp.text[:200]}")
    else:
        p.acked[pos] = data
        p.replays += 1
    p.inflight = None


def _finish(p: Participant, html: str) -> None:
    if p.completion_code in html:
        p.done = True
    elif "Thank you for your interest" in html:
        p.ineligible = True
    else:
        raise Unexpected(f"{p.pid}: the study ended without a completion code: {html[:300]}")


async def walk_until_gone(p: Participant, client: httpx.AsyncClient, timings: Timings | None = None) -> bool:
    """Run; return False when the server went away (the participant keeps its state for after the restart)."""
    try:
        await run(p, client, timings)
        return True
    except ServerGone:
        p.crashes_seen += 1
        p.reentered = p.reenter_after_crash
        return False
