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
