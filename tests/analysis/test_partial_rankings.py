"""Partial rankings (n_items < K): a missing item must not move mean-rank statistics or their tests.

The issue's example: under a true null, dropping one model from half the pages made the participant-level Friedman
and Wilcoxon tests on raw mean ranks reject (the other models get ranks 1..K-1 on those pages, so they look better).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import stats
from analysis._inference import friedman_matrix, pairwise_wilcoxon_matrix
from analysis._tables import pairwise_mean_rank
from analysis.simulate import simulate_responses
from study_designs.schema import load_design

KEYS = ["participant_id", "page_id", "criterion", "is_repeat", "is_attention_check"]


def drop_model(df: pd.DataFrame, model: str, fraction: float, seed: int) -> pd.DataFrame:
    """Remove ``model`` from a random ``fraction`` of the pages and re-rank what is left (order kept), as an export
    of a design that showed fewer images on those pages would."""
    rng = np.random.default_rng(seed)
    pages = np.array(sorted(df["page_id"].astype(str).unique()))
    chosen = set(rng.choice(pages, size=int(len(pages) * fraction), replace=False))
    hit = df["page_id"].astype(str).isin(chosen).to_numpy()
    out = df[~(hit & (df["model_id"].astype(str) == model).to_numpy())].copy()
    h = out["page_id"].astype(str).isin(chosen)
    sub = out[h]
    out.loc[h, "rank"] = sub.groupby(KEYS, observed=True)["rank"].rank(method="first").astype(int)
    pos = sub.groupby(KEYS, observed=True)["initial_position"].rank(method="first").astype(int) - 1
    out.loc[h, "initial_position"] = pos
    out.loc[h, "n_items"] = sub.groupby(KEYS, observed=True)["rank"].transform("size")
    return out


def raw_mean_ranks(df: pd.DataFrame) -> pd.DataFrame:
    """What the report computed before: each participant's plain mean of the ranks a model received."""
    rows = df[~df["is_repeat"].to_numpy(dtype=bool)]
    return rows.groupby(["participant_id", "model_id"], observed=True)["rank"].mean().unstack()


@pytest.fixture(scope="module")
def design():
    return load_design("study_designs/scoft-cvpr2024.toml")


def null_study(design, seed: int, n: int = 30) -> pd.DataFrame:
    df = simulate_responses(design, participants_per_culture={"china": n}, seed=seed)
    return df[(df["criterion"] == "offensiveness") & ~df["is_attention_check"] & ~df["excluded"]]


def test_pairwise_mean_rank_equals_mean_rank_on_complete_rankings():
    rng = np.random.default_rng(0)
    ranks = np.array([rng.permutation(4) + 1 for _ in range(50)], dtype=float)
    wins = (ranks[:, :, None] < ranks[:, None, :]).sum(axis=0)
    both = np.full((4, 4), 50.0)
    assert pairwise_mean_rank(wins, both) == pytest.approx(ranks.mean(axis=0))


def test_deleting_an_item_leaves_the_others_pairwise_mean_ranks_unchanged():
    # two judgments of A > B > C > D; delete D from the second: A, B, C keep their mean rank vs each other
    full = np.array([[1, 2, 3, 4], [1, 2, 3, 4]], dtype=float)
    part = np.array([[1, 2, 3, 4], [1, 2, 3, np.nan]])
    for r in (full, part):
        with np.errstate(invalid="ignore"):
            wins = (r[:, :, None] < r[:, None, :]).sum(axis=0)
        present = ~np.isnan(r)
        both = (present[:, :, None] & present[:, None, :]).sum(axis=0)
        assert pairwise_mean_rank(wins, both) == pytest.approx([1, 2, 3, 4])
    # the plain mean of the second judgment's ranks would have moved nothing here, but a missing TOP item does:
    top_missing = np.array([[1, 2, 3, 4], [np.nan, 1, 2, 3]])
    with np.errstate(invalid="ignore"):
        wins = (top_missing[:, :, None] < top_missing[:, None, :]).sum(axis=0)
    present = ~np.isnan(top_missing)
    both = (present[:, :, None] & present[:, None, :]).sum(axis=0)
    assert pairwise_mean_rank(wins, both) == pytest.approx([1, 2, 3, 4])
    assert np.nanmean(top_missing, axis=0) == pytest.approx([1, 1.5, 2.5, 3.5])


def test_dropping_a_model_from_half_the_pages_keeps_a_null_a_null(design):
    """Over 40 null studies: the raw mean-rank Friedman rejects often; the report's statistic stays near 5%."""
    raw_p, new_p, raw_holm, new_holm = [], [], [], []
    for seed in range(40):
        part = drop_model(null_study(design, seed), "scoft_mpc", 0.5, seed)
        raw = raw_mean_ranks(part)
        raw_p.append(friedman_matrix(raw.to_numpy())["p"])
        raw_holm.append(pairwise_wilcoxon_matrix(raw)["p_holm"].min())
        new_p.append(stats.friedman(part)["p"])
        new_holm.append(stats.pairwise_wilcoxon(part)["p_holm"].min())
    raw_p, new_p, raw_holm, new_holm = map(np.asarray, (raw_p, new_p, raw_holm, new_holm))
    assert np.mean(raw_p < 0.05) >= 0.2  # the distortion the issue reported (so this test can fail)
    assert np.mean(new_p < 0.05) <= 0.10
    assert np.mean(raw_holm < 0.05) >= 0.2
    assert np.mean(new_holm < 0.05) <= 0.10


def test_partial_rankings_leave_mean_ranks_and_pl_where_the_full_data_put_them(design):
    df = null_study(design, 3, n=60)
    part = drop_model(df, "scoft_mpc", 0.5, 3)
    full_mr = stats.mean_ranks(df, n_boot=0).set_index("model_id")["mean_rank"]
    part_mr = stats.mean_ranks(part, n_boot=0).set_index("model_id")["mean_rank"]
    raw = raw_mean_ranks(part).mean()
    assert part_mr.sum() == pytest.approx(10.0)  # still on the 1..4 scale: ranks of 4 items sum to 10
    assert (part_mr - full_mr).abs().max() < 0.06
    assert (raw - full_mr).abs().max() > 0.15  # the plain mean drifts
    full_pl = stats.pl_worths(df, n_boot=0).set_index("model_id")["pl_log_worth"]
    part_pl = stats.pl_worths(part, n_boot=0).set_index("model_id")["pl_log_worth"]
    assert np.isfinite(part_pl).all()
    assert (part_pl - full_pl).abs().max() < 0.1


def test_the_crossed_headline_test_stays_calibrated_with_partial_rankings(design):
    """The headline test of the report (crossed-bootstrap Wald) on the same partial-ranking nulls."""
    rejected = []
    for seed in range(30):
        part = drop_model(null_study(design, seed), "scoft_mpc", 0.5, seed)
        group = stats.summarise_group(part, n_boot=200, seed=seed)
        assert group["n_partial_judgments"] > 0
        rejected.append(group["headline"]["p"] < 0.05)
    assert np.mean(rejected) <= 0.10


def test_crossed_resamples_of_partial_rankings_equal_weighted_pairwise_counts(design):
    from analysis._tables import RankTable
    from analysis.crossed import Resampler, resample_group

    part = drop_model(null_study(design, 1, n=8), "scoft_mpc", 0.5, 1)
    t = RankTable.from_long(part)
    assert not t.complete
    r, _ = Resampler.for_table(part, t, 25, 3)
    w = r.weights.participant[:, r.participant_of] * r.weights.page[:, r.page_of]  # (B, J) judgment weights
    with np.errstate(invalid="ignore"):
        wins = (t.ranks[:, :, None] < t.ranks[:, None, :]).astype(float)
    both = (t.present[:, :, None] & t.present[:, None, :]).astype(float)
    want = pairwise_mean_rank(np.einsum("bj,jkl->bkl", w, wins), np.einsum("bj,jkl->bkl", w, both))
    assert r.mean_ranks(t) == pytest.approx(want, nan_ok=True)
    assert resample_group(t, r).mean_ranks == pytest.approx(want, nan_ok=True)
