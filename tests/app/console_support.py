"""Shared helpers of the console/API tests: an app on a temporary database, a settable clock, a bot participant."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.placeholder import write_placeholders
from study_designs.schema import load_design
from tests.app.studybot import parse, reverse_ranks
from tests.factories import NO_ENROL_LIMIT, FakeClock

TOKEN = "researcher-token-for-tests"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
DEMO = Path(__file__).resolve().parents[2] / "study_designs" / "demo.toml"


def settings_for(tmp: Path, database_url: str | None = None) -> Settings:
    return Settings(
        database_url=database_url or f"sqlite:///{tmp / 'study.db'}",
        media_root=tmp / "media",
        secret_key="k" * 40,
        secret_key_file=tmp / "secret_key",
        researcher_token=TOKEN,
        **NO_ENROL_LIMIT,
    )


@contextmanager
def app_client(tmp: Path, clock: FakeClock | None = None, database_url: str | None = None) -> Iterator[TestClient]:
    app = create_app(settings_for(tmp, database_url), clock=clock or FakeClock())
    with TestClient(app, follow_redirects=False) as client:
        yield client


def demo_inputs(folder: Path) -> tuple[Path, Path]:
    """The demo design and a placeholder manifest with its images under ``folder``."""
    manifest, _ = write_placeholders(load_design(DEMO), folder)
    return DEMO, manifest


def launch_demo(client: TestClient, folder: Path, round_id: str = "demo") -> dict:
    design, manifest = demo_inputs(folder)
    r = client.post(
        "/api/rounds",
        json={"round_id": round_id, "design_path": str(design), "manifest_path": str(manifest)},
        headers=BEARER,
    )
    assert r.status_code == 201, r.text
    return r.json()


def login(client: TestClient, actor: str = "Ada") -> str:
    """Log the console in; returns a CSRF token read from a console page."""
    r = client.post("/console/login", data={"token": TOKEN, "actor": actor, "next": "/console"})
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/console").text)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


_ACTION = re.compile(r'action="/p/([^/"]+)/page/(\d+)"')
_TOKEN = re.compile(r'name="token" value="([^"]+)"')
_RANK = re.compile(r'name="rank-([a-z0-9_\-]+)-(\d+)"')


class Bot:
    """A participant walking the real pages over HTTP (works with TestClient and httpx.Client alike)."""

    def __init__(self, client: TestClient | httpx.Client, round_id: str, pid: str, *, attentive: bool = True) -> None:
        self.client, self.round_id, self.pid = client, round_id, pid
        self.attentive = attentive  # False: ignores attention checks (ranks the marked image like any other)
        self.code: str | None = None

    def enter(self) -> httpx.Response:
        r = self.client.get(
            f"/s/{self.round_id}", params={"PROLIFIC_PID": self.pid, "STUDY_ID": "s1", "SESSION_ID": "x"}
        )
        if r.status_code == 303:
            self.code = r.headers["location"].rsplit("/", 1)[-1]
        return r

    def onboard(self, culture: str) -> httpx.Response:
        r = self.enter()
        assert r.status_code == 303, r.text
        for path, data in (("consent", {"agree": "yes"}), ("profile", {"culture": culture}), ("instructions", {})):
            r = self.client.post(f"/p/{self.code}/{path}", data=data)
            if r.status_code != 303:
                return r
        return r

    def page(self) -> httpx.Response:
        return self.client.get(f"/p/{self.code}")

    def prepare(self) -> tuple[str, dict[str, str]]:
        """The current page's form, answered attentively: each criterion's ranks reversed from the shown order,
        with an attention check's marked image ranked last."""
        html = self.page().text
        action = _ACTION.search(html)
        assert action, html[:2000]
        fields = _RANK.findall(html)
        n = 1 + max(int(i) for _, i in fields)
        marked = parse(html).forms[-1].marked if self.attentive else {}
        data = {"token": _TOKEN.search(html).group(1)}  # type: ignore[union-attr]
        for crit in dict.fromkeys(c for c, _ in fields):
            for i, rank in enumerate(reverse_ranks(crit, n, marked.get(crit))):
                data[f"rank-{crit}-{i}"] = str(rank)
        return f"/p/{self.code}/page/{action.group(2)}", data

    def post(self, prepared: tuple[str, dict[str, str]]) -> httpx.Response:
        return self.client.post(prepared[0], data=prepared[1])

    def submit_current(self, clock: FakeClock | None = None, seconds: float = 10) -> httpx.Response:
        prepared = self.prepare()
        if clock is not None:
            clock.advance(seconds=seconds)
        return self.post(prepared)

    def finish(self, clock: FakeClock | None = None, max_pages: int = 50) -> int:
        for pages in range(max_pages):
            if not _ACTION.search(self.page().text):
                return pages
            r = self.submit_current(clock)
            assert r.status_code in (200, 303), r.text
        raise AssertionError("participant never finished")
