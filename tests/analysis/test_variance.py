"""Variance components from a pilot: method of moments against REML (statsmodels), recovery of simulated SDs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import power
from analysis.simulate import make_spec, simulate_responses, write_responses
from analysis.variance import log_worth_sds, rank_components
from study_designs.schema import load_design


def crossed_linear(n_p: int, n_g: int, per: int, sds: tuple[float, float, float], seed: int) -> pd.DataFrame:
    """y = a_participant + b_page + e, each participant seeing ``per`` of the pages, written as a one-model table."""
    rng = np.random.default_rng(seed)
    a, b = sds[0] * rng.normal(size=n_p), sds[1] * rng.normal(size=n_g)
    pages = (np.arange(n_p)[:, None] * per + np.arange(per)[None, :]) % n_g
    p = np.repeat(np.arange(n_p), per)
    g = pages.ravel()
    y = 3.0 + a[p] + b[g] + sds[2] * rng.normal(size=len(p))
    return pd.DataFrame(
        {"participant_id": [f"p{i}" for i in p], "page_id": [f"g{j}" for j in g], "model_id": "m", "rank": y}
    )


def test_moments_agree_with_reml_on_a_linear_crossed_model():
    import statsmodels.formula.api as smf

    df = crossed_linear(40, 30, 12, (1.0, 0.7, 0.5), seed=0)
    got = rank_components(df)
    fit = smf.mixedlm(
        "rank ~ 1",
        df.assign(one=1),
        groups="one",
        re_formula="0",
        vc_formula={"p": "0 + C(participant_id)", "g": "0 + C(page_id)"},
    ).fit(reml=True)
    vc = dict(zip(fit.model.exog_vc.names, fit.vcomp, strict=True))
    assert got.participant == pytest.approx(vc["p"], rel=0.25)
    assert got.page == pytest.approx(vc["g"], rel=0.25)
    assert got.residual == pytest.approx(fit.scale, rel=0.15)
    assert (got.n_participants, got.n_pages, got.n_judgments) == (40, 30, 480)


def test_moments_recover_known_components():
    df = crossed_linear(300, 120, 20, (0.8, 0.5, 1.0), seed=1)
    got = rank_components(df)
    assert got.participant == pytest.approx(0.64, rel=0.2)
    assert got.page == pytest.approx(0.25, rel=0.25)
    assert got.residual == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize(("participant_sd", "page_sd"), [(0.6, 0.8), (0.6, 0.0)])
def test_pilot_log_worth_sds_recovered(participant_sd, page_sd):
    spec = make_spec(cultures=("c",), models=("a", "b", "c", "d"), pages=50, pages_per_participant=20)
    pilot = simulate_responses(spec, participants_per_culture=54, heterogeneity=participant_sd, page_sd=page_sd, seed=5)
    h, s = log_worth_sds(rank_components(pilot), 4)
    assert h == pytest.approx(participant_sd, abs=0.2)
    assert s == pytest.approx(page_sd, abs=0.25)


def test_rank_components_needs_one_criterion():
    spec = make_spec(cultures=("c",), models=("a", "b"), criteria=("x", "y"), pages=6, pages_per_participant=3)
    with pytest.raises(ValueError, match="one criterion"):
        rank_components(simulate_responses(spec, participants_per_culture=4, seed=0))


def test_cli_pilot_estimates_and_uses_both_sds(tmp_path, capsys):
    design = load_design("study_designs/demo.toml")
    pilot = simulate_responses(design, participants_per_culture=12, heterogeneity=0.5, page_sd=0.9, seed=2)
    path = write_responses(pilot, tmp_path / "pilot.csv")
    code = power.main(
        ["--design", "study_designs/demo.toml", "--worth-difference", "2.0", "--pilot", str(path), "--sims", "4"]
        + ["--max-participants", "6", "--test", "crossed"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    line = next(x for x in out.splitlines() if x.startswith("pilot "))
    assert "rank variance participant" in line and "page × model" in line
    page_sd = float(line.rsplit("page × model ", 1)[1])
    assert page_sd > 0.3  # page variance found and carried into the simulation
    assert f"page × model sd {page_sd:.3g}" in out
    assert "crossed" in out


def test_page_variance_lowers_power():
    spec = make_spec(cultures=("c",), models=("a", "b", "c"), pages=30, pages_per_participant=10)
    kw = dict(worth_difference=0.6, participants=[24], n_sim=24, seed=1, test="crossed", both=False, progress=False)
    flat = power.power_curve(spec, **kw)["power"].iloc[0]
    noisy = power.power_curve(spec, page_sd=1.0, **kw)["power"].iloc[0]
    assert noisy < flat
