"""Classical tests on participant-level matrices (blocks × treatments), the participant being the unit."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

DIFF_DECIMALS = 10


def friedman_statistic(matrix: np.ndarray) -> tuple[float, int]:
    """Tie-corrected Friedman chi-square of a blocks × treatments matrix (as scipy computes it; works for K = 2)."""
    x = np.asarray(matrix, dtype=np.float64)
    n, k = x.shape
    ranks = sps.rankdata(x, axis=1)
    ties = 0.0
    for row in np.sort(x, axis=1):
        _, t = np.unique(row, return_counts=True)
        ties += float(np.sum(t**3 - t))
    correction = 1.0 - ties / (n * k * (k * k - 1))
    ssbn = float(np.sum(ranks.sum(axis=0) ** 2))
    chi2 = 12.0 / (n * k * (k + 1)) * ssbn - 3.0 * n * (k + 1)
    if correction <= 0:
        return float("nan"), k - 1
    return chi2 / correction, k - 1


def friedman_matrix(matrix: np.ndarray | pd.DataFrame) -> dict:
    """Friedman test and Kendall's W on a blocks × treatments matrix; rows with any NaN are dropped.

    ``scipy.stats.friedmanchisquare`` for K ≥ 3 (the same formula for K = 2, which scipy refuses);
    ``kendall_w = statistic / (n (K − 1))``.
    """
    x = np.asarray(matrix, dtype=np.float64)
    x = x[~np.isnan(x).any(axis=1)]
    n, k = x.shape if x.ndim == 2 else (0, 0)
    out = {"statistic": float("nan"), "df": max(k - 1, 0), "p": float("nan"), "kendall_w": float("nan")}
    out["n_participants"] = int(n)
    if n < 2 or k < 2:
        return out
    if np.all(x == x[:, :1]):
        out.update(statistic=0.0, p=1.0, kendall_w=0.0)
        return out
    if k >= 3:
        res = sps.friedmanchisquare(*x.T)
        stat, p = float(res.statistic), float(res.pvalue)
    else:
        stat, _ = friedman_statistic(x)
        p = float(sps.chi2.sf(stat, k - 1))
    out.update(statistic=stat, p=p, kendall_w=stat / (n * (k - 1)))
    return out


def signed_rank(diff: np.ndarray, **wilcoxon_kwargs) -> tuple[float, float]:
    """``scipy.stats.wilcoxon`` on paired differences; (0, 1) when every difference is zero."""
    d = np.asarray(diff, dtype=np.float64)
    d = d[~np.isnan(d)]
    if len(d) == 0:
        return float("nan"), float("nan")
    if np.all(d == 0):
        return 0.0, 1.0
    zero_method = wilcoxon_kwargs.get("zero_method", "wilcox")
    alternative = wilcoxon_kwargs.get("alternative", "two-sided")
    if wilcoxon_kwargs.get("method", "auto") == "auto" and len(d) <= SMALL_N and _ties_or_zeros(d, zero_method):
        return _signed_rank_enumerated(d, zero_method, alternative)
    res = sps.wilcoxon(d, **wilcoxon_kwargs)
    return float(res.statistic), float(res.pvalue)


SMALL_N = 13  # scipy's default switches to an enumerated sign-flip test at or below this size when ties/zeros occur


def _ties_or_zeros(d: np.ndarray, zero_method: str) -> bool:
    if np.any(d == 0):
        return True
    a = np.abs(d)
    return len(np.unique(a)) < len(a)


def _signed_rank_enumerated(d: np.ndarray, zero_method: str, alternative: str) -> tuple[float, float]:
    """What ``scipy.stats.wilcoxon(d)`` (method ``auto``) returns for n ≤ 13 with ties or zeros, without its loop.

    scipy then runs an exact permutation test over all 2^n sign flips; the same null distribution is one matrix
    product here (ranks of |d| do not change under sign flips).
    """
    zeros = d == 0
    if zero_method == "wilcox":
        ranks = sps.rankdata(np.abs(d[~zeros]))
        zero_half = 0.0
    else:
        all_ranks = sps.rankdata(np.abs(d))
        ranks = all_ranks[~zeros]
        zero_half = float(all_ranks[zeros].sum()) / 2 if zero_method == "zsplit" else 0.0
    signs = np.sign(d[~zeros])
    r_plus = float(ranks[signs > 0].sum()) + zero_half
    r_minus = float(ranks[signs < 0].sum()) + zero_half
    m = len(ranks)
    flips = (np.arange(2**m)[:, None] >> np.arange(m)[None, :]) & 1
    null = flips @ ranks + zero_half
    gamma = abs(np.finfo(np.float64).eps * 100 * r_plus)
    less = np.count_nonzero(null <= r_plus + gamma) / len(null)
    greater = np.count_nonzero(null >= r_plus - gamma) / len(null)
    if alternative == "less":
        p = less
    elif alternative == "greater":
        p = greater
    elif alternative == "two-sided":
        p = min(1.0, 2 * min(less, greater))
    else:
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater', not {alternative!r}")
    statistic = min(r_plus, r_minus) if alternative == "two-sided" else r_plus
    return statistic, float(p)


def pairwise_wilcoxon_matrix(
    matrix: np.ndarray | pd.DataFrame,
    labels: Sequence | None = None,
    *,
    decimals: int | None = DIFF_DECIMALS,
    **wilcoxon_kwargs,
) -> pd.DataFrame:
    """All pairs (a, b) of columns: Wilcoxon signed-rank on a − b per row, Holm over the pairs.

    Differences are rounded to ``decimals`` so that equal differences tie exactly despite float round-off (mean ranks
    are rationals; ``None`` keeps raw float differences, as R and scipy on raw data do). Rows with a NaN in either
    column are dropped pairwise.
    """
    if isinstance(matrix, pd.DataFrame):
        labels = list(matrix.columns) if labels is None else list(labels)
        matrix = matrix.to_numpy(dtype=np.float64)
    x = np.asarray(matrix, dtype=np.float64)
    labels = list(range(x.shape[1])) if labels is None else list(labels)
    rows = []
    for i, j in itertools.combinations(range(x.shape[1]), 2):
        d = x[:, i] - x[:, j]
        if decimals is not None:
            d = np.round(d, decimals)
        stat, p = signed_rank(d, **wilcoxon_kwargs)
        rows.append({"a": labels[i], "b": labels[j], "statistic": stat, "p": p, "n": int(np.sum(~np.isnan(d)))})
    out = pd.DataFrame(rows, columns=["a", "b", "statistic", "p", "n"])
    out["p_holm"] = holm(out["p"].to_numpy())
    return out


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values, as ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]``; NaN stays NaN.

    Computed directly (step-down maximum of (m − i) · p_(i), capped at 1): statsmodels runs a full garbage
    collection on every call, which dominates the cost when a report adjusts hundreds of small families.
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.nonzero(~np.isnan(p))[0]
    m = len(ok)
    if m:
        order = ok[np.argsort(p[ok], kind="mergesort")]
        adjusted = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
        out[order] = adjusted
    return out


def kruskal_groups(groups: dict[str, Sequence[float]]) -> dict:
    """Kruskal–Wallis H test across groups (``scipy.stats.kruskal``); groups with no values are left out."""
    clean = {g: np.asarray(v, dtype=np.float64) for g, v in groups.items()}
    clean = {g: v[~np.isnan(v)] for g, v in clean.items()}
    clean = {g: v for g, v in clean.items() if len(v)}
    out = {"statistic": float("nan"), "df": max(len(clean) - 1, 0), "p": float("nan"), "n_groups": len(clean)}
    if len(clean) < 2:
        return out
    allv = np.concatenate(list(clean.values()))
    if np.all(allv == allv[0]):
        out.update(statistic=0.0, p=1.0)
        return out
    res = sps.kruskal(*clean.values())
    out.update(statistic=float(res.statistic), p=float(res.pvalue))
    return out


def kendall_tau_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between matching rows of two (N, K) arrays of ranks (NaN = absent, compared pairwise)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = ~np.isnan(x) & ~np.isnan(y)
    with np.errstate(invalid="ignore"):
        sx = np.sign(x[:, :, None] - x[:, None, :])
        sy = np.sign(y[:, :, None] - y[:, None, :])
    both = ok[:, :, None] & ok[:, None, :]
    upper = np.triu(np.ones(x.shape[1:] * 2, dtype=bool), 1)[None, :, :] & both
    sx = np.where(upper, sx, 0.0)
    sy = np.where(upper, sy, 0.0)
    num = np.sum(sx * sy, axis=(1, 2))
    den = np.sqrt(np.sum(sx != 0, axis=(1, 2)) * np.sum(sy != 0, axis=(1, 2)).astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def chi2_p(statistic: float, df: int) -> float:
    return float(sps.chi2.sf(statistic, df)) if math.isfinite(statistic) and df > 0 else float("nan")


def friedman_exact_p(matrix: np.ndarray, *, max_states: int = 4_000_000) -> float:
    """Exact permutation p-value of the Friedman statistic (all within-block permutations equally likely).

    Dynamic programming over blocks on the distribution of the treatments' rank-sum vector, held as a dense array
    over the first K − 1 rank sums (the last is fixed by the total); midranks are doubled to stay integers. For the
    small groups (a handful of participants per culture) where the chi-square approximation is rough. Raises
    ``ValueError`` when the array would exceed ``max_states`` cells (use the chi-square p there).
    """
    x = np.asarray(matrix, dtype=np.float64)
    x = x[~np.isnan(x).any(axis=1)]
    n, k = x.shape
    if n == 0 or k < 2:
        return float("nan")
    ranks = np.rint(sps.rankdata(x, axis=1) * 2).astype(np.int64)  # doubled midranks: integers 2..2k
    dims = k - 1
    width = n * (2 * k - 2) + 1  # each of the first k-1 doubled rank sums lies in [2n, 2kn]
    if width**dims > max_states:
        raise ValueError(f"exact Friedman p needs more than {max_states} states; use the chi-square p")
    dist = np.zeros((1,) * dims)
    dist[(0,) * dims] = 1.0
    for row in ranks:
        perms = np.unique(np.array(list(itertools.permutations(row))), axis=0)
        shifts = perms[:, :dims] - 2
        nxt = np.zeros(tuple(s + 2 * k - 2 for s in dist.shape))
        for shift in shifts:
            nxt[tuple(slice(o, o + s) for o, s in zip(shift, dist.shape, strict=True))] += dist
        dist = nxt / len(perms)
    total = int(ranks.sum())
    grids = np.meshgrid(*[np.arange(s) + 2 * n for s in dist.shape], indexing="ij", sparse=True)
    first = sum(g for g in grids)
    stat = sum(g.astype(np.float64) ** 2 for g in grids) + (total - first).astype(np.float64) ** 2
    observed = float(np.sum(ranks.sum(axis=0).astype(np.float64) ** 2))
    feasible = dist > 0
    return float(min(1.0, np.sum(dist[feasible & (stat >= observed * (1 - 1e-12))])))
