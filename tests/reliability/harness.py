"""Run the study server as a real subprocess (``python -m app``), kill it, restart it, and export what it stored.

Shared by the reliability tests and the crash / load benches: nothing here imports the app in-process, so what is
measured is exactly what a researcher runs.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
DESIGNS = REPO / "study_designs"
PY = sys.executable


class HarnessError(RuntimeError):
    """The server or one of the CLIs did not behave as a researcher would expect (message says how)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def derived_design(src: Path, dst: Path, **assignment: int) -> Path:
    """Copy a design TOML, overriding integer fields of its ``[assignment]`` table (e.g. a bigger target)."""
    text = src.read_text(encoding="utf-8")
    for key, value in assignment.items():
        text, n = re.subn(rf"(?m)^{key}\s*=\s*\d+\s*$", f"{key} = {int(value)}", text)
        if n != 1:
            raise HarnessError(f"{src}: expected one `{key} = N` line, found {n}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text, encoding="utf-8")
    return dst


@dataclass
class StudyEnv:
    """Where one study's server keeps its data, and the environment every CLI of it runs with."""

    workdir: Path
    database_url: str
    secret_key: str = "reliability-secret-key"
    researcher_token: str = "reliability-researcher-token"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def media_root(self) -> Path:
        return self.workdir / "media"

    def env(self, port: int | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update(
            DATABASE_URL=self.database_url,
            MEDIA_ROOT=str(self.media_root),
            SECRET_KEY=self.secret_key,
            RESEARCHER_TOKEN=self.researcher_token,
            PYTHONPATH=str(REPO),
            PYTHONUNBUFFERED="1",
            ENROL_RATE_PER_CLIENT="0",  # the load comes from one address; the limits have their own tests
            ENROL_RATE_PER_ROUND="0",
        )
        if port is not None:
            env["PORT"] = str(port)
            env["HOST"] = "127.0.0.1"
        env.update(self.extra)
        return env

    def cli(self, *args: str, timeout: float = 300) -> str:
        proc = subprocess.run(
            [PY, "-m", *args], cwd=REPO, env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise HarnessError(f"python -m {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def launch(self, design: Path, round_id: str, *, size: int = 24) -> Path:
        """Placeholder images + manifest (``python -m app.placeholder``), then ``python -m app.rounds launch``."""
        images = self.workdir / "images" / round_id
        self.cli("app.placeholder", "--design", str(design), "--out", str(images), "--size", str(size))
        manifest = images / "manifest.jsonl"
        self.cli("app.rounds", "launch", "--design", str(design), "--manifest", str(manifest), "--round", round_id)
        return manifest

    def export(self, round_id: str) -> list[dict[str, str]]:
        out = self.workdir / f"responses-{round_id}-{time.monotonic_ns()}.csv"
        self.cli("app.export", "--round", round_id, "--out", str(out))
        with out.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))


class Server:
    """``python -m app`` in its own process group, so ``kill -9`` takes every worker down at once."""

    def __init__(self, study: StudyEnv, *, workers: int = 1, port: int | None = None, log: Path | None = None):
        self.study = study
        self.workers = workers
        self.port = port or free_port()
        self.log = log or study.workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise HarnessError("server already running")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as fh:
            fh.write(f"\n=== start {self.starts + 1} ===\n".encode())
            fh.flush()
            self.proc = subprocess.Popen(
                [PY, "-m", "app", "--port", str(self.port), "--workers", str(self.workers)],
                cwd=REPO,
                env=self.study.env(self.port),
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise HarnessError(f"server exited with {self.proc.returncode}; log:\n{self.log_text()[-3000:]}")
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise HarnessError(f"server not ready after {timeout} s; log:\n{self.log_text()[-3000:]}")

    def kill9(self) -> None:
        """SIGKILL the whole process group (server and workers): no shutdown hooks, no flushing."""
        if self.proc is None or self.proc.poll() is not None:
            raise HarnessError("server is not running")
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.kills += 1
        self._wait_port_free()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._wait_port_free()

    def _wait_port_free(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
            except OSError:
                return
            time.sleep(0.05)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reset_postgres(admin_url: str, database: str) -> str:
    """(Re)create an empty PostgreSQL database for a bench; returns its SQLAlchemy URL."""
    import psycopg

    if not re.fullmatch(r"[a-z_][a-z0-9_]*", database):
        raise HarnessError(f"unsafe database name {database!r}")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    base = admin_url.rsplit("/", 1)[0]
    return f"postgresql+psycopg://{base.split('://', 1)[1]}/{database}"
