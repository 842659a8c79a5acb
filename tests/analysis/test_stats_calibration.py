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
