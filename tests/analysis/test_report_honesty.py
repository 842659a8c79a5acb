"""What the report claims must follow from the data: measured balance, small groups, ties, empty cultures, design
mismatches, partial rankings. Each test builds a study where the honest answer is known and reads the report text."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from analysis import render, report, stats
from analysis._inference import friedman_exact_p
from analysis.design_check import design_warnings
from analysis.load import apply_exclusions, attach_design
from analysis.simulate import simulate_responses, write_responses
from study_designs.schema import load_design

DESIGN = """
id = "duo"
title = "Two cultures, three generators"
seed = 1

[[cultures]]
id = "korea"
label = "Korea"
adjective = "Korean"

[[cultures]]
id = "nigeria"
label = "Nigeria"
adjective = "Nigerian"

[[models]]
id = "sd"
label = "Stable Diffusion"
base = "base"
variant = "base"

[[models]]
id = "scoft_m"
label = "SCoFT+M"
base = "base"
lora = "runs/{culture}/m"
variant = "m"

[[models]]
id = "scoft_mpc"
label = "SCoFT+MPC"
base = "base"
lora = "runs/{culture}/mpc"
variant = "mpc"

[[criteria]]
id = "offensiveness"
question = "How offensive do you personally find each image?"
best_label = "Least offensive"
worst_label = "Most offensive"

[[prompts]]
id = "korea-street"
culture = "korea"
text = "Photo of a city street, in Korea"
seeds = [1, 2, 3, 4, 5, 6]

[[prompts]]
id = "nigeria-street"
culture = "nigeria"
text = "Photo of a street, in Nigeria"
seeds = [11, 12, 13, 14, 15, 16]

[assignment]
pages_per_participant = 6
target_rankings_per_page = 10

[quality]
attention_checks = 0
repeat_pages = 0

[recruitment]
completion_code = "DONE"

[consent]
text = "Test."
content_warning = "Test."
"""
B = 30


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    path = tmp_path_factory.mktemp("design") / "duo.toml"
    path.write_text(DESIGN, encoding="utf-8")
    return load_design(path)


def analyse(df: pd.DataFrame, design, **kw):
    rows, info = apply_exclusions(attach_design(df, design))
    return report.analyse(rows, info, design=design, n_boot=B, progress=False, **kw)


def texts(a) -> tuple[str, str]:
    return render.render_html(a), render.render_markdown(a)


def test_position_identical_to_model_is_reported_not_balanced(design):
    df = simulate_responses(design, participants_per_culture=20, worths={"scoft_mpc": 0.5}, seed=2)
    fine = analyse(df, design)
    conf = df.copy()
    conf["initial_position"] = conf["model_id"].map({"sd": 0, "scoft_m": 1, "scoft_mpc": 2}).astype(np.int16)
    bad = analyse(conf, design)
    assert fine.results["position_balance"]["all"]["verdict"] == "balanced"
    b = bad.results["position_balance"]["all"]
    assert b["verdict"] == "NOT balanced" and b["cramers_v"] == pytest.approx(1.0) and b["p"] < 1e-10
    for page in texts(bad):
        assert "positions are NOT balanced" in page
        assert "cannot masquerade" not in page  # the design asked for a Latin square; the data say otherwise
        assert "The design asked for a Latin square" in page
        assert "models and positions are confounded" in page  # no position-adjusted fit
    for page in texts(fine):
        assert "positions are balanced, so position effects cannot masquerade" in page
    g = bad.results["criteria"]["offensiveness"]["groups"]["all"]
    assert g["pl_position_adjusted"]["log_worth"] == {} and "confounded" in g["pl_position_adjusted"]["reason"]


def test_small_groups_show_no_interval_and_say_why(design):
    df = simulate_responses(design, participants_per_culture={"korea": 25, "nigeria": 4}, seed=3)
    a = analyse(df, design)
    groups = a.results["criteria"]["offensiveness"]["groups"]
    assert "intervals" not in groups["korea"]["reasons"]
    assert "fewer than the minimum group size 15" in groups["nigeria"]["reasons"]["intervals"]
    # exact Friedman p where the group is small, equal to the enumeration over participants' mean ranks
    rows, _ = apply_exclusions(attach_design(df, design))

    nig = rows[rows["page_culture"].astype(str) == "nigeria"]
    assert groups["nigeria"]["friedman"]["p_exact"] == pytest.approx(
        friedman_exact_p(stats.participant_mean_ranks(nig).to_numpy())
    )
    assert groups["korea"]["friedman"]["p_exact"] is None
    html, md = texts(a)
    for page in (html, md):
        assert "not shown" in page and "under-cover" in page
        assert "fewer than 15 participants" in page  # the caveat says why
    lo, hi = groups["nigeria"]["models"]["sd"]["mean_rank_ci"]
    assert f"[{lo:.2f}, {hi:.2f}]" not in md.split("### Nigeria")[1].split("###")[0]


def test_one_participant_gets_no_test_and_no_zero_width_interval(design):
    df = simulate_responses(design, participants_per_culture={"korea": 1, "nigeria": 0}, seed=4)
    a = analyse(df, design)
    g = a.results["criteria"]["offensiveness"]["groups"]["all"]
    assert g["friedman"]["p"] is None and "needs at least 2" in g["reasons"]["friedman"]
    line = render.render_markdown(a)
    assert "No test computed" in line
    assert "no difference" not in line.lower()
    assert "best: Stable Diffusion" not in line and "best: SCoFT" not in line


def test_all_models_tied_names_no_best(design):
    """Each participant gives every model each rank once over three pages: all mean ranks 2.00, p = 1."""
    df = simulate_responses(design, participants_per_culture={"korea": 16, "nigeria": 0}, seed=5)
    df = df.sort_values(["participant_id", "page_id", "model_id"]).reset_index(drop=True)
    page_no = df.groupby("participant_id", observed=True)["page_id"].transform(lambda s: pd.factorize(s)[0])
    model_no = df["model_id"].map({"sd": 0, "scoft_m": 1, "scoft_mpc": 2})
    df["rank"] = ((model_no + page_no) % 3 + 1).astype(np.int16)
    a = analyse(df, design)
    g = a.results["criteria"]["offensiveness"]["groups"]["all"]
    assert {m["mean_rank"] for m in g["models"].values()} == {2.0}
    assert g["friedman"]["p"] == 1.0
    best, _ = report.best_model(a, "offensiveness")
    assert best is None
    html, md = texts(a)
    assert "no model is named best" in md and "none separated" in md
    assert '<tr class="best">' not in html


def test_a_clear_winner_is_named_with_its_evidence(design):
    df = simulate_responses(design, participants_per_culture=20, worths={"sd": -1.0, "scoft_mpc": 1.0}, seed=6)
    a = analyse(df, design)
    best, why = report.best_model(a, "offensiveness")
    assert best == "scoft_mpc" and "runner-up SCoFT+M" in why
    assert "best: SCoFT+MPC" in report.headline(a, "offensiveness")


def test_every_design_culture_is_listed_even_with_no_participants(design):
    df = simulate_responses(design, participants_per_culture={"korea": 16, "nigeria": 0}, seed=7)
    assert design_warnings(df, design) == [
        "design 'duo': culture nigeria never appear(s) in the responses (listed with 0 participants)"
    ]
    a = analyse(df, design, warnings=design_warnings(df, design))
    g = a.results["criteria"]["offensiveness"]["groups"]["nigeria"]
    assert g["n_participants"] == 0 and g["models"] == {} and "no participants" in g["reasons"]["group"]
    html, md = texts(a)
    assert "Nigeria: 0 participants" in html and "### Nigeria (0 participants)" in md
    assert "culture nigeria never appear(s)" in md and a.results["warnings"]


def test_wrong_design_is_warned_about(design, tmp_path, capsys):
    df = simulate_responses(design, participants_per_culture=3, seed=8)
    df["prompt_id"] = df["prompt_id"].astype(str).str.replace("street", "market")
    df.loc[df["participant_id"] == df["participant_id"].iloc[0], "participant_culture"] = "ghana"
    df["seed"] = df["seed"] + 100
    warnings = design_warnings(df, design)
    assert any("prompt_id korea-market, nigeria-market not in design 'duo'" in w for w in warnings)
    assert any("participant_culture ghana not in design" in w for w in warnings)
    csv = write_responses(df, tmp_path / "r.csv")
    path = tmp_path / "duo.toml"
    path.write_text(DESIGN, encoding="utf-8")
    out = tmp_path / "out"
    with contextlib.redirect_stdout(io.StringIO()):
        code = report.main(["--responses", str(csv), "--design", str(path), "--out", str(out), "--bootstrap", "5"])
    assert code == 0
    assert "warning: prompt_id korea-market" in capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert any("another design" in w for w in res["warnings"])
    assert "another design" in (out / "report.html").read_text(encoding="utf-8")
    for name in ("pl_forest", "rank_distribution", "position_bias"):
        for ext in ("png", "svg", "pdf"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 0
    assert (out / "figures" / "pl_forest.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    assert (out / "figures" / "pl_forest.pdf").read_bytes()[:5] == b"%PDF-"
    from PIL import Image

    with Image.open(out / "figures" / "pl_forest.png") as im:
        assert round(im.info["dpi"][0]) == 300


def test_partial_rankings_are_counted_in_a_warning(design):
    df = simulate_responses(design, participants_per_culture=16, seed=9)
    keys = ["participant_id", "page_id", "criterion"]
    pages = sorted(df["page_id"].astype(str).unique())[::2]
    drop = df["page_id"].astype(str).isin(pages) & (df["model_id"] == "scoft_m")
    part = df[~drop].copy()
    hit = part["page_id"].astype(str).isin(pages)
    part.loc[hit, "rank"] = part[hit].groupby(keys)["rank"].rank(method="first").astype(np.int16)
    part.loc[hit, "initial_position"] = part[hit].groupby(keys)["initial_position"].rank(method="first") - 1
    part.loc[hit, "n_items"] = 2
    n_partial = int(part[hit].groupby(keys).ngroups)
    a = analyse(part, design)
    g = a.results["criteria"]["offensiveness"]["groups"]["all"]
    assert g["n_partial_judgments"] == n_partial
    assert any(f"{n_partial:,} of {g['n_judgments']:,} rankings" in w for w in a.results["warnings"])
    assert "rebuilt from pairwise comparisons" in render.render_markdown(a)


def test_minimum_group_size_is_configurable(design, tmp_path, capsys):
    df = simulate_responses(design, participants_per_culture={"korea": 16, "nigeria": 0}, seed=11)
    groups = analyse(df, design, min_group_size=20).results["criteria"]["offensiveness"]["groups"]
    assert "minimum group size 20" in groups["korea"]["reasons"]["intervals"]
    assert (
        "intervals"
        not in analyse(df, design, min_group_size=5).results["criteria"]["offensiveness"]["groups"]["korea"]["reasons"]
    )
    csv = write_responses(df, tmp_path / "r.csv")
    assert report.main(["--responses", str(csv), "--out", str(tmp_path / "o"), "--min-group-size", "0"]) == 2
    assert "--min-group-size must be >= 1" in capsys.readouterr().err


def test_a_missing_plackett_luce_estimate_says_why(design):
    """A model ranked last in every judgment has worth −∞: no MLE, and the report names the model."""
    df = simulate_responses(design, participants_per_culture={"korea": 16, "nigeria": 0}, seed=12)
    keys = ["participant_id", "page_id", "criterion", "is_repeat", "is_attention_check"]
    last = df["model_id"] == "sd"
    others = df[~last].copy()
    df.loc[~last, "rank"] = others.groupby(keys, observed=True)["rank"].rank(method="first").astype(np.int16)
    df.loc[last, "rank"] = 3
    a = analyse(df, design)
    g = a.results["criteria"]["offensiveness"]["groups"]["all"]
    assert all(m["pl_log_worth"] is None for m in g["models"].values())
    assert g["reasons"]["pl_log_worth"] == "Plackett–Luce MLE does not exist: sd never ranked above another model"
    assert g["pl_position_adjusted"]["reason"] == g["reasons"]["pl_log_worth"]
    assert "Plackett–Luce: Plackett–Luce MLE does not exist: sd never ranked above another model." in (
        render.render_markdown(a)
    )
