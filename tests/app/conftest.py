"""Fixtures for the app tests: a launched round (placeholder images) served by an in-process app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.config import Settings
from app.db import create_tables, make_engine, new_session
from app.launch import launch_round
from app.main import create_app
from app.placeholder import write_placeholders
from study_designs.schema import load_design

REPO = Path(__file__).resolve().parents[2]
DESIGNS = REPO / "study_designs"


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


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
    manifest, _ = write_placeholders(load_design(design_path), out, size=size)
    engine = make_engine(settings.database_url)
    create_tables(engine)
    with new_session(engine) as s:
        launch_round(
            s,
            design_path=design_path,
            manifest_path=manifest,
            round_id=round_id,
            media_root=settings.media_root,
            now=datetime.now(UTC),
        )
    engine.dispose()
    return manifest


@pytest.fixture
def make_study(tmp_path: Path) -> Iterator[Callable[..., Study]]:
    clients: list[TestClient] = []

    def factory(design: str | Path = "demo.toml", round_id: str = "r1", *, size: int = 24) -> Study:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'study.db'}",
            media_root=tmp_path / "media",
            secret_key="test-secret",
            researcher_token="test-token",
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
