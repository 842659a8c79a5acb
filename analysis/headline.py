"""Headline tests that respect both random factors: Wald tests with a crossed-bootstrap covariance.

The mean rank of each model is a ratio of sums over judgments; its sampling variance has a participant part, a page
(page × model) part and a residual part. The crossed bootstrap (``analysis.crossed``) estimates the covariance of the
K mean ranks with all three parts (Owen 2007: the pigeonhole bootstrap variance is, if anything, slightly too large,
because the residual is counted under both resampling factors). The headline test of "all models have the same mean
rank" is then the Wald statistic of the K − 1 contrasts,

    T = (C r)ᵀ (C Σ* Cᵀ)⁻¹ (C r),

referred to Hotelling's ``T (m − q + 1) / (m q) ~ F(q, m − q + 1)`` with ``q = K − 1`` and
``m = min(participants, pages) − 1``: the small-sample correction for a covariance estimated from ``m + 1`` clusters
of the scarcer factor; it tends to the χ²_q reference as both factors grow, and with ``m < q`` (e.g. 3 participants,
4 models) no test is computed (p = NaN, null in JSON) rather than a χ² p that would reject far too often.
Pairwise tests are the Wald t of each difference with its crossed-bootstrap standard error on the same ``m`` degrees
of freedom, Holm-adjusted over all pairs.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
from scipy import stats as sps

from analysis._inference import holm

METHOD = "crossed-bootstrap Wald test of equal mean ranks (F reference)"


def _finite_rows(boot: np.ndarray) -> np.ndarray:
    return boot[np.isfinite(boot).all(axis=1)]


def small_sample_df(n_participants: int, n_pages: int) -> int:
    """Denominator degrees of freedom: clusters of the scarcer factor, less one."""
    return max(min(int(n_participants), int(n_pages)) - 1, 0)


def omnibus(point: np.ndarray, boot: np.ndarray, n_participants: int, n_pages: int) -> dict:
    """Wald test that every entry of ``point`` (K,) is equal, covariance from bootstrap replicates ``boot`` (B, K).

    Models whose point estimate is undefined are left out. Returns ``statistic`` (the Wald T), ``df`` (numerator q),
    ``df_denominator`` (m), ``p`` and ``n_boot_used``.
    """
    point = np.asarray(point, dtype=np.float64)
    keep = np.isfinite(point)
    x, bt = point[keep], _finite_rows(np.asarray(boot, dtype=np.float64)[:, keep])
    k = len(x)
    m = small_sample_df(n_participants, n_pages)
    out = {"method": METHOD, "statistic": float("nan"), "df": max(k - 1, 0), "df_denominator": m}
    out |= {"p": float("nan"), "n_boot_used": int(bt.shape[0])}
    if k < 2 or bt.shape[0] < k + 1 or m < 1:
        return out
    contrast = np.hstack([np.eye(k - 1), -np.ones((k - 1, 1))])
    d = contrast @ x
    cov = np.cov(bt @ contrast.T, rowvar=False).reshape(k - 1, k - 1)
    if not np.any(np.abs(d) > 1e-12):
        out.update(statistic=0.0, p=1.0)
        return out
    eig = np.linalg.eigvalsh(cov)
    if eig.max() <= 0:
        return out  # no resampling variability at all (e.g. one participant ranking one page)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        inv = np.linalg.pinv(cov, hermitian=True, rtol=1e-10)
    q = int(np.sum(eig > 1e-10 * eig.max()))
    stat = float(d @ inv @ d)
    out.update(statistic=stat, df=q, p=_f_p(stat, q, m))
    return out


def _f_p(stat: float, q: int, m: int) -> float:
    """p of a Wald statistic on q constraints, covariance from m + 1 clusters: Hotelling's T² → F(q, m − q + 1)."""
    if m - q + 1 <= 0:  # fewer clusters of the scarcer factor than constraints + 1: the covariance cannot carry it
        return float("nan")
    f = stat * (m - q + 1) / (m * q)
    return float(sps.f.sf(f, q, m - q + 1))


def pairwise(point: np.ndarray, boot: np.ndarray, n_participants: int, n_pages: int) -> list[dict]:
    """Every pair (a, b) by column index: difference a − b, crossed-bootstrap SE, two-sided t p, Holm over pairs."""
    point = np.asarray(point, dtype=np.float64)
    boot = np.asarray(boot, dtype=np.float64)
    m = small_sample_df(n_participants, n_pages)
    rows = []
    for a, b in itertools.combinations(range(len(point)), 2):
        diff = point[a] - point[b]
        d_boot = boot[:, a] - boot[:, b]
        d_boot = d_boot[np.isfinite(d_boot)]
        se = float(np.std(d_boot, ddof=1)) if len(d_boot) > 1 else float("nan")
        if not np.isfinite(diff) or not np.isfinite(se) or m < 1:
            p = float("nan")
        elif se == 0:
            p = 1.0 if diff == 0 else float("nan")
        else:
            p = float(2 * sps.t.sf(abs(diff) / se, m))
        rows.append({"a": a, "b": b, "difference": float(diff), "se": se, "p": p})
    adjusted = holm(np.array([r["p"] for r in rows], dtype=np.float64))
    for r, ph in zip(rows, adjusted, strict=True):
        r["p_holm"] = float(ph)
    return rows
