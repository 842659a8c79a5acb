"""Fixtures for the app tests: a launched round (placeholder images) served by an in-process app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.config import Settings
from app.db import new_session
from app.main import create_app
from tests.factories import NO_ENROL_LIMIT, FakeClock, launch_placeholders

REPO = Path(__file__).resolve().parents[2]
DESIGNS = REPO / "study_designs"


@dataclass
class Study:
    client: TestClient
    settings: Settings
    engine: Engine
    clock: FakeClock
    round_id: str
    design_path: Path
    manifest: Path

    def session(self):
        return new_session(self.engine)


def launch(settings: Settings, design_path: Path, out: Path, round_id: str, *, size: int = 24) -> Path:
    return launch_placeholders(settings.database_url, settings.media_root, design_path, out, round_id, size=size)


@pytest.fixture
def make_study(tmp_path: Path) -> Iterator[Callable[..., Study]]:
    clients: list[TestClient] = []

    def factory(
        design: str | Path = "demo.toml", round_id: str = "r1", *, size: int = 24, database_url: str | None = None
    ) -> Study:
        settings = Settings(
            database_url=database_url or f"sqlite:///{tmp_path / 'study.db'}",
            media_root=tmp_path / "media",
            secret_key="test-secret",
            researcher_token="test-token",
            **NO_ENROL_LIMIT,
        )
        manifest = launch(settings, DESIGNS / design, tmp_path / "images" / round_id, round_id, size=size)
        clock = FakeClock()
        app = create_app(settings, clock=clock)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return Study(client, settings, app.state.engine, clock, round_id, DESIGNS / design, manifest)

    yield factory
    for c in clients:
        c.__exit__(None, None, None)
