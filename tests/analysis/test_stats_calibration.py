"""Calibration: with equal worths the participant-level Friedman test holds its size; judgment-level does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis import stats


def null_study(rng: np.random.Generator, n_participants: int, n_pages: int, k: int, spread: float) -> pd.DataFrame:
    """Equal population worths; each participant has their own random taste (clustered judgments)."""
    taste = spread * rng.normal(size=(n_participants, k))
    utility = np.repeat(taste, n_pages, axis=0) + rng.gumbel(size=(n_participants * n_pages, k))
    ranks = np.empty_like(utility, dtype=np.int64)
    np.put_along_axis(ranks, np.argsort(-utility, axis=1), np.arange(1, k + 1)[None, :], axis=1)
    judgments = n_participants * n_pages
    return pd.DataFrame(
        {
            "participant_id": np.repeat(np.repeat(np.arange(n_participants), n_pages), k),
            "page_id": np.repeat(np.tile(np.arange(n_pages), n_participants), k),
            "model_id": np.tile(np.arange(k), judgments),
            "rank": ranks.ravel(),
        }
    )


def test_participant_level_friedman_holds_its_size():
    rng = np.random.default_rng(2024)
    participant_p, judgment_p = [], []
    for _ in range(200):
        df = null_study(rng, n_participants=15, n_pages=30, k=4, spread=0.7)
        participant_p.append(stats.friedman(df)["p"])
        wide = df["rank"].to_numpy().reshape(-1, 4)
        judgment_p.append(sps.friedmanchisquare(*wide.T).pvalue)
    participant_p, judgment_p = np.array(participant_p), np.array(judgment_p)
    rejection = np.mean(participant_p < 0.05)
    assert 0.02 <= rejection <= 0.09, rejection
    assert sps.kstest(participant_p, "uniform").pvalue > 0.01
    assert np.mean(judgment_p < 0.05) > 0.3  # treating judgments as independent over-rejects badly


def test_crossed_inference_holds_under_page_by_model_variance():
    """Null with page × model sd 1.0 (54 participants, 50 pages, 20 each): the crossed headline test and intervals
    stay calibrated, while the same Wald test and intervals from a participant-only bootstrap do not."""
    from analysis.calibration import null_grid_cell

    d = null_grid_cell(n_participants=54, page_sd=1.0, n_rep=40, n_boot=200, seed=3, pl=False)
    rejection = {m: float((d[f"{m}_p"] < 0.05).mean()) for m in ("crossed", "participants")}
    coverage = {m: float(d[f"{m}_cover_mean_rank"].mean()) for m in ("crossed", "participants")}
    win_coverage = {m: float(d[f"{m}_cover_win_rate"].mean()) for m in ("crossed", "participants")}

    def calibrated(m: str) -> bool:  # nominal 5% and 95%, with room for 40 replicates of Monte Carlo error
        return rejection[m] <= 0.15 and coverage[m] >= 0.88 and win_coverage[m] >= 0.88

    assert calibrated("crossed"), (rejection, coverage, win_coverage)
    assert not calibrated("participants"), (rejection, coverage, win_coverage)
    assert float((d["friedman_p"] < 0.05).mean()) > 0.15  # the classic view over-rejects here too


def test_crossed_inference_holds_with_few_participants():
    """12 participants, page × model sd 0.5: the small-sample F reference keeps the crossed test near its size."""
    from analysis.calibration import null_grid_cell

    d = null_grid_cell(n_participants=12, page_sd=0.5, n_rep=40, n_boot=200, seed=4, pl=False)
    assert float((d["crossed_p"] < 0.05).mean()) <= 0.15
    assert float(d["crossed_cover_mean_rank"].mean()) >= 0.88
