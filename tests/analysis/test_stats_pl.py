"""Plackett–Luce: agreement with choix, standard errors, weights and the batched fit."""

from __future__ import annotations

import choix
import numpy as np
import pytest

from analysis import stats
from analysis._pl import fit_counts, stage_counts, stage_types


def simulate_rankings(n: int, theta: np.ndarray, rng: np.random.Generator, *, partial: bool) -> np.ndarray:
    k = len(theta)
    ranks = np.full((n, k), np.nan)
    for j in range(n):
        m = int(rng.integers(2, k + 1)) if partial else k
        items = rng.choice(k, m, replace=False)
        utility = theta[items] + rng.gumbel(size=m)
        ranks[j, items[np.argsort(-utility)]] = np.arange(1, m + 1)
    return ranks


def as_choix(ranks: np.ndarray) -> list[tuple[int, ...]]:
    out = []
    for row in ranks:
        present = np.nonzero(~np.isnan(row))[0]
        out.append(tuple(int(i) for i in present[np.argsort(row[present])]))
    return out


@pytest.mark.parametrize(("k", "partial", "seed"), [(3, False, 0), (4, False, 1), (5, True, 2), (6, True, 3)])
def test_agrees_with_choix(k, partial, seed):
    rng = np.random.default_rng(seed)
    theta = rng.normal(scale=0.8, size=k)
    ranks = simulate_rankings(150, theta, rng, partial=partial)
    got, se = stats.plackett_luce(ranks)
    ilsr = choix.ilsr_rankings(k, as_choix(ranks), alpha=0.0, max_iter=10_000, tol=1e-12)
    np.testing.assert_allclose(got, ilsr - ilsr.mean(), atol=1e-7)
    if k == 6:
        opt = choix.opt_rankings(k, as_choix(ranks), alpha=0.0, tol=1e-10)
        np.testing.assert_allclose(got, opt - opt.mean(), atol=1e-5)
    assert got.sum() == pytest.approx(0.0, abs=1e-12)
    assert np.all(se > 0) and np.all(se < 0.6)


def test_standard_errors_match_a_reference_parameterisation():
    """Sum-zero SEs equal those from fixing item 0 at zero, inverting, and centring (delta method)."""
    rng = np.random.default_rng(5)
    k = 4
    ranks = simulate_rankings(400, np.array([0.0, 0.3, -0.5, 1.0]), rng, partial=True)
    theta, se = stats.plackett_luce(ranks)
    h = 1e-5
    types = stage_types(ranks)
    counts = stage_counts(types, np.zeros(len(ranks), dtype=np.int64), 1)[0]

    def loglik(t: np.ndarray) -> float:
        logits = np.where(types.sets, t[None, :], -np.inf)
        lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        return float(np.sum(counts * (t[types.chosen] - lse)))

    hess = np.zeros((k - 1, k - 1))
    base = theta - theta[0]
    for a in range(1, k):
        for b in range(1, k):

            def f(da: float, db: float, a: int = a, b: int = b) -> float:
                t = base.copy()
                t[a] += da
                t[b] += db
                return loglik(t)

            hess[a - 1, b - 1] = (f(h, h) - f(h, -h) - f(-h, h) + f(-h, -h)) / (4 * h * h)
    cov_free = np.linalg.inv(-hess)
    full = np.zeros((k, k))
    full[1:, 1:] = cov_free
    centre = np.eye(k) - 1.0 / k
    cov = centre @ full @ centre.T
    np.testing.assert_allclose(se, np.sqrt(np.diag(cov)), rtol=1e-4)


def test_weights_equal_repeated_rows():
    rng = np.random.default_rng(7)
    ranks = simulate_rankings(60, np.array([0.2, -0.4, 0.9]), rng, partial=False)
    reps = rng.integers(1, 4, size=60)
    weighted, se_w = stats.plackett_luce(ranks, weights=reps.astype(float))
    repeated, se_r = stats.plackett_luce(np.repeat(ranks, reps, axis=0))
    np.testing.assert_allclose(weighted, repeated, atol=1e-10)
    np.testing.assert_allclose(se_w, se_r, rtol=1e-10)


def test_batched_fit_equals_one_at_a_time():
    rng = np.random.default_rng(8)
    ranks = simulate_rankings(120, np.array([0.0, 0.5, 1.0, -0.3]), rng, partial=True)
    types = stage_types(ranks)
    groups = rng.integers(0, 10, size=len(ranks))
    per_group = stage_counts(types, groups, 10)
    weights = rng.multinomial(10, np.full(10, 0.1), size=7).astype(float)
    batched, converged = fit_counts(weights @ per_group, types)
    assert converged.all()
    for b in range(7):
        judgment_weights = weights[b][groups]
        alone, _ = stats.plackett_luce(ranks, weights=judgment_weights)
        np.testing.assert_allclose(batched[b], alone, atol=1e-8)


def test_absent_item_and_bad_input():
    ranks = np.array([[1, 2, np.nan], [2, 1, np.nan], [1, 2, np.nan]])
    theta, se = stats.plackett_luce(ranks)
    assert np.isnan(theta[2]) and np.isnan(se[2])
    assert theta[0] - theta[1] == pytest.approx(np.log(2))
    with pytest.raises(ValueError, match="tied"):
        stats.plackett_luce(np.array([[1, 1, 2]]))
    with pytest.raises(ValueError, match="2-D"):
        stats.plackett_luce(np.array([1, 2, 3]))


def test_penalty_shrinks_towards_zero():
    rng = np.random.default_rng(9)
    ranks = simulate_rankings(50, np.array([0.0, 1.0, 2.0]), rng, partial=False)
    plain, _ = stats.plackett_luce(ranks)
    shrunk, _ = stats.plackett_luce(ranks, alpha=5.0)
    assert np.abs(shrunk).sum() < np.abs(plain).sum()
    via_choix = choix.opt_rankings(3, as_choix(ranks), alpha=2.5, tol=1e-10)  # choix penalises alpha·||θ||²
    np.testing.assert_allclose(shrunk, via_choix - via_choix.mean(), atol=1e-4)


def test_no_estimate_when_the_mle_does_not_exist():
    always_last = np.array([[1, 2, 3], [2, 1, 3], [1, 2, 3]], dtype=float)
    theta, se = stats.plackett_luce(always_last)
    assert np.isnan(theta).all() and np.isnan(se).all()
    shrunk, _ = stats.plackett_luce(always_last, alpha=1.0)
    assert np.isfinite(shrunk).all() and shrunk[2] < shrunk[0]
    types = stage_types(always_last)
    counts = stage_counts(types, np.arange(3), 3)
    fitted, converged = fit_counts(counts, types)
    assert not converged.any() and np.isnan(fitted).all()
    fine = np.vstack([always_last, [[3, 2, 1]]])
    assert np.isfinite(stats.plackett_luce(fine)[0]).all()
