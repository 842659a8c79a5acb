"""Effect sizes and small-sample p-values for one group's participant × model matrix of mean ranks.

``matched_rank_biserial``: the matched-pairs rank-biserial correlation (Kerby 2014) of paired differences,
``(T+ − T−) / (T+ + T−)`` with ``T±`` the sums of the ranks of |d| over positive / negative differences (zero
differences dropped, as the Wilcoxon test drops them). It is the share of the signed-rank evidence favouring one side
minus the share favouring the other: −1..1, 0 = no tendency.

In the report and ``results.json`` a pair (a, b) gets ``rank_biserial`` computed on ``d = mean rank of b − mean rank
of a`` — positive means a was ranked better (lower ranks), the same direction as ``win_rate_a`` above 0.5.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from analysis._inference import DIFF_DECIMALS, friedman_exact_p

EXACT_MAX_N = 15  # at or below this many participants the Friedman p is computed exactly
EXACT_MAX_STATES = 2_000_000


def matched_rank_biserial(diff: np.ndarray, *, decimals: int | None = DIFF_DECIMALS) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (NaN rows dropped; NaN if all are zero)."""
    d = np.asarray(diff, dtype=np.float64)
    d = d[~np.isnan(d)]
    if decimals is not None:
        d = np.round(d, decimals)
    d = d[d != 0]
    if len(d) == 0:
        return float("nan")
    ranks = sps.rankdata(np.abs(d))
    t_plus, t_minus = float(ranks[d > 0].sum()), float(ranks[d < 0].sum())
    return (t_plus - t_minus) / (t_plus + t_minus)


def pairwise_rank_biserial(means: np.ndarray, labels: Sequence) -> dict[tuple, float]:
    """Every pair (a, b) of columns, in ``itertools.combinations`` order: rank-biserial of ``b − a`` (positive: a
    ranked better)."""
    x = np.asarray(means, dtype=np.float64)
    return {
        (labels[i], labels[j]): matched_rank_biserial(x[:, j] - x[:, i])
        for i, j in itertools.combinations(range(x.shape[1]), 2)
    }


def exact_friedman(means: np.ndarray) -> tuple[float, str | None]:
    """(exact Friedman p, None) for small complete groups, else (NaN, why it was not computed)."""
    x = np.asarray(means, dtype=np.float64)
    x = x[~np.isnan(x).any(axis=1)] if x.ndim == 2 else x
    n = x.shape[0] if x.ndim == 2 else 0
    if n < 2 or x.shape[1] < 2:
        return float("nan"), "fewer than 2 participants ranked every model"
    if n > EXACT_MAX_N:
        return float("nan"), f"{n} participants: the chi-square p is used (exact p only up to {EXACT_MAX_N})"
    if np.all(x == x[:, :1]):
        return 1.0, None
    try:
        return friedman_exact_p(x, max_states=EXACT_MAX_STATES), None
    except ValueError:
        return float("nan"), f"exact p for {x.shape[1]} models and {n} participants is too large to enumerate"


def pl_missing_reason(wins: np.ndarray, both: np.ndarray, models: Sequence) -> str:
    """Why the Plackett–Luce MLE does not exist for pooled win counts ``wins``/``both`` (K × K)."""
    won = wins.sum(axis=1)
    lost = (both - wins).sum(axis=1)
    seen = both.sum(axis=1) > 0
    never_won = [str(m) for m, w, s in zip(models, won, seen, strict=True) if s and w == 0]
    never_lost = [str(m) for m, c, s in zip(models, lost, seen, strict=True) if s and c == 0]
    if never_won:
        return f"Plackett–Luce MLE does not exist: {', '.join(never_won)} never ranked above another model"
    if never_lost:
        return f"Plackett–Luce MLE does not exist: {', '.join(never_lost)} ranked above every model it was shown with"
    return "Plackett–Luce MLE does not exist: some set of models is never ranked below the rest (Hunter 2004)"


def group_additions(table, friedman: dict, pairwise: list[dict], pl_log_worth: np.ndarray) -> dict:
    """The keys a ``results.json`` GROUP gains at its end (see README): exact Friedman p, rank-biserial per pair,
    the count of partial rankings and a reason for every estimate that is missing.

    ``table`` is the group's :class:`analysis._tables.RankTable`; ``pairwise`` its JSON pairwise list (updated in
    place with ``rank_biserial``).
    """
    means = table.participant_means()
    p_exact, exact_reason = exact_friedman(means)
    friedman["n_participants"] = int(friedman_n(means))
    friedman["p_exact"] = p_exact
    rb = pairwise_rank_biserial(means, [str(m) for m in table.models])
    for item in pairwise:
        item["rank_biserial"] = rb.get((item["a"], item["b"]), float("nan"))
    reasons: dict[str, str] = {}
    if not np.isfinite(friedman.get("p", np.nan) if friedman.get("p") is not None else np.nan):
        n = friedman["n_participants"]
        reasons["friedman"] = (
            f"only {n} participant(s) ranked every model; the Friedman test needs at least 2"
            if n < 2
            else "every participant gave every model the same mean rank"
        )
    if friedman["n_participants"] <= EXACT_MAX_N and exact_reason and friedman["n_participants"] >= 2:
        reasons["friedman_p_exact"] = exact_reason
    if np.isnan(np.asarray(pl_log_worth, dtype=np.float64)).all():
        reasons["pl_log_worth"] = pl_missing_reason(table.wins.sum(axis=0), table.both.sum(axis=0), table.models)
    pooled = table.pooled_mean_ranks()
    missing = [str(m) for m, v in zip(table.models, pooled, strict=True) if not np.isfinite(v)]
    if missing:
        reasons["mean_rank"] = f"{', '.join(missing)}: not ranked together with every other model in any judgment"
    return {"n_partial_judgments": int(table.n_partial), "reasons": reasons}


def friedman_n(means: np.ndarray) -> int:
    """Participants with a mean rank for every model (the rows the Friedman test uses)."""
    x = np.asarray(means, dtype=np.float64)
    return int((~np.isnan(x).any(axis=1)).sum()) if x.ndim == 2 else 0
