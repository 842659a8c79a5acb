"""Plackett–Luce maximum likelihood, batched over weightings of the same data.

A ranking ``o_1 > o_2 > … > o_m`` is a sequence of ``m − 1`` choices: ``o_i`` chosen from the set ``{o_i, …, o_m}``.
The likelihood depends on the data only through how often each *stage type* (choice set, chosen item) occurs, so a
table of rankings reduces to a vector of stage-type counts (at most ``K · 2^(K−1)`` types; 32 for K = 4).
Per-participant counts and a ``B × P`` matrix of bootstrap draws give all ``B`` resamples' count vectors at once,
and Newton's method runs on all of them together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MAX_ABS_LOG_WORTH = 30.0
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class StageTypes:
    """Distinct (choice set, chosen item) pairs and, per ranking stage, which type it is."""

    sets: np.ndarray  # (T, K) bool: items in the choice set
    chosen: np.ndarray  # (T,) int: the item chosen
    stage_type: np.ndarray  # (J, K-1) int type index, -1 where the ranking has no such stage


def _orderings(ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Items in rank order (absent items last) and the number of ranked items per row."""
    present = ~np.isnan(ranks)
    length = present.sum(axis=1)
    key = np.where(present, ranks, np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    sorted_ranks = np.take_along_axis(key, order, axis=1)
    with np.errstate(invalid="ignore"):
        tied = (np.diff(sorted_ranks, axis=1) == 0) & np.isfinite(sorted_ranks[:, 1:])
    if tied.any():
        row = int(np.nonzero(tied.any(axis=1))[0][0])
        raise ValueError(f"ranking {row} has tied ranks; Plackett–Luce needs strict rankings")
    return order, length


def stage_types(ranks: np.ndarray) -> StageTypes:
    """Encode every choice stage of every ranking (rows of ``ranks``; NaN = item absent)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    n, k = ranks.shape
    if k > 30:
        raise ValueError("Plackett–Luce stage encoding supports at most 30 items per table")
    order, length = _orderings(ranks)
    bits = np.left_shift(np.int64(1), order.astype(np.int64))
    bits = np.where(np.arange(k)[None, :] < length[:, None], bits, 0)
    suffix = np.cumsum(bits[:, ::-1], axis=1)[:, ::-1]  # suffix[:, i] = bits of items ranked i-th or later
    n_stages = max(k - 1, 0)
    valid = np.arange(n_stages)[None, :] < (length[:, None] - 1)
    code = suffix[:, :n_stages] * k + order[:, :n_stages]
    code = np.where(valid, code, -1)
    uniq, inverse = np.unique(code[valid], return_inverse=True)
    stage = np.full((n, n_stages), -1, dtype=np.int64)
    stage[valid] = inverse
    set_bits, chosen = np.divmod(uniq, k)
    sets = ((set_bits[:, None] >> np.arange(k)[None, :]) & 1).astype(bool)
    return StageTypes(sets=sets, chosen=chosen.astype(np.int64), stage_type=stage)


def stage_counts(types: StageTypes, group: np.ndarray, n_groups: int, weights: np.ndarray | None = None) -> np.ndarray:
    """(G, T) weighted count of each stage type within each group (e.g. participant) of rankings."""
    n_types = len(types.chosen)
    st = types.stage_type
    w = np.ones(st.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    rows, cols = np.nonzero(st >= 0)
    flat = group[rows] * n_types + st[rows, cols]
    return np.bincount(flat, weights=w[rows], minlength=n_groups * n_types).reshape(n_groups, n_types)


def _softmax_sets(theta: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """(B, T, K) choice probabilities within each stage type's set."""
    logits = np.where(sets[None, :, :], theta[:, None, :], -np.inf)
    logits = logits - logits.max(axis=2, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=2, keepdims=True)


def log_likelihood(theta: np.ndarray, counts: np.ndarray, types: StageTypes) -> np.ndarray:
    """Plackett–Luce log-likelihood for each row of ``theta`` (B, K) with stage counts ``counts`` (B, T)."""
    logits = np.where(types.sets[None, :, :], theta[:, None, :], -np.inf)
    m = logits.max(axis=2, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(axis=2, keepdims=True)))[:, :, 0]
    chosen = theta[:, types.chosen]
    return np.sum(counts * (chosen - lse), axis=1)


def _grad_info(theta: np.ndarray, counts: np.ndarray, types: StageTypes) -> tuple[np.ndarray, np.ndarray]:
    k = theta.shape[1]
    prob = _softmax_sets(theta, types.sets)
    onehot = np.eye(k)[types.chosen]
    weighted = counts[:, :, None] * prob  # (B, T, K)
    expected = weighted.sum(axis=1)
    grad = counts @ onehot - expected
    info = np.matmul(weighted.transpose(0, 2, 1), prob)
    info = -info
    diag = np.arange(k)
    info[:, diag, diag] += expected
    return grad, info


def _fit_chunk(
    counts: np.ndarray,
    types: StageTypes,
    active: np.ndarray,
    alpha: float,
    max_iter: int,
    tol: float,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    b, k = counts.shape[0], types.sets.shape[1]
    theta = np.zeros((b, k)) if start is None else np.tile(np.nan_to_num(start), (b, 1))
    converged = np.zeros(b, dtype=bool)
    ones = np.outer(active, active).astype(np.float64)
    inactive = np.diag((~active).astype(np.float64))
    ll = log_likelihood(theta, counts, types) - 0.5 * alpha * np.sum(theta**2, axis=1)
    for _ in range(max_iter):
        todo = ~converged
        if not todo.any():
            break
        th, cn = theta[todo], counts[todo]
        grad, info = _grad_info(th, cn, types)
        grad = (grad - alpha * th) * active
        scale = np.maximum(np.einsum("bkk->b", info), 1.0)[:, None, None]
        system = info + alpha * np.eye(k) + ones + inactive + 1e-10 * scale * np.eye(k)
        step = np.linalg.solve(system, grad[:, :, None])[:, :, 0]
        old = ll[todo]
        t = np.ones(len(th))
        new_theta = np.clip(th + step, -_MAX_ABS_LOG_WORTH, _MAX_ABS_LOG_WORTH)
        new_ll = log_likelihood(new_theta, cn, types) - 0.5 * alpha * np.sum(new_theta**2, axis=1)
        for _ in range(40):
            worse = new_ll < old - 1e-12 * np.maximum(1.0, np.abs(old))
            if not worse.any():
                break
            t[worse] *= 0.5
            cand = np.clip(th[worse] + t[worse, None] * step[worse], -_MAX_ABS_LOG_WORTH, _MAX_ABS_LOG_WORTH)
            new_theta[worse] = cand
            new_ll[worse] = log_likelihood(cand, cn[worse], types) - 0.5 * alpha * np.sum(cand**2, axis=1)
        moved = np.max(np.abs(new_theta - th), axis=1)
        idx = np.nonzero(todo)[0]
        theta[idx] = new_theta
        ll[idx] = new_ll
        converged[idx] = (moved < tol) & (np.max(np.abs(new_theta), axis=1) < _MAX_ABS_LOG_WORTH - 1e-9)
    theta = np.where(active[None, :], theta, np.nan)
    theta = theta - np.nanmean(theta, axis=1, keepdims=True)
    return theta, converged


def mle_exists(counts: np.ndarray, types: StageTypes, active: np.ndarray) -> np.ndarray:
    """Per row of stage counts: does the MLE exist? (Hunter 2004: in every split of the items, some item of each part
    beats some item of the other, i.e. the "i was chosen over j" graph on the occurring items is strongly connected.)"""
    counts = np.atleast_2d(counts)
    k = types.sets.shape[1]
    beats = (np.eye(k)[types.chosen][:, :, None] * types.sets[:, None, :]).astype(np.float64)  # (T, K, K)
    reach = np.einsum("bt,tkl->bkl", (counts > 0).astype(np.float64), beats) > 0
    reach |= np.eye(k, dtype=bool)[None]
    for _ in range(max(1, int(np.ceil(np.log2(max(k, 2)))))):
        reach = np.einsum("bij,bjk->bik", reach.astype(np.float64), reach.astype(np.float64)) > 0
    sub = reach[:, active][:, :, active]
    return sub.all(axis=(1, 2))


def fit_counts(
    counts: np.ndarray,
    types: StageTypes,
    *,
    alpha: float = 0.0,
    max_iter: int = 100,
    tol: float = 1e-9,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood log-worths (centred over items that occur) for each row of stage counts (B, T).

    Returns ``(theta, converged)``; ``theta`` is (B, K), NaN for items that never appear in a choice set. Where the
    unpenalised MLE does not exist (an item always ranked last, say; see :func:`mle_exists`) the whole row is NaN and
    reported not converged. ``start`` (K,) is where Newton's method starts (e.g. the full-data estimate when fitting
    bootstrap resamples); zeros by default.
    """
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    k = types.sets.shape[1]
    active = (types.sets.T.astype(np.float64) @ counts.sum(axis=0)) > 0
    theta = np.full((counts.shape[0], k), np.nan)
    converged = np.zeros(counts.shape[0], dtype=bool)
    rows = np.nonzero(mle_exists(counts, types, active))[0] if alpha == 0 else np.arange(counts.shape[0])
    chunk = max(1, _CHUNK_ELEMENTS // max(1, len(types.chosen) * k * k))
    for first in range(0, len(rows), chunk):
        idx = rows[first : first + chunk]
        theta[idx], converged[idx] = _fit_chunk(counts[idx], types, active, alpha, max_iter, tol, start)
    return theta, converged


def information(theta: np.ndarray, counts: np.ndarray, types: StageTypes) -> np.ndarray:
    """Observed Fisher information (K, K) at ``theta`` for one count vector."""
    th = np.nan_to_num(np.asarray(theta, dtype=np.float64)[None, :], nan=-np.inf)
    th = np.where(np.isfinite(th), th, 0.0)
    _, info = _grad_info(th, np.asarray(counts, dtype=np.float64)[None, :], types)
    return info[0]


def constrained_se(info: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Standard errors of sum-zero log-worths: square roots of the diagonal of the information's pseudo-inverse.

    The information matrix has the all-ones vector in its null space (worths are defined up to a common factor); its
    Moore–Penrose inverse is the covariance of the parameters under the constraint that they sum to zero.
    """
    se = np.full(info.shape[0], np.nan)
    idx = np.nonzero(active)[0]
    if len(idx) < 2:
        return se
    cov = np.linalg.pinv(info[np.ix_(idx, idx)], hermitian=True)
    se[idx] = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return se


def plackett_luce(
    rankings: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    alpha: float = 0.0,
    max_iter: int = 200,
    tol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray]:
    """Plackett–Luce MLE from a judgments × items array of ranks (1 = best, NaN = item absent).

    Returns ``(log_worths, se)``: log-worths centred to sum 0 over the items that occur, and standard errors from the
    observed Fisher information under that constraint. All NaN when the MLE does not exist (``alpha = 0`` and some
    group of items never beats the rest). ``weights`` (one per judgment) multiply the log-likelihood
    terms; ``alpha`` adds a Gaussian penalty ``alpha/2 · ||θ||²`` (0 = plain MLE).
    """
    rankings = np.asarray(rankings, dtype=np.float64)
    if rankings.ndim != 2:
        raise ValueError("rankings must be a 2-D array (judgments × items)")
    if weights is not None and len(weights) != rankings.shape[0]:
        raise ValueError("weights must have one entry per judgment")
    types = stage_types(rankings)
    counts = stage_counts(types, np.zeros(rankings.shape[0], dtype=np.int64), 1, weights)[0]
    if counts.sum() == 0:
        nan = np.full(rankings.shape[1], np.nan)
        return nan, nan
    theta, _ = fit_counts(counts[None, :], types, alpha=alpha, max_iter=max_iter, tol=tol)
    theta = theta[0]
    if np.isnan(theta).all():
        return theta, np.full(len(theta), np.nan)
    active = ~np.isnan(theta)
    info = information(theta, counts, types) + alpha * np.eye(len(theta))
    return theta, constrained_se(info, active)
