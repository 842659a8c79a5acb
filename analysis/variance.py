"""Participant and page (page × model) variance of rankings, estimated from pilot data.

Rank-scale components by the method of moments for crossed random effects (pairwise U-statistics, as in Gao & Owen
2017, "Efficient moment calculations for variance components in large unbalanced crossed random effects models"):
for one model's rank ``y = μ + a_participant + b_page + e`` and two judgments i, j of one criterion,

    E (y_i − y_j)² / 2 = σ²_b + σ²_e   (same participant, other page)
                       = σ²_a + σ²_e   (same page, other participant)
                       = σ²_a + σ²_b + σ²_e   (neither shared),

and each sum over pairs comes from per-group sums and sums of squares, so the estimate costs one pass over the data.
Pairs are formed within a page culture (cultures have their own pages and model means); the components of all models
and cultures are pooled.

:func:`log_worth_sds` maps the rank-scale components to the simulator's log-worth scale (``heterogeneity`` and
``page_sd`` of :func:`analysis.simulate.simulate_responses`) by matching moments: it simulates a large null study of
the same number of models with candidate SDs, estimates the same rank-scale components, and rescales until they
agree (a few fixed-point steps with common random numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis._tables import RankTable, codes, main_rows
from analysis.crossed import page_codes


@dataclass(frozen=True)
class RankComponents:
    participant: float  # σ²_a, rank scale
    page: float  # σ²_b (page × model), rank scale
    residual: float  # σ²_e
    n_participants: int
    n_pages: int
    n_judgments: int


def _pair_sums(group: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Σ over unordered pairs within groups of (y_i − y_j)² and the number of pairs (w = 1 where y is present)."""
    n_g = int(group.max()) + 1 if len(group) else 0
    n = np.bincount(group, weights=w, minlength=n_g)
    s1 = np.bincount(group, weights=w * y, minlength=n_g)
    s2 = np.bincount(group, weights=w * y * y, minlength=n_g)
    return float(np.sum(n * s2 - s1 * s1)), float(np.sum(n * (n - 1) / 2))


def rank_components(df: pd.DataFrame) -> RankComponents:
    """Method-of-moments variance components of ranks for ONE criterion (see module doc); negatives clip to 0."""
    rows = main_rows(df)
    if "criterion" in rows.columns and rows["criterion"].nunique() > 1:
        raise ValueError("variance components need the rows of one criterion; subset first")
    culture = rows["page_culture"] if "page_culture" in rows.columns else pd.Series("all", index=rows.index)
    totals = np.zeros((3, 2))  # (same participant, same page, all) × (sum of squared differences, pairs)
    n_j = 0
    for c in pd.unique(culture):
        sub = rows[(culture == c).to_numpy()]
        t = RankTable.from_long(sub)
        pcode = t.participant_of
        gcode, _ = page_codes(sub, t)
        n_j += t.n_judgments
        for k in range(t.n_models):
            present = t.present[:, k].astype(np.float64)
            y = np.where(t.present[:, k], t.ranks[:, k], 0.0)
            for i, group in enumerate((pcode, gcode, np.zeros(t.n_judgments, dtype=np.int64))):
                s, n = _pair_sums(group, y, present)
                totals[i] += (s, n)
    (sp, npp), (sg, ng), (sa, na) = totals
    n_neither = na - npp - ng  # one criterion, no repeats: no two judgments share both participant and page
    if npp <= 0 or ng <= 0 or n_neither <= 0:
        raise ValueError("need judgments that share a participant, share a page, and share neither")
    same_p, same_g, neither = sp / npp / 2, sg / ng / 2, (sa - sp - sg) / n_neither / 2
    pc, pages = codes(rows["participant_id"])[1], codes(rows["page_id"])[1]
    return RankComponents(
        participant=max(neither - same_p, 0.0),
        page=max(neither - same_g, 0.0),
        residual=max(same_p + same_g - neither, 0.0),
        n_participants=len(pc),
        n_pages=len(pages),
        n_judgments=n_j,
    )


def log_worth_sds(
    components: RankComponents, n_models: int, *, iterations: int = 6, seed: int = 0
) -> tuple[float, float]:
    """(participant sd, page × model sd) on the Plackett–Luce log-worth scale that reproduce ``components``.

    Starts from the linearisation ``rank_k ≈ (K + 1)/2 − (K/4)(u_k − ū)`` (so σ²_rank = (K²/16)(1 − 1/K) sd²) and
    rescales each sd by the square root of target / simulated component.
    """
    from analysis.simulate import make_spec, simulate_responses

    k = int(n_models)
    if k < 2:
        raise ValueError("need at least two models")
    slope = (k * k / 16) * (1 - 1 / k)
    sds = np.sqrt(np.array([components.participant, components.page]) / slope)
    target = np.array([components.participant, components.page])
    spec = make_spec(cultures=("c",), models=tuple(f"m{i}" for i in range(k)), pages=120, pages_per_participant=30)
    for _ in range(iterations):
        if not np.any(sds > 0):
            break
        sim = simulate_responses(
            spec, participants_per_culture=400, heterogeneity=float(sds[0]), page_sd=float(sds[1]), seed=seed
        )
        got = rank_components(sim)
        ratio = np.ones(2)
        for i, value in enumerate((got.participant, got.page)):
            if sds[i] > 0 and value > 0:
                ratio[i] = math.sqrt(target[i] / value)
        sds = np.where(sds > 0, sds * ratio, 0.0)
        if np.all(np.abs(ratio - 1) < 0.01):
            break
    return float(sds[0]), float(sds[1])
