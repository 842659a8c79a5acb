"""Every published / cross-implementation case in stats-cases.json, reproduced through the project's own functions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import stats
from analysis._inference import friedman_exact_p, kruskal_groups, pairwise_wilcoxon_matrix

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared" / "reference" / "stats-cases.json"
LOCAL = HERE / "data" / "stats-cases.json"

HANDLED = {
    "friedman_roundingtimes",
    "friedman_pulse_sprent_smeeton",
    "demsar2006_wilcoxon_zsplit",
    "wilcoxon_scipy_darwin_corn",
    "wilcoxon_R_depression_paired",
    "pairwise_wilcoxon_holm_roundingtimes_R",
    "kruskal_wallis_R_mucociliary",
    "kendall_w_nag_g08daf_ties",
    "krippendorff_alpha_wikipedia_example",
    "bradley_terry_journal_citations",
    "bootstrap_se_mouse_and_cluster_bootstrap",
}


@pytest.fixture(scope="module")
def cases() -> dict[str, dict]:
    path = SHARED if SHARED.exists() else LOCAL
    return {c["name"]: c for c in json.loads(path.read_text(encoding="utf-8"))}


def close(got: float, want: float, tol: float) -> None:
    assert abs(got - want) <= tol, f"got {got!r}, want {want!r} ± {tol}"


def test_every_case_is_checked(cases):
    assert set(cases) == HANDLED, "a case was added to or removed from stats-cases.json; give it a test here"


def test_local_copy_matches_shared():
    if not SHARED.exists():
        pytest.skip("shared reference folder not present (fresh clone)")
    assert json.loads(LOCAL.read_text()) == json.loads(SHARED.read_text())


def test_friedman_roundingtimes(cases):
    c = cases["friedman_roundingtimes"]
    res = stats.friedman_matrix(np.array(c["data"]["values"]))
    e, tol = c["expected"], c["tolerance"]
    close(res["statistic"], e["chi2"], tol["chi2"])
    assert res["df"] == e["df"]
    close(res["p"], e["p"], tol["p"])
    close(res["kendall_w"], e["kendall_W_derived"], tol["kendall_W_derived"])


def test_friedman_pulse_asymptotic_and_exact(cases):
    c = cases["friedman_pulse_sprent_smeeton"]
    values = np.array(c["data"]["values"])
    res = stats.friedman_matrix(values)
    e, tol = c["expected"], c["tolerance"]
    close(res["statistic"], e["chi2"], tol["chi2"])
    close(res["p"], e["p_asymptotic"], tol["p_asymptotic"])
    close(friedman_exact_p(values), e["p_exact"], tol["p_exact"])


def test_demsar_wilcoxon_zsplit(cases):
    c = cases["demsar2006_wilcoxon_zsplit"]
    m = np.column_stack([c["data"]["C4.5+m"], c["data"]["C4.5"]])
    e = c["expected"]
    two = pairwise_wilcoxon_matrix(m, decimals=3, zero_method="zsplit").iloc[0]
    assert two["statistic"] == e["T"]
    plus = pairwise_wilcoxon_matrix(m, decimals=3, zero_method="zsplit", alternative="greater").iloc[0]
    assert plus["statistic"] == e["R_plus"]
    minus = pairwise_wilcoxon_matrix(m[:, ::-1], decimals=3, zero_method="zsplit", alternative="greater").iloc[0]
    assert minus["statistic"] == e["R_minus"]
    assert e["T"] <= e["critical_T_N14_alpha0.05"]  # the published decision: reject H0


def test_wilcoxon_darwin(cases):
    c = cases["wilcoxon_scipy_darwin_corn"]
    d = np.array(c["data"]["d"], dtype=float)
    m = np.column_stack([d, np.zeros_like(d)])
    tol = c["tolerance"]
    for alternative, e in c["expected"].items():
        row = pairwise_wilcoxon_matrix(m, alternative=alternative.replace("_", "-")).iloc[0]
        close(row["statistic"], e["statistic"], tol["statistic"])
        close(row["p"], e["p"], tol["p"])


def test_wilcoxon_depression_paired(cases):
    c = cases["wilcoxon_R_depression_paired"]
    m = np.column_stack([c["data"]["x_first"], c["data"]["y_second"]])
    row = pairwise_wilcoxon_matrix(m, alternative="greater").iloc[0]
    close(row["statistic"], c["expected"]["V"], c["tolerance"]["V"])
    close(row["p"], c["expected"]["p_greater"], c["tolerance"]["p_greater"])


def test_pairwise_wilcoxon_holm_matches_r(cases):
    c = cases["pairwise_wilcoxon_holm_roundingtimes_R"]
    values = np.array(cases["friedman_roundingtimes"]["data"]["values"])
    labels = ["RoundOut", "NarrowAngle", "WideAngle"]
    tol = c["tolerance"]["holm_p"]
    for decimals, key in ((None, "holm_p"), (2, "holm_p_if_true_ties_kept")):
        res = pairwise_wilcoxon_matrix(values, labels, decimals=decimals, method="approx", correction=True)
        got = {f"{r.a}-{r.b}": r.p_holm for r in res.itertuples()}
        want = c["expected"][key]
        assert set(got) == set(want)
        for pair, p in want.items():
            close(got[pair], p, tol if key == "holm_p" else 1e-8)


def test_kruskal_wallis(cases):
    c = cases["kruskal_wallis_R_mucociliary"]
    res = kruskal_groups(c["data"]["groups"])
    close(res["statistic"], c["expected"]["H"], c["tolerance"]["H"])
    assert res["df"] == c["expected"]["df"]
    close(res["p"], c["expected"]["p"], c["tolerance"]["p"])


def test_kendall_w_with_ties(cases):
    c = cases["kendall_w_nag_g08daf_ties"]
    res = stats.friedman_matrix(np.array(c["data"]["values"]))
    close(res["kendall_w"], c["expected"]["W"], c["tolerance"]["W"])
    close(res["p"], c["expected"]["p"], c["tolerance"]["p"])
    assert abs(res["kendall_w"] - c["expected"]["W_without_tie_correction_for_reference"]) > 0.02


def test_krippendorff_wikipedia(cases):
    c = cases["krippendorff_alpha_wikipedia_example"]
    data = np.array([[np.nan if v is None else v for v in row] for row in c["data"]["values"]], dtype=float)
    tol = c["tolerance"]["alpha"]
    close(stats.krippendorff_alpha(data, "nominal"), c["expected"]["alpha_nominal"], tol)
    close(stats.krippendorff_alpha(data, "interval"), c["expected"]["alpha_interval"], tol)


def test_bradley_terry_citations(cases):
    c = cases["bradley_terry_journal_citations"]
    items = c["data"]["items"]
    wins = np.array(c["data"]["cited_by_matrix"], dtype=float)
    k = len(items)
    rankings, weights = [], []
    for i in range(k):
        for j in range(k):
            if i != j:
                r = np.full(k, np.nan)
                r[i], r[j] = 1, 2
                rankings.append(r)
                weights.append(wins[i, j])
    theta, se = stats.plackett_luce(np.array(rankings), weights=np.array(weights))
    lam = theta - theta[items.index("Biometrika")]
    for name, want in c["expected"]["lambda"].items():
        close(lam[items.index(name)], want, c["tolerance"]["lambda"])
    assert np.all(se > 0)
    deviance = 0.0
    for i in range(k):
        for j in range(i + 1, k):
            n = wins[i, j] + wins[j, i]
            p = 1 / (1 + math.exp(theta[j] - theta[i]))
            for w, q in ((wins[i, j], p), (wins[j, i], 1 - p)):
                if w > 0:
                    deviance += 2 * w * math.log(w / (n * q))
    close(deviance, c["expected"]["residual_deviance"], c["tolerance"]["residual_deviance"])


def test_cluster_bootstrap_se(cases):
    c = cases["bootstrap_se_mouse_and_cluster_bootstrap"]
    x = np.array(c["data"]["mouse_treatment"], dtype=float)
    e, tol = c["expected"], c["tolerance"]
    close(math.sqrt(np.sum((x - x.mean()) ** 2) / len(x) ** 2), e["ideal_bootstrap_se"], tol["ideal_bootstrap_se"])
    offsets = np.array([-3, -1, 1, 3], dtype=float)
    long = pd.DataFrame(
        {
            "participant_id": np.repeat([f"g{g}" for g in range(len(x))], 4),
            "page_id": [f"obs{i}" for i in range(4 * len(x))],
            "model_id": "treatment",
            "rank": (x[:, None] + offsets[None, :]).ravel(),
        }
    )
    clustered = stats.mean_ranks(long, n_boot=40_000, seed=1, resample="participants")
    close(clustered["sem"].iloc[0], e["ideal_bootstrap_se"], tol["cluster_bootstrap_B40000"])
    naive = stats.mean_ranks(
        long.assign(participant_id=long["page_id"]), n_boot=40_000, seed=1, resample="participants"
    )
    close(naive["sem"].iloc[0], e["naive_observation_level_bootstrap_se_approx"], 0.5)
