"""Shared helpers of the console/API tests: an app on a temporary database, the demo round, a console login."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.placeholder import write_placeholders
from study_designs.schema import load_design
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
