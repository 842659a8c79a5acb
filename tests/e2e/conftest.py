"""A real server (``python -m app``) on a free loopback port, with the demo round launched from placeholders."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.config import Settings
from tests.factories import NO_ENROL_LIMIT, launch_placeholders

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class LiveStudy:
    base_url: str
    settings: Settings
    round_id: str
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStudy]:
    """One server per test module; each test enrols its own participants."""
    yield from serve(tmp_path_factory.mktemp("live"), REPO / "study_designs" / "demo.toml")


@pytest.fixture(scope="module")
def live_roomy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStudy]:
    """The demo design with room for many participants per culture (for modules that enrol more than two each)."""
    tmp_path = tmp_path_factory.mktemp("live-roomy")
    text = (REPO / "study_designs" / "demo.toml").read_text()
    assert "target_rankings_per_page = 2\n" in text
    design = tmp_path / "demo.toml"
    design.write_text(text.replace("target_rankings_per_page = 2\n", "target_rankings_per_page = 40\n"))
    yield from serve(tmp_path, design)


def paper_subset(text: str) -> str:
    """The paper design with every Mexico prompt but one prompt of each other culture (and the translations of the
    prompts kept, in every language), so a browser test launches it in seconds: 4 images and the paper's 4 questions
    on every page."""
    head, sep, tail = text.partition("\n# -- Spanish")
    blocks = head.split("\n[[prompts]]\n")
    kept, seen, ids = [blocks[0]], set(), set()
    for block in blocks[1:]:
        culture = block.split('culture = "', 1)[1].split('"', 1)[0]
        if culture == "mexico" or culture not in seen:
            kept.append(block)
            seen.add(culture)
            ids.add(block.split('id = "', 1)[1].split('"', 1)[0])
    prompt_line = re.compile(r"^([a-z]+-[0-9]+) = ")
    tail = "".join(
        line for line in tail.splitlines(keepends=True) if (m := prompt_line.match(line)) is None or m.group(1) in ids
    )
    return "\n[[prompts]]\n".join(kept) + sep + tail


def paper_study(tmp_path: Path) -> Iterator[LiveStudy]:
    """The paper's design (subset of prompts), in all its languages, with room for many participants, served."""
    text = paper_subset((REPO / "study_designs" / "scoft-cvpr2024.toml").read_text())
    design = tmp_path / "paper.toml"
    text = text.replace("target_rankings_per_page = 5\n", "target_rankings_per_page = 40\n")
    design.write_text(text.replace('platform = "prolific"', 'platform = "none"', 1))  # entered without platform ids
    yield from serve(tmp_path, design, size=512)


@pytest.fixture(scope="module")
def live_paper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStudy]:
    yield from paper_study(tmp_path_factory.mktemp("live-paper"))


def serve(
    tmp_path: Path, design: Path, size: int = 192, reencode: Callable[[Path], None] | None = None
) -> Iterator[LiveStudy]:
    """Launch ``design`` as round "demo" from placeholder images (rewritten by ``reencode(manifest)`` if given) and
    run ``python -m app`` on a free port."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'study.db'}",
        media_root=tmp_path / "media",
        secret_key="e2e-secret",
        **NO_ENROL_LIMIT,
    )
    launch_placeholders(
        settings.database_url, settings.media_root, design, tmp_path / "images", "demo", size=size, reencode=reencode
    )
    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=settings.database_url,
        MEDIA_ROOT=str(settings.media_root),
        SECRET_KEY=settings.secret_key,
        RESEARCHER_TOKEN="e2e-token",
        HOST="127.0.0.1",
        PORT=str(port),
        ENROL_RATE_PER_CLIENT="0",
        ENROL_RATE_PER_ROUND="0",
    )
    log = tmp_path / "server.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited: {log.read_text()}") from None
                time.sleep(0.1)
        else:
            raise RuntimeError(f"server did not start: {log.read_text()}")
        yield LiveStudy(base, settings, "demo", log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
