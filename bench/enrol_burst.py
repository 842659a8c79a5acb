"""A burst of fake entries against a real server: N concurrent cookie-less GETs of ``/s/{round}``, counted rows.

    python bench/enrol_burst.py [--entries 1000] [--addresses 1]

Launches the demo design with placeholder images in a temporary SQLite database, serves it with ``python -m app``
(the default enrolment limits unless ENROL_* is set in the environment), fires the GETs at once through httpx and
prints the status counts, the Participant rows left behind, and whether a real participant from another address
still gets in. ``--addresses N`` spreads the burst over N client addresses (X-Forwarded-For is not trusted, so
this uses N source addresses 127.0.0.x; N at most 250).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlmodel import func, select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.db import session_scope  # noqa: E402
from app.models import Participant  # noqa: E402
from tests.factories import launch_placeholders  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def burst(base: str, n: int, addresses: int) -> Counter:
    clients = [
        httpx.AsyncClient(
            base_url=base, timeout=300, transport=httpx.AsyncHTTPTransport(local_address=f"127.0.0.{1 + i % 250}")
        )
        for i in range(addresses)
    ]
    try:
        results = await asyncio.gather(
            *(clients[i % addresses].get("/s/demo", follow_redirects=False) for i in range(n)), return_exceptions=True
        )
    finally:
        for c in clients:
            await c.aclose()
    return Counter(r.status_code if isinstance(r, httpx.Response) else type(r).__name__ for r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1000)
    ap.add_argument("--addresses", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/study.db"
        launch_placeholders(
            url,
            Path(tmp) / "media",
            REPO / "study_designs" / "demo.toml",
            Path(tmp) / "img",
            "demo",
            now=datetime.now(UTC),
        )
        port = free_port()
        env = dict(os.environ, DATABASE_URL=url, MEDIA_ROOT=f"{tmp}/media", SECRET_KEY="bench", PORT=str(port))
        proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=REPO, env=env, stdout=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    httpx.get(f"{base}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            t0 = time.perf_counter()
            statuses = asyncio.run(burst(base, args.entries, args.addresses))
            took = time.perf_counter() - t0
            with session_scope(url) as s:
                rows = s.exec(select(func.count()).select_from(Participant)).one()
            with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.251")) as c:
                real = c.get(f"{base}/s/demo", follow_redirects=False)
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"{args.entries} concurrent entries from {args.addresses} address(es) in {took:.1f} s")
    print(f"statuses: {dict(sorted(statuses.items(), key=str))}")
    print(f"participant rows left: {rows}")
    print(f"a real participant from another address right after: {real.status_code}")


if __name__ == "__main__":
    main()
