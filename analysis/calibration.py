"""Calibration of the report's inference under a true null: all models equal, pages and participants random.

A null study has equal population worths, participants whose own log-worths scatter with ``participant_sd``, and
images (page × model) whose log-worths scatter with ``page_sd`` — so under the null no model is better on average,
yet every page favours some model. A calibrated method rejects "all models equal" at about its nominal level and its
95% intervals cover the true values (mean rank (K + 1)/2, win rate 1/2, centred log-worth 0) about 95% of the time.

:func:`null_replicate` analyses one simulated study both ways — crossed bootstrap (participants × pages) and
participant-only bootstrap — plus the classic participant-level Friedman and Wilcoxon–Holm tests; used by the test
suite and ``bench/calibration.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import headline
from analysis._inference import friedman_matrix, pairwise_wilcoxon_matrix
from analysis._pl import fit_counts, mle_exists
from analysis._tables import RankTable, percentile_ci
from analysis.crossed import Resampler, resample_group
from analysis.simulate import make_spec, simulate_responses

METHODS = ("crossed", "participants")


def null_study(
    *,
    n_participants: int,
    page_sd: float,
    n_pages: int = 50,
    pages_per_participant: int = 20,
    participant_sd: float = 0.6,
    n_models: int = 4,
    seed: int = 0,
) -> pd.DataFrame:
    """One culture, one criterion, equal worths; participants spread evenly over the pages."""
    spec = make_spec(
        cultures=("c",),
        models=tuple(f"m{i}" for i in range(n_models)),
        pages=n_pages,
        pages_per_participant=pages_per_participant,
    )
    return simulate_responses(
        spec, participants_per_culture=n_participants, heterogeneity=participant_sd, page_sd=page_sd, seed=seed
    )


def _covers(lo: np.ndarray, hi: np.ndarray, truth: float) -> float:
    ok = np.isfinite(lo) & np.isfinite(hi)
    return float(np.mean((lo[ok] <= truth) & (truth <= hi[ok]))) if ok.any() else float("nan")


def null_replicate(df: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, pl: bool = True) -> dict[str, float]:
    """p-values and interval coverage (share of models / ordered pairs covered) of one null study."""
    t = RankTable.from_long(df)
    k = t.n_models
    point = np.nanmean(np.where(t.present, t.ranks, np.nan), axis=0)
    off = ~np.eye(k, dtype=bool)
    out: dict[str, float] = {}
    for method in METHODS:
        r, pages = Resampler.for_table(df, t, n_boot, seed, pages=method == "crossed")
        g = resample_group(t, r)
        out[f"{method}_p"] = headline.omnibus(point, g.mean_ranks, t.n_participants, len(pages))["p"]
        pair_p = [c["p_holm"] for c in headline.pairwise(point, g.mean_ranks, t.n_participants, len(pages))]
        out[f"{method}_pairwise_min_p_holm"] = float(np.nanmin(pair_p))
        out[f"{method}_cover_mean_rank"] = _covers(*percentile_ci(g.mean_ranks), (k + 1) / 2)
        lo, hi = percentile_ci(g.win_rates.reshape(r.n_boot, k * k))
        out[f"{method}_cover_win_rate"] = _covers(lo[off.ravel()], hi[off.ravel()], 0.5)
        if pl:
            total = g.stage_counts.sum(axis=0)
            if mle_exists(total, g.types, g.types.sets.T @ total > 0)[0]:
                theta = fit_counts(total[None, :], g.types, max_iter=200, tol=1e-10)[0][0]
                boot = fit_counts(g.stage_count_sums, g.types, start=theta)[0]
                out[f"{method}_cover_pl"] = _covers(*percentile_ci(boot), 0.0)
            else:
                out[f"{method}_cover_pl"] = float("nan")
    means = t.participant_means()
    out["friedman_p"] = friedman_matrix(means)["p"]
    out["wilcoxon_min_p_holm"] = float(np.nanmin(pairwise_wilcoxon_matrix(means)["p_holm"].to_numpy()))
    return out


def null_grid_cell(
    *, n_participants: int, page_sd: float, n_rep: int, n_boot: int = 1000, seed: int = 0, pl: bool = True, **study
) -> pd.DataFrame:
    """``n_rep`` seeded null replicates of one (participants, page_sd) cell, one row each."""
    rows = []
    for i in range(n_rep):
        rep_seed = int(np.random.SeedSequence([seed, n_participants, round(page_sd * 1000), i]).generate_state(1)[0])
        df = null_study(n_participants=n_participants, page_sd=page_sd, seed=rep_seed, **study)
        rows.append(null_replicate(df, n_boot=n_boot, seed=rep_seed, pl=pl))
    return pd.DataFrame(rows)
