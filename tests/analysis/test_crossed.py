"""Crossed (participants × pages) bootstrap: every vectorised resample equals a brute-force copy of the data."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import headline, stats
from analysis._tables import RankTable, percentile_ci
from analysis.crossed import CrossedWeights, Resampler, alpha_batch, alpha_resamples
from analysis.simulate import make_spec, simulate_responses

N_BOOT, SEED = 25, 7


@pytest.fixture(scope="module")
def study() -> pd.DataFrame:
    spec = make_spec(cultures=("a",), models=("m0", "m1", "m2"), pages=8, pages_per_participant=5)
    return simulate_responses(spec, participants_per_culture=9, worths=[0.0, 0.3, 0.8], page_sd=0.7, seed=11)


def expand(df: pd.DataFrame, wp: np.ndarray, wg: np.ndarray, participants, pages) -> pd.DataFrame:
    """Participant i copied wp[i] times and page g copied wg[g] times; every copy is a new participant / page."""
    parts = []
    for pid, n_p in zip(participants, wp.astype(int), strict=True):
        for gid, n_g in zip(pages, wg.astype(int), strict=True):
            rows = df[(df["participant_id"] == pid) & (df["page_id"] == gid)]
            if len(rows) == 0:
                continue
            for i, j in itertools.product(range(n_p), range(n_g)):
                parts.append(rows.assign(participant_id=f"{pid}#{i}", page_id=f"{gid}#{j}"))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def brute(study):
    """(weights, list of expanded resamples) drawn exactly as the report draws them."""
    participants = sorted(study["participant_id"].unique())
    pages = sorted(study["page_id"].unique())
    w = CrossedWeights.draw(len(participants), len(pages), N_BOOT, SEED)
    copies = [expand(study, w.participant[b], w.page[b], participants, pages) for b in range(N_BOOT)]
    return w, copies


def test_weights_are_seeded_independent_multinomials():
    a = CrossedWeights.draw(30, 50, 400, 3)
    assert (a.participant.sum(axis=1) == 30).all() and (a.page.sum(axis=1) == 50).all()
    b = CrossedWeights.draw(30, 50, 400, 3)
    assert np.array_equal(a.participant, b.participant) and np.array_equal(a.page, b.page)
    assert not np.array_equal(a.page, CrossedWeights.draw(30, 50, 400, 4).page)
    # multinomial(n, 1/n): mean 1, variance 1 − 1/n; page draws do not repeat the participant draws
    assert a.page.mean() == pytest.approx(1.0) and a.page.var() == pytest.approx(1 - 1 / 50, rel=0.1)
    assert abs(np.corrcoef(a.participant[:, 0], a.page[:, 0])[0, 1]) < 0.15
    flat = CrossedWeights.draw(30, 50, 10, 3, pages=False)
    assert (flat.page == 1).all() and np.array_equal(flat.participant, a.participant[:10])


def test_mean_ranks_equal_brute_force(study, brute):
    _, copies = brute
    got = stats.mean_ranks(study, n_boot=N_BOOT, seed=SEED)
    boot = np.array([c.groupby("model_id")["rank"].mean().to_numpy() for c in copies])
    lo, hi = percentile_ci(boot)
    np.testing.assert_allclose(got["ci_lo"], lo, atol=1e-12)
    np.testing.assert_allclose(got["ci_hi"], hi, atol=1e-12)
    np.testing.assert_allclose(got["sem"], boot.std(axis=0, ddof=1), atol=1e-12)
    old = stats.mean_ranks(study, n_boot=N_BOOT, seed=SEED, resample="participants")
    assert not np.allclose(old["ci_lo"], got["ci_lo"])  # pages really are resampled


def test_win_rates_equal_brute_force(study, brute):
    _, copies = brute
    got = stats.win_rates(study, n_boot=N_BOOT, seed=SEED)

    def rates(df):
        wide = df.pivot_table(index=["participant_id", "page_id"], columns="model_id", values="rank")
        return {(a, b): float(np.mean(wide[a] < wide[b])) for a, b in itertools.permutations(wide.columns, 2)}

    boots = [rates(c) for c in copies]
    for row in got.itertuples():
        lo, hi = percentile_ci(np.array([[bt[(row.a, row.b)]] for bt in boots]))
        assert row.ci_lo == pytest.approx(lo[0], abs=1e-12) and row.ci_hi == pytest.approx(hi[0], abs=1e-12)


def test_pl_worths_equal_brute_force(study, brute):
    _, copies = brute
    got = stats.pl_worths(study, n_boot=N_BOOT, seed=SEED)

    def fit(df):
        wide = df.pivot_table(index=["participant_id", "page_id"], columns="model_id", values="rank")
        return stats.plackett_luce(wide.to_numpy())[0]

    lo, hi = percentile_ci(np.array([fit(c) for c in copies]))
    np.testing.assert_allclose(got["ci_lo"], lo, atol=1e-7)
    np.testing.assert_allclose(got["ci_hi"], hi, atol=1e-7)


def distinct_rater_alpha(df: pd.DataFrame) -> float:
    """Ordinal α by loops over pairs of values, pairing only copies that come from different participants."""
    df = df[df["rank"].notna()]
    values = np.sort(df["rank"].unique().astype(np.float64))
    index = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for _, unit in df.groupby(["page_id", "model_id"]):
        raters = [
            (pid.split("#")[0], index[float(r)]) for pid, r in zip(unit["participant_id"], unit["rank"], strict=True)
        ]
        if len(raters) < 2:
            continue
        for (a, va), (b, vb) in itertools.permutations(raters, 2):
            if a != b:
                o[va, vb] += 1.0 / (len(raters) - 1)
    return float(alpha_batch(o[None], values, "ordinal")[0])


def test_alpha_resamples_equal_brute_force(study, brute):
    w, copies = brute
    t = RankTable.from_long(study)
    pages = pd.Index(sorted(study["page_id"].unique()))
    got = alpha_resamples(study, w, t.participants, pages)
    want = [distinct_rater_alpha(c) for c in copies]
    np.testing.assert_allclose(got, want, atol=1e-12)
    # copies of one participant are not paired: the self-agreement they would add is absent
    assert not np.allclose(got, [stats.page_alpha(c, "ordinal") for c in copies])
    ones = CrossedWeights(np.ones((1, t.n_participants)), np.ones((1, len(pages))), 0, True)
    assert alpha_resamples(study, ones, t.participants, pages)[0] == pytest.approx(stats.page_alpha(study), abs=1e-12)


def test_results_group_carries_crossed_intervals_and_headline(study):
    g = stats.summarise_group(study, n_boot=200, seed=1)
    lo, hi = g["agreement"]["krippendorff_alpha_ordinal_ci"]
    assert lo < g["agreement"]["krippendorff_alpha_ordinal"] < hi
    mr = stats.mean_ranks(study, n_boot=200, seed=1).set_index("model_id")
    assert g["models"]["m0"]["mean_rank_ci"] == [mr.at["m0", "ci_lo"], mr.at["m0", "ci_hi"]]
    wr = stats.win_rates(study, n_boot=200, seed=1).set_index(["a", "b"])
    pair = next(p for p in g["pairwise"] if (p["a"], p["b"]) == ("m0", "m1"))
    assert pair["win_rate_ci"] == [wr.at[("m0", "m1"), "ci_lo"], wr.at[("m0", "m1"), "ci_hi"]]
    assert pair["mean_rank_difference"] == pytest.approx(mr.at["m0", "mean_rank"] - mr.at["m1", "mean_rank"])
    h = g["headline"]
    assert (h["df"], h["df_denominator"], h["n_pages"]) == (2, min(9, 8) - 1, 8)


def test_wald_statistic_matches_direct_formula_and_f_reference():
    rng = np.random.default_rng(0)
    boot = rng.multivariate_normal([2.0, 2.5, 1.5], [[0.02, 0.0, -0.01], [0.0, 0.03, 0.0], [-0.01, 0.0, 0.02]], 500)
    point = np.array([2.1, 2.4, 1.5])
    got = headline.omnibus(point, boot, n_participants=20, n_pages=30)
    c = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, -1.0]])
    d = c @ point
    t2 = d @ np.linalg.inv(np.cov(boot @ c.T, rowvar=False)) @ d
    m, q = 19, 2
    assert got["statistic"] == pytest.approx(t2, rel=1e-9)
    assert got["p"] == pytest.approx(sps.f.sf(t2 * (m - q + 1) / (m * q), q, m - q + 1), rel=1e-9)
    # another full-rank set of contrasts gives the same statistic
    h = np.array([[1.0, -1.0, 0.0], [0.5, 0.5, -1.0]])
    d2 = h @ point
    assert d2 @ np.linalg.inv(np.cov(boot @ h.T, rowvar=False)) @ d2 == pytest.approx(t2, rel=1e-9)


def test_two_models_omnibus_equals_pairwise_t():
    rng = np.random.default_rng(1)
    boot = rng.normal([1.4, 1.6], 0.05, size=(800, 2))
    point = np.array([1.42, 1.58])
    om = headline.omnibus(point, boot, 15, 40)
    (pw,) = headline.pairwise(point, boot, 15, 40)
    assert om["p"] == pytest.approx(pw["p"], rel=1e-9)  # F(1, m) = t²(m)
    assert pw["p"] == pytest.approx(2 * sps.t.sf(0.16 / np.std(boot[:, 0] - boot[:, 1], ddof=1), 14), rel=1e-9)


def test_headline_detects_a_real_difference_and_is_one_when_models_tie(study):
    spec = make_spec(cultures=("a",), models=("m0", "m1", "m2"), pages=20, pages_per_participant=10)
    strong = simulate_responses(spec, participants_per_culture=30, worths=[0.0, 0.0, 1.5], page_sd=0.3, seed=2)
    assert stats.summarise_group(strong, n_boot=300)["headline"]["p"] < 1e-3
    t = RankTable.from_long(study)
    r, pages = Resampler.for_table(study, t, 50, 0)
    tied = headline.omnibus(np.full(t.n_models, 2.0), r.mean_ranks(t), t.n_participants, len(pages))
    assert (tied["statistic"], tied["p"]) == (0.0, 1.0)
    assert np.isnan(headline.omnibus(np.array([1.0, 2.0]), np.ones((50, 2)), 10, 10)["p"])  # no variability
    rng = np.random.default_rng(3)
    boot = rng.normal(2.5, 0.1, size=(200, 4))
    few = headline.omnibus(np.array([2.0, 2.5, 2.6, 2.9]), boot, n_participants=3, n_pages=40)
    assert few["df_denominator"] == 2 and np.isnan(few["p"])  # 3 participants cannot carry 3 constraints
    assert np.isfinite(headline.omnibus(np.array([2.0, 2.5, 2.6, 2.9]), boot, 5, 40)["p"])


def test_resample_must_be_known(study):
    with pytest.raises(ValueError, match="resample must be one of"):
        stats.mean_ranks(study, n_boot=5, resample="pages")


def test_float32_fast_path_is_exact_and_falls_back():
    rng = np.random.default_rng(5)
    p, g = rng.integers(0, 40, 900), rng.integers(0, 30, 900)
    w = CrossedWeights.draw(40, 30, 70, 1)
    ints = rng.integers(0, 5, (900, 6)).astype(np.float64)
    want = np.einsum("bj,bj,js->bs", w.participant[:, p], w.page[:, g], ints)
    np.testing.assert_array_equal(w.judgment_sums(p, g, ints), want)  # exact, not just close
    frac = ints + 0.1 * rng.random((900, 6))
    want = np.einsum("bj,bj,js->bs", w.participant[:, p], w.page[:, g], frac)
    np.testing.assert_allclose(w.judgment_sums(p, g, frac), want, rtol=1e-13)
    big = ints * 1e6  # partial sums beyond 2**24: float64
    want = np.einsum("bj,bj,js->bs", w.participant[:, p], w.page[:, g], big)
    np.testing.assert_array_equal(w.judgment_sums(p, g, big), want)
