"""Calibration grid under a true null: rejection rates at nominal 5% and 95% interval coverage, crossed vs old.

    .venv/bin/python bench/calibration.py [--reps 300] [--bootstrap 1000] [--participants 12 54] [--page-sd 0 0.5 1]

Each cell simulates ``--reps`` null studies (one culture, 4 equal models, 50 pages, 20 per participant, participant
log-worth sd 0.6, page × model log-worth sd as given) and analyses each with the crossed bootstrap (participants ×
pages: the report's intervals and headline test), the participant-only bootstrap (the previous intervals, with the
same Wald test) and the classic participant-level Friedman and Wilcoxon–Holm tests. Target: headline
rejection <= 7%, coverage >= 0.93. The last columns give the Monte Carlo standard error of a 5% rate.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.calibration import null_grid_cell  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=300)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--participants", type=int, nargs="+", default=[12, 54])
    p.add_argument("--page-sd", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--no-pl", action="store_true", help="skip Plackett–Luce coverage (faster)")
    args = p.parse_args(argv)

    rows = []
    for n in args.participants:
        for sd in args.page_sd:
            t0 = time.perf_counter()
            d = null_grid_cell(
                n_participants=n, page_sd=sd, n_rep=args.reps, n_boot=args.bootstrap, seed=args.seed, pl=not args.no_pl
            )
            rows.append((n, sd, d))
            print(
                f"  participants {n}, page sd {sd}: {args.reps} studies in {time.perf_counter() - t0:.0f} s", flush=True
            )

    def rate(d, col):
        return f"{(d[col].fillna(1.0) < 0.05).mean():.3f}"

    def cover(d, col):
        return f"{d[col].mean():.3f}" if col in d else "   –"

    print()
    print(
        f"null: 4 equal models, 50 pages, 20 per participant, participant sd 0.6; B = {args.bootstrap}, "
        f"{args.reps} studies per cell (MC se of a 5% rate: {math.sqrt(0.05 * 0.95 / args.reps):.3f})"
    )
    print()
    print("Rejection rate of 'all models equal' (any pair for pairwise) at nominal 5%")
    print(
        f"{'P':>3} {'page sd':>7} | {'crossed Wald':>12} {'crossed pairs':>13} | {'particip. Wald':>14} "
        f"{'particip. pairs':>15} | {'Friedman':>8} {'Wilcoxon-Holm':>13}"
    )
    for n, sd, d in rows:
        print(
            f"{n:>3} {sd:>7.1f} | {rate(d, 'crossed_p'):>12} {rate(d, 'crossed_pairwise_min_p_holm'):>13} | "
            f"{rate(d, 'participants_p'):>14} {rate(d, 'participants_pairwise_min_p_holm'):>15} | "
            f"{rate(d, 'friedman_p'):>8} {rate(d, 'wilcoxon_min_p_holm'):>13}"
        )
    print()
    print("Coverage of 95% percentile intervals (share of models / ordered pairs whose interval holds the truth)")
    print(
        f"{'P':>3} {'page sd':>7} | {'crossed: mean rank':>18} {'win rate':>8} {'PL':>6} | "
        f"{'participants: mean rank':>23} {'win rate':>8} {'PL':>6}"
    )
    for n, sd, d in rows:
        print(
            f"{n:>3} {sd:>7.1f} | {cover(d, 'crossed_cover_mean_rank'):>18} {cover(d, 'crossed_cover_win_rate'):>8} "
            f"{cover(d, 'crossed_cover_pl'):>6} | {cover(d, 'participants_cover_mean_rank'):>23} "
            f"{cover(d, 'participants_cover_win_rate'):>8} {cover(d, 'participants_cover_pl'):>6}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
