"""An in-process study (launched round + app + TestClient) for the fault, security and fuzz tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import new_session
from app.main import create_app
from tests.factories import NO_ENROL_LIMIT, launch_placeholders

SECRET_KEY = "inproc-secret-key-0123456789"
RESEARCHER_TOKEN = "inproc-researcher-token-abcdef"


@dataclass
class InprocStudy:
    app: FastAPI
    client: TestClient
    settings: Settings
    round_id: str
    design_path: Path
    manifest: Path

    def session(self):
        return new_session(self.app.state.engine)

    def close(self) -> None:
        self.client.__exit__(None, None, None)


def launch(settings: Settings, design_path: Path, images: Path, round_id: str, *, size: int = 16) -> Path:
    return launch_placeholders(settings.database_url, settings.media_root, design_path, images, round_id, size=size)


def start(
    tmp: Path,
    design_path: Path,
    round_id: str = "r1",
    *,
    database_url: str | None = None,
    size: int = 16,
    raise_server_exceptions: bool = True,
) -> InprocStudy:
    settings = Settings(
        database_url=database_url or f"sqlite:///{tmp / 'study.db'}",
        media_root=tmp / "media",
        secret_key=SECRET_KEY,
        researcher_token=RESEARCHER_TOKEN,
        **NO_ENROL_LIMIT,
    )
    manifest = launch(settings, design_path, tmp / "images" / round_id, round_id, size=size)
    app = create_app(settings)
    client = TestClient(app, raise_server_exceptions=raise_server_exceptions, follow_redirects=False)
    client.__enter__()
    return InprocStudy(app, client, settings, round_id, design_path, manifest)


def enter(client: TestClient, round_id: str, culture: str, params: dict[str, str] | None = None) -> str:
    """A new participant through entry, consent, culture and instructions; returns their code."""
    from tests.app.studybot import parse

    client.cookies.clear()
    r = client.get(f"/s/{round_id}", params=params, follow_redirects=True)
    assert r.status_code == 200, r.text
    code = str(r.url).rstrip("/").rsplit("/p/", 1)[-1]
    for _ in range(3):
        form = parse(r.text).forms[0]
        if "/page/" in form.action:
            break
        data = dict(form.hidden)
        if form.action.endswith("/consent"):
            data["agree"] = "yes"
        elif form.action.endswith("/profile"):
            data["culture"] = culture
        r = client.post(form.action, data=data, follow_redirects=True)
        assert r.status_code == 200, r.text
    return code


def page_form(client: TestClient, code: str, seed: str = "x") -> tuple[str, dict[str, str], str]:
    """The participant's current ranking page: (form action, a valid answer, the page HTML)."""
    import random

    from tests.app.studybot import parse
    from tests.reliability.formclient import choose_ranks

    r = client.get(f"/p/{code}")
    assert r.status_code == 200, r.text
    forms = parse(r.text).forms
    assert forms and "/page/" in forms[0].action, r.text[:500]
    form = forms[0]
    data = dict(form.hidden)
    n_by_crit: dict[str, int] = {}
    for name in form.selects:
        crit, idx = name.removeprefix("rank-").rsplit("-", 1)
        n_by_crit[crit] = max(n_by_crit.get(crit, 0), int(idx) + 1)
    for crit, n in sorted(n_by_crit.items()):
        ranks = choose_ranks(random.Random(f"{seed}:{form.action}:{crit}"), n, form.marked.get(crit))
        for i, rank in enumerate(ranks):
            data[f"rank-{crit}-{i}"] = str(rank)
    return form.action, data, r.text
