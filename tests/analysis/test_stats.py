"""Rank statistics on the long table: each shortcut checked against a direct computation on small data."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from analysis import stats
from analysis._tables import bootstrap_weights, percentile_ci
from analysis.load import COLUMNS


def make_study(
    n_participants: int = 12,
    n_pages: int = 6,
    worths: tuple[float, ...] = (0.0, 0.4, 0.8, 1.6),
    *,
    criteria: tuple[str, ...] = ("c1",),
    cultures: tuple[str, ...] = ("a", "b"),
    seed: int = 0,
    n_repeat: int = 0,
    heterogeneity: float = 0.5,
    culture_shift: dict[str, np.ndarray] | None = None,
    position_effect: float = 0.0,
    cross_culture: bool = False,
) -> pd.DataFrame:
    """Plackett–Luce participants (Gumbel trick) written as responses.csv rows."""
    rng = np.random.default_rng(seed)
    k = len(worths)
    models = [f"m{i}" for i in range(k)]
    rows = []
    for p in range(n_participants):
        culture = cultures[p % len(cultures)]
        taste = np.asarray(worths, dtype=float) + heterogeneity * rng.normal(size=k)
        if culture_shift and culture in culture_shift:
            taste = taste + culture_shift[culture]
        page_cultures = cultures if cross_culture else (culture,)
        pages = [(pc, f"{pc}-p{i}") for pc in page_cultures for i in range(n_pages)]
        for repeat, plist in ((False, pages), (True, pages[:n_repeat])):
            for page_culture, page in plist:
                pos = rng.permutation(k)
                for crit in criteria:
                    utility = taste + rng.gumbel(size=k) - position_effect * pos
                    rank = np.empty(k, dtype=int)
                    rank[np.argsort(-utility)] = np.arange(1, k + 1)
                    for i in range(k):
                        rows.append(
                            ("r1", f"P{p:03d}", culture, page, page_culture, page, 7, crit, models[i])
                            + (f"{page}-{models[i]}", rank[i], k, pos[i], bool(rank[i] - 1 != pos[i]), 4.0)
                            + ("2026-11-27T10:00:00+00:00", False, repeat, None, False)
                        )
    return pd.DataFrame(rows, columns=COLUMNS)


def expand(df: pd.DataFrame, counts: np.ndarray, participants: list[str]) -> pd.DataFrame:
    """A bootstrap resample by brute force: participant i's rows copied counts[i] times, each copy a new participant."""
    parts = []
    for pid, n in zip(participants, counts.astype(int), strict=True):
        rows = df[df["participant_id"] == pid]
        for copy in range(n):
            parts.append(rows.assign(participant_id=f"{pid}#{copy}"))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def study() -> pd.DataFrame:
    return make_study(n_participants=16, seed=3)


def test_participant_mean_ranks_match_groupby(study):
    got = stats.participant_mean_ranks(study)
    want = study.groupby(["participant_id", "model_id"])["rank"].mean().unstack()
    pd.testing.assert_frame_equal(got, want, check_names=False)


def test_mean_ranks_bootstrap_equals_brute_force(study):
    n_boot, seed = 40, 5
    got = stats.mean_ranks(study, n_boot=n_boot, seed=seed, resample="participants")
    participants = sorted(study["participant_id"].unique())
    w = bootstrap_weights(len(participants), n_boot, seed)
    boot = np.array(
        [expand(study, w[b], participants).groupby("model_id")["rank"].mean().to_numpy() for b in range(n_boot)]
    )
    lo, hi = percentile_ci(boot)
    np.testing.assert_allclose(got["ci_lo"], lo, atol=1e-12)
    np.testing.assert_allclose(got["ci_hi"], hi, atol=1e-12)
    np.testing.assert_allclose(got["sem"], boot.std(axis=0, ddof=1), atol=1e-12)
    np.testing.assert_allclose(got["mean_rank"], study.groupby("model_id")["rank"].mean(), atol=1e-12)
    np.testing.assert_allclose(got["median_rank"], study.groupby("model_id")["rank"].median())
    assert (got["ci_lo"] <= got["mean_rank"]).all() and (got["mean_rank"] <= got["ci_hi"]).all()


def _brute_win_rates(df: pd.DataFrame) -> dict[tuple[str, str], float]:
    wide = df.pivot_table(index=["participant_id", "page_id"], columns="model_id", values="rank")
    return {(a, b): float(np.mean(wide[a] < wide[b])) for a, b in itertools.permutations(wide.columns, 2)}


def test_win_rates_bootstrap_equals_brute_force(study):
    n_boot, seed = 30, 2
    got = stats.win_rates(study, n_boot=n_boot, seed=seed, resample="participants")
    participants = sorted(study["participant_id"].unique())
    w = bootstrap_weights(len(participants), n_boot, seed)
    point = _brute_win_rates(study)
    boots = [_brute_win_rates(expand(study, w[b], participants)) for b in range(n_boot)]
    for row in got.itertuples():
        assert row.win_rate_a == pytest.approx(point[(row.a, row.b)], abs=1e-12)
        lo, hi = percentile_ci(np.array([[bt[(row.a, row.b)]] for bt in boots]))
        assert row.ci_lo == pytest.approx(lo[0], abs=1e-12) and row.ci_hi == pytest.approx(hi[0], abs=1e-12)
        assert row.n == study["page_id"].groupby(study["participant_id"]).nunique().sum()
    pairs = got.set_index(["a", "b"])["win_rate_a"]
    assert pairs[("m0", "m3")] + pairs[("m3", "m0")] == pytest.approx(1.0)


def test_pl_bootstrap_equals_brute_force(study):
    n_boot, seed = 20, 4
    got = stats.pl_worths(study, n_boot=n_boot, seed=seed, resample="participants")
    participants = sorted(study["participant_id"].unique())
    w = bootstrap_weights(len(participants), n_boot, seed)

    def fit(df: pd.DataFrame) -> np.ndarray:
        wide = df.pivot_table(index=["participant_id", "page_id"], columns="model_id", values="rank")
        return stats.plackett_luce(wide.to_numpy())[0]

    point = fit(study)
    boot = np.array([fit(expand(study, w[b], participants)) for b in range(n_boot)])
    lo, hi = percentile_ci(boot)
    np.testing.assert_allclose(got["pl_log_worth"], point, atol=1e-8)
    np.testing.assert_allclose(got["ci_lo"], lo, atol=1e-7)
    np.testing.assert_allclose(got["ci_hi"], hi, atol=1e-7)
    assert got["pl_log_worth"].sum() == pytest.approx(0.0, abs=1e-9)
    assert list(got.sort_values("pl_log_worth")["model_id"]) == ["m0", "m1", "m2", "m3"]


def test_rank_shares_and_top1(study):
    shares = stats.rank_shares(study)
    want = study.groupby("model_id")["rank"].value_counts(normalize=True)
    for row in shares.itertuples():
        assert row.share == pytest.approx(want.get((row.model_id, row.rank), 0.0))
    assert shares.groupby("model_id")["share"].sum().to_numpy() == pytest.approx(np.ones(4))
    assert shares.groupby("rank")["share"].sum().to_numpy() == pytest.approx(np.ones(4))
    top = stats.top1_share(study).set_index("model_id")["top1_share"]
    assert top.to_dict() == pytest.approx(shares[shares["rank"] == 1].set_index("model_id")["share"].to_dict())


def test_friedman_and_wilcoxon_use_participant_means(study):
    means = study.groupby(["participant_id", "model_id"])["rank"].mean().unstack()
    res = stats.friedman(study)
    sp = sps.friedmanchisquare(*means.to_numpy().T)
    assert res["statistic"] == pytest.approx(sp.statistic) and res["p"] == pytest.approx(sp.pvalue)
    assert res["kendall_w"] == pytest.approx(sp.statistic / (len(means) * 3))
    assert res["n_participants"] == len(means) and res["df"] == 3

    pw = stats.pairwise_wilcoxon(study)
    assert list(pw.columns) == ["a", "b", "win_rate_a", "statistic", "p", "p_holm"]
    assert len(pw) == 6
    raw = [sps.wilcoxon(np.round(means[a] - means[b], 10)).pvalue for a, b in zip(pw["a"], pw["b"], strict=True)]
    np.testing.assert_allclose(pw["p"], raw)
    np.testing.assert_allclose(pw["p_holm"], multipletests(raw, method="holm")[1])
    wins = _brute_win_rates(study)
    np.testing.assert_allclose(pw["win_rate_a"], [wins[(a, b)] for a, b in zip(pw["a"], pw["b"], strict=True)])


def test_small_sample_wilcoxon_equals_scipy_default():
    """n ≤ 13 with ties or zeros: scipy enumerates sign flips in a loop; the matrix version must agree exactly."""
    rng = np.random.default_rng(11)
    for _ in range(3):
        n = int(rng.integers(4, 7))
        d = rng.integers(-2, 3, size=n) / 3
        if np.all(d == 0):
            continue
        for zero_method in ("wilcox", "pratt", "zsplit"):
            for alternative in ("two-sided", "greater"):
                m = np.column_stack([d, np.zeros(n)])
                got = stats.pairwise_wilcoxon_matrix(m, zero_method=zero_method, alternative=alternative).iloc[0]
                want = sps.wilcoxon(np.round(d, 10), zero_method=zero_method, alternative=alternative)
                assert got["statistic"] == pytest.approx(want.statistic, abs=1e-12)
                assert got["p"] == pytest.approx(want.pvalue, rel=1e-12)


def test_friedman_two_models_and_constant_rows():
    two = make_study(worths=(0.0, 2.0), seed=1)
    res = stats.friedman(two)
    assert res["df"] == 1 and res["p"] < 0.01
    flat = np.ones((5, 3))
    assert stats.friedman_matrix(flat)["p"] == 1.0


def test_functions_refuse_mixed_criteria():
    df = make_study(criteria=("c1", "c2"), n_participants=4, n_pages=2)
    with pytest.raises(ValueError, match="one criterion"):
        stats.mean_ranks(df, n_boot=10)
    with pytest.raises(ValueError, match="one criterion"):
        stats.summarise_group(df, n_boot=10)


def test_repeat_pages_are_left_out_of_the_main_analysis():
    with_repeats = make_study(n_repeat=2, seed=9)
    without = with_repeats[~with_repeats["is_repeat"]]
    pd.testing.assert_frame_equal(stats.mean_ranks(with_repeats, n_boot=50), stats.mean_ranks(without, n_boot=50))
    assert stats.summarise_group(with_repeats, n_boot=20) == stats.summarise_group(without, n_boot=20)


def test_test_retest_tau():
    df = make_study(n_participants=3, n_pages=3, n_repeat=2, seed=2)
    rep = df["is_repeat"]
    first = df[~rep].set_index(["participant_id", "page_id", "model_id"])["rank"]
    copy = df.copy()
    copy.loc[rep, "rank"] = first.loc[
        pd.MultiIndex.from_frame(df.loc[rep, ["participant_id", "page_id", "model_id"]])
    ].to_numpy()
    same = stats.test_retest(copy)
    assert list(same.columns) == ["participant_id", "kendall_tau", "n_pages"]
    assert same["kendall_tau"].tolist() == [1.0, 1.0, 1.0] and same["n_pages"].tolist() == [2, 2, 2]
    copy.loc[rep, "rank"] = 5 - copy.loc[rep, "rank"]
    assert stats.test_retest(copy)["kendall_tau"].tolist() == [-1.0, -1.0, -1.0]
    got = stats.test_retest(df)
    for row in got.itertuples():
        taus = []
        for page in df.loc[rep & (df["participant_id"] == row.participant_id), "page_id"].unique():
            sel = df[(df["participant_id"] == row.participant_id) & (df["page_id"] == page)].sort_values("model_id")
            taus.append(sps.kendalltau(sel[~sel["is_repeat"]]["rank"], sel[sel["is_repeat"]]["rank"]).statistic)
        assert row.kendall_tau == pytest.approx(np.mean(taus))
    assert stats.test_retest(df[~rep]).empty


def test_position_bias_detects_screen_position_preference():
    biased, _ = make_study(n_participants=10, n_pages=8, seed=4, position_effect=1.5), None
    table, test = stats.position_bias(biased)
    assert list(table.columns) == ["initial_position", "mean_rank", "n"]
    assert table["mean_rank"].is_monotonic_increasing and test["p"] < 1e-3
    _, fair = stats.position_bias(make_study(n_participants=10, n_pages=8, seed=5))
    assert fair["p"] > 0.01


def test_culture_comparison_interaction():
    shift = {"b": np.array([1.5, 0.0, 0.0, -1.5])}
    differ = stats.culture_comparison(make_study(n_participants=16, seed=6, culture_shift=shift), n_perm=300, seed=1)
    assert differ["interaction"]["p"] < 0.01
    assert differ["kruskal"].set_index("model_id").loc["m0", "p"] < 0.05
    assert "own prompts" in differ["caveat"]
    same = stats.culture_comparison(make_study(n_participants=16, seed=6), n_perm=300, seed=1)
    assert same["interaction"]["p"] > 0.05
    assert set(same["estimates"]["culture"]) == {"a", "b"}
    assert set(same["kruskal"].columns) >= {"model_id", "statistic", "df", "p", "p_holm"}


def test_in_out_group():
    assert stats.in_out_group(make_study(n_participants=4, n_pages=2)) is None
    cross = make_study(n_participants=4, n_pages=2, cross_culture=True)
    res = stats.in_out_group(cross)
    assert set(res["rater_group"]) == {"in", "out"}
    row = res[(res.page_culture == "a") & (res.model_id == "m1") & (res.rater_group == "out")].iloc[0]
    sel = cross[(cross.page_culture == "a") & (cross.model_id == "m1") & (cross.participant_culture != "a")]
    assert row["mean_rank"] == pytest.approx(sel["rank"].mean()) and row["n_participants"] == 2


def test_paper_views():
    df = make_study(criteria=("c1", "c2"), n_participants=6, n_pages=3, seed=8)
    views = stats.paper_views(df)
    ranks, better = views["ranks"], views["ranked_better"]
    sel = df[(df.criterion == "c2") & (df.page_culture == "b") & (df.model_id == "m2")]["rank"]
    row = ranks[(ranks.criterion == "c2") & (ranks.page_culture == "b") & (ranks.model_id == "m2")].iloc[0]
    assert row["mean_rank"] == pytest.approx(sel.mean()) and row["median_rank"] == sel.median()
    assert row["sem"] == pytest.approx(sel.sem()) and row["n"] == len(sel)
    assert set(ranks["page_culture"]) == {"a", "b", "all"}
    b = better.set_index(["criterion", "page_culture", "a", "b"])["pct_a_better"]
    assert b[("c1", "all", "m0", "m3")] + b[("c1", "all", "m3", "m0")] == pytest.approx(100.0)
    wins = _brute_win_rates(df[df.criterion == "c1"])
    assert b[("c1", "all", "m1", "m2")] == pytest.approx(100 * wins[("m1", "m2")])


def test_summarise_group_is_the_results_group_object(study):
    group = stats.summarise_group(study, n_boot=100, seed=0)
    json.dumps(group, allow_nan=False)
    assert {"n_participants", "n_judgments", "models", "friedman", "pairwise", "agreement"} <= set(group)
    assert group["n_participants"] == 16 and group["n_judgments"] == 16 * 6
    assert set(group["models"]) == {"m0", "m1", "m2", "m3"}
    for m in group["models"].values():
        assert set(m) == {"mean_rank", "mean_rank_ci", "top1_share", "rank_shares", "pl_log_worth", "pl_log_worth_ci"}
        assert m["mean_rank_ci"][0] <= m["mean_rank"] <= m["mean_rank_ci"][1]
        assert m["pl_log_worth_ci"][0] <= m["pl_log_worth"] <= m["pl_log_worth_ci"][1]
        assert len(m["rank_shares"]) == 4 and sum(m["rank_shares"]) == pytest.approx(1.0)
    assert list(group["friedman"]) == ["statistic", "df", "p", "kendall_w", "n_participants", "p_exact"]
    assert len(group["pairwise"]) == 6
    assert {"a", "b", "win_rate_a", "statistic", "p", "p_holm"} <= set(group["pairwise"][0])
    assert -1 <= group["agreement"]["krippendorff_alpha_ordinal"] <= 1
    assert group == stats.summarise_group(study, n_boot=100, seed=0)
    assert (
        group["models"]["m0"]["mean_rank_ci"]
        != stats.summarise_group(study, n_boot=100, seed=1)["models"]["m0"]["mean_rank_ci"]
    )


def test_culture_interaction_statistic_equals_direct_formula():
    shift = {"b": np.array([1.0, 0.0, 0.0, -1.0])}
    df = make_study(n_participants=10, cultures=("a", "b", "c"), seed=12, culture_shift=shift)
    res = stats.culture_comparison(df, n_perm=200, seed=3)
    means = df.groupby(["participant_id", "model_id"])["rank"].mean().unstack()
    centred = means.sub(means.mean(axis=1), axis=0)
    culture = df.groupby("participant_id")["participant_culture"].first().reindex(means.index)
    grand = centred.mean()
    direct = sum(len(g) * float(((g.mean() - grand) ** 2).sum()) for _, g in centred.groupby(culture))
    assert res["interaction"]["statistic"] == pytest.approx(direct)
    assert 1 / 201 <= res["interaction"]["p"] <= 1
    assert res["interaction"]["n_cultures"] == 3 and res["interaction"]["n_participants"] == 10
    again = stats.culture_comparison(df, n_perm=200, seed=3)
    assert again["interaction"] == res["interaction"]


def test_bootstrap_weights_are_participant_resamples():
    w = bootstrap_weights(7, 5000, seed=0)
    assert w.shape == (5000, 7) and np.all(w.sum(axis=1) == 7)
    assert w.mean() == pytest.approx(1.0) and w.var(axis=0).mean() == pytest.approx(6 / 7, rel=0.05)
    np.testing.assert_array_equal(w, bootstrap_weights(7, 5000, seed=0))


def test_holm_matches_statsmodels_and_keeps_nan():
    rng = np.random.default_rng(0)
    for m in (1, 3, 6, 10):
        p = rng.random(m) ** 3
        np.testing.assert_allclose(stats.holm(p), multipletests(p, method="holm")[1], rtol=1e-15)
    with_nan = np.array([0.01, np.nan, 0.04, 0.03])
    got = stats.holm(with_nan)
    assert np.isnan(got[1])
    np.testing.assert_allclose(got[[0, 2, 3]], multipletests([0.01, 0.04, 0.03], method="holm")[1])
