"""Analysis at scale: simulate responses.csv of 10k → 1M rows and time the full report at each size.

    .venv/bin/python bench/analysis_scale.py [--sizes 10000 100000 1000000] [--bootstrap 1000] [--design F]

Each report runs as its own process (``python -m analysis.report``), so the time includes start-up, CSV reading,
every statistic with B crossed-bootstrap (participants × pages) resamples, figures and writing; peak RSS is that
process's maximum resident set. Target: under 30 s and 1.5 GB at 1M rows on a 2-core machine, growing
linearly with rows. "report CPU s" is user + system time of the report process, the figure to compare on a shared
machine (wall time grows with the load printed above the table).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.simulate import simulate_responses, write_responses  # noqa: E402
from study_designs.schema import load_design  # noqa: E402

WORTHS = {"sd": -0.4, "scoft_m": 0.0, "scoft_mp": 0.1, "scoft_mpc": 0.3}


def rows_per_participant(design) -> float:
    df = simulate_responses(design, participants_per_culture=1, seed=0)
    return len(df) / len(design.cultures)


def run_report(csv: Path, design: Path, out: Path, bootstrap: int, seed: int) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS in MiB, exit code) of one report process."""
    cmd = [sys.executable, "-m", "analysis.report", "--responses", str(csv), "--design", str(design)]
    cmd += ["--out", str(out), "--bootstrap", str(bootstrap), "--seed", str(seed), "--quiet"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        print(err, file=sys.stderr)
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--design", default=str(ROOT / "study_designs" / "scoft-cvpr2024.toml"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", help="keep CSVs and reports here (default: a temporary folder)")
    args = p.parse_args(argv)

    design = load_design(args.design)
    models = {m.id for m in design.models}
    worths = {m: w for m, w in WORTHS.items() if m in models} or None
    per = rows_per_participant(design)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for size in args.sizes:
            n = max(2, math.ceil(size / (per * len(design.cultures))))
            t0 = time.perf_counter()
            df = simulate_responses(
                design, participants_per_culture=n, worths=worths, attention_failure_rate=0.05, seed=args.seed
            )
            t_sim = time.perf_counter() - t0
            csv = work / f"responses_{size}.csv"
            t0 = time.perf_counter()
            write_responses(df, csv)
            t_write = time.perf_counter() - t0
            rows = len(df)
            del df
            seconds, cpu, rss, code = run_report(
                csv, Path(args.design), work / f"report_{size}", args.bootstrap, args.seed
            )
            results.append((rows, n * len(design.cultures), t_sim, seconds, cpu, rss, code))
            print(
                f"  {rows:>9,} rows: simulate {t_sim:.1f} s, write {t_write:.1f} s, report {seconds:.1f} s"
                + ("" if code == 0 else f"  (report FAILED, exit {code})"),
                flush=True,
            )

    print()
    print(f"design {design.id}, bootstrap B = {args.bootstrap}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(
        f"{'rows':>10} {'participants':>12} {'simulate s':>10} {'report s':>9} {'report CPU s':>12}"
        f" {'s / 100k rows':>13} {'peak RSS MiB':>12}"
    )
    for rows, parts, t_sim, seconds, cpu, rss, code in results:
        flag = "" if code == 0 else "  FAILED"
        print(
            f"{rows:>10,} {parts:>12,} {t_sim:>10.2f} {seconds:>9.1f} {cpu:>12.1f}"
            f" {seconds / rows * 1e5:>13.2f} {rss:>12.0f}{flag}"
        )
    return 0 if all(r[-1] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
