"""Krippendorff's alpha from coincidence matrices (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability").

``alpha = 1 − D_o / D_e`` with ``D_o = Σ o_ck δ²_ck / n`` and ``D_e = Σ n_c n_k δ²_ck / (n (n − 1))``, where ``o``
is the coincidence matrix of pairable values, ``n_c`` its margins and ``n`` the number of pairable values.
"""

from __future__ import annotations

import numpy as np

LEVELS = ("nominal", "ordinal", "interval", "ratio")


def coincidences(unit_value_counts: np.ndarray) -> np.ndarray:
    """(V, V) coincidence matrix from a units × values matrix of counts; units with fewer than 2 values drop out."""
    counts = np.asarray(unit_value_counts, dtype=np.float64)
    m = counts.sum(axis=1)
    pairable = m >= 2
    counts, m = counts[pairable], m[pairable]
    if counts.size == 0:
        return np.zeros((unit_value_counts.shape[1],) * 2)
    scaled = counts / (m - 1)[:, None]
    return scaled.T @ counts - np.diag(scaled.sum(axis=0))


def distances(values: np.ndarray, margins: np.ndarray, level: str) -> np.ndarray:
    """(V, V) squared difference function δ² for sorted distinct ``values`` with coincidence margins."""
    v = np.asarray(values, dtype=np.float64)
    if level == "nominal":
        return 1.0 - np.eye(len(v))
    if level == "interval":
        return (v[:, None] - v[None, :]) ** 2
    if level == "ratio":
        total = v[:, None] + v[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            d = ((v[:, None] - v[None, :]) / total) ** 2
        return np.where(total == 0, 0.0, d)
    if level == "ordinal":
        cum = np.concatenate([[0.0], np.cumsum(margins)])
        lo = np.minimum.outer(np.arange(len(v)), np.arange(len(v)))
        hi = np.maximum.outer(np.arange(len(v)), np.arange(len(v)))
        between = cum[hi + 1] - cum[lo]
        return (between - (margins[lo] + margins[hi]) / 2.0) ** 2
    raise ValueError(f"unknown level {level!r}; use one of {LEVELS}")


def alpha_from_coincidences(o: np.ndarray, values: np.ndarray, level: str) -> float:
    """Alpha from a (pooled) coincidence matrix over sorted distinct ``values``."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; use one of {LEVELS}")
    margins = o.sum(axis=1)
    n = margins.sum()
    if n <= 1 or np.count_nonzero(margins) < 2:
        return float("nan")
    d2 = distances(values, margins, level)
    observed = np.sum(o * d2) / n
    expected = np.sum(np.outer(margins, margins) * d2) / (n * (n - 1))
    if expected == 0:
        return float("nan")
    return float(1.0 - observed / expected)


def unit_value_counts(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Units × values count matrix and sorted distinct values from a raters × units array (NaN = missing)."""
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError("data must be a 2-D array: raters × units")
    rater, unit = np.nonzero(~np.isnan(arr))
    vals = arr[rater, unit]
    values, code = np.unique(vals, return_inverse=True)
    counts = np.zeros((arr.shape[1], len(values)))
    np.add.at(counts, (unit, code), 1.0)
    return counts, values


def krippendorff_alpha(data: np.ndarray, level: str = "ordinal") -> float:
    """Krippendorff's alpha for a raters × units array (NaN = missing) at the given level of measurement."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; use one of {LEVELS}")
    counts, values = unit_value_counts(data)
    return alpha_from_coincidences(coincidences(counts), values, level)
