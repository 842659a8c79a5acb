"""Effect sizes, the exact Friedman p, measured balance and position-adjusted Plackett–Luce against outside
references (scipy, statsmodels' conditional logit, brute-force enumeration)."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import figures as figs
from analysis._inference import friedman_exact_p
from analysis.balance import _arrays, _nll_grad, position_adjusted_pl, position_balance
from analysis.effects import matched_rank_biserial, pairwise_rank_biserial
from analysis.simulate import simulate_responses
from study_designs.schema import load_design


def test_rank_biserial_matches_a_hand_computation_and_scipy():
    d = np.array([-1.5, -0.5, 0.25, -2.0, 1.0, -0.75, 0.0, -3.0])
    # by hand: drop the zero; |d| ranks: 0.25→1, 0.5→2, 0.75→3, 1.0→4, 1.5→5, 2.0→6, 3.0→7
    t_plus, t_minus = 1 + 4, 5 + 2 + 6 + 3 + 7
    assert matched_rank_biserial(d) == pytest.approx((t_plus - t_minus) / (t_plus + t_minus))
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.normal(0.3, 1, 25)
        w = sps.wilcoxon(x, alternative="greater")  # statistic = T+ (no zeros, no ties)
        n = len(x)
        assert matched_rank_biserial(x) == pytest.approx(2 * w.statistic / (n * (n + 1) / 2) - 1)
    assert np.isnan(matched_rank_biserial(np.zeros(4)))


def test_pairwise_rank_biserial_is_positive_when_a_is_ranked_better():
    means = np.array([[1.2, 2.0, 2.8], [1.0, 2.5, 2.5], [1.5, 1.8, 2.7], [1.1, 2.2, 2.7]])
    rb = pairwise_rank_biserial(means, ["a", "b", "c"])
    assert list(rb) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert rb[("a", "b")] == 1.0 and rb[("a", "c")] == 1.0


def test_exact_friedman_matches_brute_force_enumeration():
    rng = np.random.default_rng(1)
    for n, k in [(3, 3), (4, 3), (3, 4), (5, 2)]:
        x = rng.integers(0, 3, (n, k)).astype(float)  # ties included
        r = sps.rankdata(x, axis=1)
        observed = np.sum(r.sum(axis=0) ** 2)
        perms = [np.unique(np.array(list(itertools.permutations(row))), axis=0) for row in r]
        p = 0.0
        for combo in itertools.product(*[range(len(q)) for q in perms]):
            s = sum(perms[i][c] for i, c in enumerate(combo))
            p += np.prod([1 / len(q) for q in perms]) * (np.sum(s**2) >= observed * (1 - 1e-12))
        assert friedman_exact_p(x) == pytest.approx(p)


@pytest.fixture(scope="module")
def design():
    return load_design("study_designs/scoft-cvpr2024.toml")


def test_balance_is_measured(design):
    df = simulate_responses(design, participants_per_culture={"china": 12}, seed=1)
    df = df[~df["is_attention_check"] & ~df["is_repeat"]]
    assert position_balance(df)["verdict"] == "balanced"
    conf = df.assign(initial_position=df["model_id"].map({m.id: i for i, m in enumerate(design.models)}))
    b = position_balance(conf)
    assert b["verdict"] == "NOT balanced" and b["cramers_v"] == pytest.approx(1.0)
    table = pd.crosstab(conf["model_id"], conf["initial_position"]) // 4  # one count per image (4 criteria)
    assert b["chi2"] == pytest.approx(sps.chi2_contingency(table.to_numpy(), correction=False).statistic)
    few = conf[conf["participant_id"] == conf["participant_id"].iloc[0]]
    few = few[few["page_id"] == few["page_id"].iloc[0]]
    assert position_balance(few)["verdict"] == "not confirmed"


def test_position_adjusted_pl_equals_a_conditional_logit_fit(design):
    """Plackett–Luce is the exploded (rank-ordered) logit: one conditional-logit choice per ranking stage."""
    from statsmodels.discrete.conditional_models import ConditionalLogit

    df = simulate_responses(
        design, participants_per_culture={"china": 8}, worths={"sd": -0.5, "scoft_mpc": 0.5}, position_bias=0.4, seed=2
    )
    df = df[(df["criterion"] == "offensiveness") & ~df["is_attention_check"] & ~df["is_repeat"]]
    ours = position_adjusted_pl(df)
    assert ours["reason"] is None
    models = sorted(ours["log_worth"])
    rows, stage = [], 0
    for _, j in df.groupby(["participant_id", "page_id"], observed=True):
        j = j.sort_values("rank")
        for s in range(len(j) - 1):
            for i, r in enumerate(j.iloc[s:].itertuples(index=False)):
                x = [float(r.model_id == m) for m in models[1:]] + [float(r.initial_position == q) for q in (1, 2, 3)]
                rows.append([stage, float(i == 0), *x])
            stage += 1
    data = np.array(rows)
    fit = ConditionalLogit(data[:, 1], data[:, 2:], groups=data[:, 0]).fit(disp=False)
    theta = np.concatenate([[0.0], fit.params[: len(models) - 1]])
    gamma = np.concatenate([[0.0], fit.params[len(models) - 1 :]])
    # the same likelihood: ours, evaluated at statsmodels' estimate, is statsmodels' log-likelihood; and our optimum
    # is at least as good (statsmodels stops at a looser gradient tolerance)
    ms, ps, present, weight, _, _ = _arrays(df)
    free = np.concatenate([(theta - theta[-1])[:-1], (gamma - gamma[-1])[:-1]])
    assert _nll_grad(free, ms, ps, present, weight, 4, 4)[0] == pytest.approx(-fit.llf, rel=1e-12)
    mine = np.array([ours["log_worth"][m] for m in models])
    pos = np.array(list(ours["position_log_worth"].values()))
    best = np.concatenate([(mine - mine[-1])[:-1], (pos - pos[-1])[:-1]])
    assert _nll_grad(best, ms, ps, present, weight, 4, 4)[0] <= -fit.llf + 1e-9
    assert mine == pytest.approx(theta - theta.mean(), abs=1e-3)
    assert pos == pytest.approx(gamma - gamma.mean(), abs=1e-3)
    # standard errors of the centred log-worths from statsmodels' covariance of the reference-coded coefficients
    k = len(models)
    expand = np.vstack([np.zeros(k - 1), np.eye(k - 1)])
    lin = (np.eye(k) - 1 / k) @ expand
    se = np.sqrt(np.diag(lin @ fit.cov_params()[: k - 1, : k - 1] @ lin.T))
    assert [ours["se"][m] for m in models] == pytest.approx(se, rel=1e-2)
    assert pos[0] > pos[1] > pos[2] > pos[3]  # the simulated position bias: earlier positions are preferred


def test_paper_figures_have_mean_markers_and_position_intervals(tmp_path):
    pos = pd.DataFrame(
        [
            {"criterion": c, "initial_position": p, "mean_rank": 2 + 0.1 * p, "ci_lo": 1.9 + 0.1 * p, "ci_hi": 2.1 + p}
            for c in ("a", "b")
            for p in range(3)
        ]
    )
    fig = figs.position_bias_figure(pos, n_items=3)
    ax = fig.axes[0]
    assert len(ax.containers) == 2 and all(c.has_yerr for c in ax.containers)
    rng = np.random.default_rng(0)
    dist = pd.DataFrame(
        [
            {
                "criterion": "a",
                "culture": cu,
                "participant_id": f"{cu}{p}",
                "model_id": m,
                "mean_rank": rng.uniform(1, 3),
            }
            for cu in ("x", "y")
            for p in range(9)
            for m in ("m1", "m2")
        ]
    )
    fig = figs.rank_distribution_figure(dist, models=["m1", "m2"], cultures=["x", "y"])
    means = [line for line in fig.axes[0].get_lines() if line.get_marker() == "D"]
    assert len(means) == 2
    sub = dist[(dist["culture"] == "x")].groupby("model_id")["mean_rank"].mean()
    assert list(means[0].get_ydata()) == pytest.approx(list(sub[["m1", "m2"]]))
    assert "x (n = 9)" in [t.get_text() for t in fig.legends[0].get_texts()]
    paths = figs.save_for_paper(fig, tmp_path / "one" / "dist")
    assert [p.suffix for p in paths] == [".png", ".svg", ".pdf"]
    again = figs.save_for_paper(fig, tmp_path / "two" / "dist")
    assert paths[0].read_bytes() == again[0].read_bytes()
    assert paths[2].read_bytes() == again[2].read_bytes()  # no creation date in the PDF
    clip = re.compile(rb"p[0-9a-f]{10}")  # matplotlib names clip paths after object ids
    assert clip.sub(b"", paths[1].read_bytes()) == clip.sub(b"", again[1].read_bytes())
