"""Krippendorff's alpha: published values at all four levels, an independent pairwise formulation, page pooling."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from analysis import stats

NAN = np.nan
# Krippendorff (2011) "Computing Krippendorff's Alpha-Reliability", the 4 observers × 12 units example.
K2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)


@pytest.mark.parametrize(
    ("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)]
)
def test_krippendorff_2011_example(level, published):
    assert stats.krippendorff_alpha(K2011, level) == pytest.approx(published, abs=0.0005)


def pairwise_alpha(data: np.ndarray, level: str) -> float:
    """Alpha from its definition over pairable value pairs (no coincidence matrix), for cross-checking."""
    units = [data[:, u][~np.isnan(data[:, u])] for u in range(data.shape[1])]
    units = [v for v in units if len(v) >= 2]
    pooled = np.concatenate(units)
    values, freq = np.unique(pooled, return_counts=True)
    index = {v: i for i, v in enumerate(values)}

    def delta(a: float, b: float) -> float:
        if level == "nominal":
            return float(a != b)
        if level == "interval":
            return (a - b) ** 2
        if level == "ratio":
            return 0.0 if a + b == 0 else ((a - b) / (a + b)) ** 2
        lo, hi = sorted((index[a], index[b]))
        return (freq[lo : hi + 1].sum() - (freq[lo] + freq[hi]) / 2) ** 2

    n = len(pooled)
    observed = sum(sum(delta(a, b) for a, b in itertools.permutations(v, 2)) / (len(v) - 1) for v in units) / n
    expected = sum(delta(a, b) for a, b in itertools.permutations(pooled, 2)) / (n * (n - 1))
    return 1 - observed / expected


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_matches_pairwise_definition_on_random_data(level):
    rng = np.random.default_rng(4)
    data = rng.integers(1, 5, size=(5, 9)).astype(float)
    data[rng.random(data.shape) < 0.25] = np.nan
    assert stats.krippendorff_alpha(data, level) == pytest.approx(pairwise_alpha(data, level), abs=1e-12)


def test_perfect_and_systematic_disagreement():
    same = np.array([[1.0, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]])
    for level in ("nominal", "ordinal", "interval", "ratio"):
        assert stats.krippendorff_alpha(same, level) == pytest.approx(1.0)
    opposite = np.array([[1.0, 2, 3, 4], [4, 3, 2, 1]])
    assert stats.krippendorff_alpha(opposite, "interval") < 0
    with pytest.raises(ValueError, match="level"):
        stats.krippendorff_alpha(same, "cardinal")


def test_page_alpha_pools_pages():
    """Pooling coincidence matrices equals alpha on one raters × (page, image) matrix."""
    rng = np.random.default_rng(2)
    rows = []
    for page in range(5):
        raters = rng.choice(8, size=int(rng.integers(2, 6)), replace=False)
        for r in raters:
            ranks = rng.permutation(4) + 1 if rng.random() < 0.5 else np.array([1, 2, 3, 4])
            for m in range(4):
                rows.append({"participant_id": f"r{r}", "page_id": f"p{page}", "model_id": f"m{m}", "rank": ranks[m]})
    df = pd.DataFrame(rows)
    wide = df.pivot_table(index="participant_id", columns=["page_id", "model_id"], values="rank")
    for level in ("ordinal", "nominal", "interval"):
        assert stats.page_alpha(df, level) == pytest.approx(stats.krippendorff_alpha(wide.to_numpy(), level))
    consistent = df.assign(rank=df.groupby(["page_id", "model_id"])["rank"].transform("first"))
    assert stats.page_alpha(consistent) == pytest.approx(1.0)
