"""Load: N simulated participants (default 1,000) complete a study design at once through the HTML forms.

    python bench/participants.py [--participants 1000] [--backend sqlite|postgres|both]

Per backend (SQLite with 1 worker, PostgreSQL with 2 workers in its own database ``scoft_bench``) it launches the
design with placeholder images (``python -m app.placeholder``), serves it with ``python -m app`` on 127.0.0.1,
and lets every participant enter with a Prolific id, consent, choose their culture, read the instructions and rank
every page (a share of them also load the images). The design's target rankings per page is raised so that N
participants are needed (``--target auto``); the participants beyond that must be told politely that nothing is left.
Checks: every page reaches its target exactly (no over-assignment), every acknowledged answer is exported once,
errors = 0. Prints p50/p99 latency per route.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study_designs.schema import load_design  # noqa: E402
from tests.reliability.campaign import compare, stored_slots  # noqa: E402
from tests.reliability.formclient import Participant, ServerGone, Timings, Unexpected, run  # noqa: E402
from tests.reliability.harness import DESIGNS, Server, StudyEnv, derived_design, reset_postgres  # noqa: E402

RETRIES = 5
ROUTE_ORDER = [
    "GET /s/{round}",
    "GET /p/{code}",
    "POST /p/{code}/consent",
    "POST /p/{code}/profile",
    "POST /p/{code}/instructions",
    "POST /p/{code}/page/{n}",
    "GET /i/{token}",
]


def auto_target(design_path: Path, participants: int) -> int:
    """The largest target rankings per page that N participants can fill."""
    d = load_design(design_path)
    pp = d.assignment.pages_per_participant
    sizes = [len(d.pages(c.id)) for c in d.cultures]

    def needed(t: int) -> int:
        return sum(math.ceil(n * t / min(pp, n)) for n in sizes)

    t = 1
    while needed(t + 1) <= participants:
        t += 1
    return t


def cohort(design_path: Path, round_id: str, n: int, image_share: float) -> tuple[list[Participant], dict[str, int]]:
    d = load_design(design_path)
    needed = {c.id: d.participants_needed(c.id) for c in d.cultures}
    cultures: list[str] = [c for c, k in needed.items() for _ in range(k)]
    ids = [c.id for c in d.cultures]
    while len(cultures) < n:
        cultures.append(ids[len(cultures) % len(ids)])
    every = max(1, round(1 / image_share)) if image_share > 0 else 0
    people = [
        Participant(
            pid=f"bench{i:05d}",
            culture=culture,
            round_id=round_id,
            completion_code=d.recruitment.completion_code,
            images=bool(every) and i % every == 0,
        )
        for i, culture in enumerate(cultures[:n])
    ]
    return people, needed


async def _drive(base_url: str, people: list[Participant], timings: Timings, ramp: float, budget: float) -> float:
    limits = httpx.Limits(max_connections=len(people), max_keepalive_connections=len(people))
    bar = tqdm(total=len(people), desc="participants finished", unit="p", file=sys.stderr)
    failures: list[str] = []
    resets: list[str] = []

    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:

        async def one(i: int, p: Participant) -> None:
            await asyncio.sleep(ramp * i / len(people))
            for attempt in range(RETRIES + 1):
                try:
                    await run(p, client, timings)
                    break
                except ServerGone as err:  # a dropped connection: carry on like a browser (same form, same token)
                    resets.append(f"{p.pid}: {err}")
                    if attempt == RETRIES:
                        failures.append(f"{p.pid}: gave up after {RETRIES} connection errors: {err}")
                except Unexpected as err:
                    failures.append(f"{p.pid}: {err}")
                    break
            bar.update(1)

        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.gather(*(one(i, p) for i, p in enumerate(people))), timeout=budget)
        except TimeoutError:
            unfinished = sum(not (p.done or p.ineligible) for p in people)
            failures.append(f"time budget of {budget:.0f} s ran out with {unfinished} participants unfinished")
        elapsed = time.perf_counter() - t0
    bar.close()
    for f in failures[:10]:
        print("  failure:", f, file=sys.stderr)
    timings.errors["(participants failed)"] += len(failures)
    return elapsed


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def bench_backend(args: argparse.Namespace, backend: str, workdir: Path) -> dict:
    if backend == "sqlite":
        url, workers = f"sqlite:///{workdir / 'study.db'}", 1
    else:
        url, workers = reset_postgres(args.pg_admin_url, args.pg_database), args.pg_workers
    base_design = Path(args.design)
    target = auto_target(base_design, args.participants) if args.target == "auto" else int(args.target)
    design = derived_design(base_design, workdir / "design.toml", target_rankings_per_page=target)
    study = StudyEnv(workdir, url)
    t = time.perf_counter()
    study.launch(design, "load", size=args.image_size)
    print(f"[{backend}] launched round 'load' (target {target} rankings per page) in {time.perf_counter() - t:.1f} s")
    people, needed = cohort(design, "load", args.participants, args.image_share)
    timings = Timings()
    server = Server(study, workers=workers)
    server.start()
    try:
        elapsed = asyncio.run(_drive(server.base_url, people, timings, args.ramp, args.budget))
    finally:
        server.stop()
    rows = study.export("load")
    res = compare(rows, people, stored_slots(url))
    d = load_design(design)
    per_page = Counter(
        r["page_id"]
        for r in rows
        if r["is_attention_check"] == "false"
        and r["is_repeat"] == "false"
        and r["criterion"] == d.criteria[0].id
        and r["initial_position"] == "0"
    )
    pages = {p.id for p in d.pages()}
    counts = [per_page.get(p, 0) for p in pages]
    requests = sum(len(v) for v in timings.samples.values())
    out = {
        "backend": f"{'SQLite' if backend == 'sqlite' else 'PostgreSQL'}, {workers} worker{'s' if workers > 1 else ''}",
        "participants": len(people),
        "completed": res.completed,
        "turned_away": sum(p.ineligible for p in people),
        "needed": sum(needed.values()),
        "target": target,
        "pages": len(pages),
        "pages_at_target": sum(c == target for c in counts),
        "max_per_page": max(counts),
        "min_per_page": min(counts),
        "acked_pages": res.acked_pages,
        "export_rows": res.export_rows,
        "lost": res.lost,
        "duplicated": res.duplicated + res.wrong + res.unacked_stored + res.half_stored,
        "requests": requests,
        "errors": sum(n for r, n in timings.errors.items() if r == "(participants failed)"),
        "http_5xx": sum(n for r, n in timings.errors.items() if r != "(participants failed)"),
        "resets": sum(timings.dropped.values()),
        "problems": res.problems[:10],
        "seconds": elapsed,
        "routes": {
            r: (len(v), 1000 * _pct(v, 0.5), 1000 * _pct(v, 0.99), timings.errors.get(r, 0), timings.dropped.get(r, 0))
            for r, v in sorted(timings.samples.items(), key=lambda kv: _order(kv[0]))
        },
        "mean_ms": 1000 * statistics.fmean(x for v in timings.samples.values() for x in v) if requests else 0,
    }
    return out


def _order(route: str) -> int:
    return ROUTE_ORDER.index(route) if route in ROUTE_ORDER else len(ROUTE_ORDER)


def format_report(results: list[dict]) -> str:
    lines = []
    for r in results:
        lines.append(
            f"\n{r['backend']}: {r['participants']} participants in {r['seconds']:.1f} s "
            f"({r['requests']} requests, {r['requests'] / r['seconds']:.0f} req/s), "
            f"completed {r['completed']}, turned away politely {r['turned_away']} (needed {r['needed']})"
        )
        lines.append(
            f"  pages at target {r['pages_at_target']}/{r['pages']} (target {r['target']}, min {r['min_per_page']}, "
            f"max {r['max_per_page']}), acknowledged pages {r['acked_pages']}, export rows {r['export_rows']}, "
            f"lost {r['lost']}, duplicated/half-stored {r['duplicated']}, 5xx {r['http_5xx']}, failed participants "
            f"{r['errors']}, dropped connections retried with the same form {r['resets']}"
        )
        lines.append(f"  {'route':<30} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'5xx':>5} {'dropped':>8}")
        for route, (n, p50, p99, err, dropped) in r["routes"].items():
            lines.append(f"  {route:<30} {n:>9} {p50:>8.1f} {p99:>8.1f} {err:>5} {dropped:>8}")
        for p in r["problems"]:
            lines.append(f"  problem: {p}")
    return "\n".join(lines)


def ok(r: dict) -> bool:
    return (
        r["errors"] == 0
        and r["http_5xx"] == 0
        and r["lost"] == 0
        and r["duplicated"] == 0
        and r["pages_at_target"] == r["pages"]
        and r["max_per_page"] == r["target"]
        and r["completed"] + r["turned_away"] == r["participants"]
        and not r["problems"]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--design", default=str(DESIGNS / "scoft-cvpr2024.toml"))
    parser.add_argument("--target", default="auto", help="rankings per page; auto: what --participants can fill")
    parser.add_argument("--image-share", type=float, default=0.1, help="share of participants who load the images")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds over which participants arrive")
    parser.add_argument("--budget", type=float, default=1200.0, help="give up after this many seconds per backend")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--pg-database", default="scoft_bench")
    parser.add_argument("--pg-workers", type=int, default=2)
    parser.add_argument("--workdir", help="keep databases and server logs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = []
    for backend in backends:
        if args.workdir:
            results.append(bench_backend(args, backend, Path(args.workdir) / backend))
        else:
            with tempfile.TemporaryDirectory(prefix=f"bench-participants-{backend}-") as tmp:
                results.append(bench_backend(args, backend, Path(tmp)))
        print(format_report(results[-1:]), flush=True)
    print("\n=== participants bench ===" + format_report(results))
    failed = [r["backend"] for r in results if not ok(r)]
    print("\nresult: " + ("OK" if not failed else f"FAILED on {', '.join(failed)}"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
