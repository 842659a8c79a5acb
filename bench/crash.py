"""Crash safety, long variant: ``kill -9`` the real server many times while participants submit through the forms.

    python bench/crash.py [--backend sqlite|postgres|both] [--participants 80] [--crashes 10]

SQLite runs one worker; PostgreSQL runs ``--workers 2`` in its own database (``scoft_crash``). After every crash the
server is restarted and every participant must resume where they were; at the end the export (``python -m
app.export``) must hold every acknowledged answer exactly once, and no page may be half stored.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.campaign import CampaignResult, run_campaign  # noqa: E402
from tests.reliability.formclient import Participant  # noqa: E402
from tests.reliability.harness import DESIGNS, Server, StudyEnv, derived_design, reset_postgres  # noqa: E402


def campaign(args: argparse.Namespace, backend: str, workdir: Path) -> CampaignResult:
    if backend == "sqlite":
        url, workers = f"sqlite:///{workdir / 'study.db'}", 1
    else:
        url, workers = reset_postgres(args.pg_admin_url, args.pg_database), 2
    per_culture = max(1, args.participants // 2)
    design = derived_design(DESIGNS / "demo.toml", workdir / "design.toml", target_rankings_per_page=per_culture)
    study = StudyEnv(workdir, url)
    study.launch(design, "crash", size=16)
    people = [
        Participant(
            pid=f"crash{i:04d}",
            culture=("korea", "nigeria")[i % 2],
            round_id="crash",
            completion_code="DEMO-DONE",
            images=i % 10 == 0,
            reenter_after_crash=i % 3 == 0,
        )
        for i in range(2 * per_culture)
    ]
    server = Server(study, workers=workers)
    print(f"[{backend}, {workers} worker(s)] {len(people)} participants, {args.crashes} crashes", flush=True)
    return run_campaign(
        study,
        server,
        "crash",
        people,
        crashes=args.crashes,
        kill_window=(args.kill_min, args.kill_max),
        kill_pages=(1, args.kill_pages),
        seed=args.seed,
        log=lambda line: print("  " + line, flush=True),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--participants", type=int, default=80)
    parser.add_argument("--crashes", type=int, default=10)
    parser.add_argument("--kill-min", type=float, default=0.5, help="earliest kill, seconds after a (re)start")
    parser.add_argument("--kill-max", type=float, default=20.0, help="latest kill, seconds after a (re)start")
    parser.add_argument("--kill-pages", type=int, default=40, help="kill after at most this many new pages")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--pg-database", default="scoft_crash")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    failed = []
    print("=== crash bench ===")
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix=f"bench-crash-{backend}-") as tmp:
            res = campaign(args, backend, Path(tmp))
        print(f"[{backend}] {res.summary()}")
        for p in res.problems[:20]:
            print(f"  problem: {p}")
        bad = res.lost or res.duplicated or res.wrong or res.unacked_stored or res.half_stored or res.problems
        if bad or res.completed != res.participants:
            failed.append(backend)
    print("result: " + ("OK" if not failed else f"FAILED on {', '.join(failed)}"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
