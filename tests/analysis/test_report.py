"""The report CLI end to end on a simulated study: every file, the results.json schema, a self-contained page."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from analysis import report
from analysis.load import apply_exclusions, attach_design, read_responses
from analysis.simulate import simulate_responses, write_responses
from study_designs.schema import load_design

ROOT = Path(__file__).resolve().parents[2]

DESIGN_TOML = """
id = "mini"
title = "Mini study: three generators, two cultures"
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
id = "cultural_relevance"
question = "How well does each image represent {adjective} culture?"
best_label = "Most representative"
worst_label = "Least representative"

[[criteria]]
id = "offensiveness"
question = "How offensive do you personally find each image?"
best_label = "Least offensive"
worst_label = "Most offensive"

[[prompts]]
id = "korea-street"
culture = "korea"
text = "Photo of a city street, in Korea"
seeds = [1, 2, 3, 4, 5]

[[prompts]]
id = "korea-food"
culture = "korea"
text = "A table of food in Korea"
seeds = [6, 7, 8, 9, 10]

[[prompts]]
id = "nigeria-family"
culture = "nigeria"
text = "Family is eating together, in Nigeria"
seeds = [11, 12, 13, 14, 15]

[[prompts]]
id = "nigeria-street"
culture = "nigeria"
text = "Photo of a street, in Nigeria"
seeds = [16, 17, 18, 19, 20]

[assignment]
pages_per_participant = 6
target_rankings_per_page = 10

[quality]
attention_checks = 2
repeat_pages = 1
exclude_after_failed_checks = 2

[recruitment]
completion_code = "DONE"

[consent]
text = "Test."
content_warning = "Test."
"""

WORTHS = {"korea": {"sd": -0.6, "scoft_mpc": 0.5}, "nigeria": {"sd": -0.3, "scoft_m": 0.2, "scoft_mpc": 0.4}}
B = 40


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    design_path = folder / "mini.toml"
    design_path.write_text(DESIGN_TOML, encoding="utf-8")
    design = load_design(design_path)
    df = simulate_responses(design, participants_per_culture=22, worths=WORTHS, attention_failure_rate=0.15, seed=5)
    csv = write_responses(df, folder / "responses.csv")
    return design_path, design, df, csv


@pytest.fixture(scope="module")
def outputs(study, tmp_path_factory):
    design_path, _, _, csv = study
    out = tmp_path_factory.mktemp("report")
    argv = ["--responses", str(csv), "--design", str(design_path), "--out", str(out), "--bootstrap", str(B)]
    return out, argv


@pytest.fixture(scope="module")
def ran(outputs):
    out, argv = outputs
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = report.main([*argv, "--quiet"])
    return out, code, buf.getvalue()


def test_cli_writes_every_output(ran, study):
    out, code, stdout = ran
    assert code == 0
    for name in ("report.html", "report.md", "results.json"):
        assert (out / name).stat().st_size > 0
    tables = {p.stem for p in (out / "tables").glob("*.csv")}
    assert {"summary", "rank_shares", "tests", "pairwise", "position_bias", "test_retest", "paper_ranks"} <= tables
    figures = {p.stem for p in (out / "figures").glob("*.png")}
    assert {"pl_forest", "win_rates", "position_bias", "rank_distribution", "rank_shares_all"} <= figures
    assert {"rank_shares_korea", "rank_shares_nigeria"} <= figures
    for png in (out / "figures").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the terminal summary: per criterion, the best model, Friedman p and W
    for crit in ("cultural_relevance", "offensiveness"):
        line = next(line for line in stdout.splitlines() if line.startswith(crit))
        assert "SCoFT+MPC" in line and "Friedman p" in line and " W " in line and "crossed p" in line


def _is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def keys_then_new(obj: dict, pinned: list[str], new: list[str]) -> None:
    """The DESIGN.md keys come first, in their order; keys added since come only after them."""
    assert list(obj)[: len(pinned)] == pinned
    assert list(obj)[len(pinned) :] == new


def test_results_json_follows_the_schema(ran, study):
    out, _, _ = ran
    _, design, df, _ = study
    res = json.loads((out / "results.json").read_text())
    keys_then_new(
        res, ["schema", "n_participants", "n_excluded", "criteria"], ["inference", "position_balance", "warnings"]
    )
    assert res["inference"]["method"].startswith("crossed bootstrap")
    assert res["inference"]["n_boot"] >= 1 and isinstance(res["inference"]["seed"], int)
    assert res["inference"]["min_group_size"] == 15
    assert res["schema"] == "scoft-study/results/v1"
    per_participant = df.groupby("participant_id")["excluded"].first()
    assert res["n_excluded"] == int(per_participant.sum()) > 0
    assert res["n_participants"] == int((~per_participant).sum())
    assert set(res["criteria"]) == {c.id for c in design.criteria}
    models = {m.id for m in design.models}
    for crit in res["criteria"].values():
        assert set(crit) == {"groups"}
        assert set(crit["groups"]) == {"all", "korea", "nigeria"}
        for g in crit["groups"].values():
            keys_then_new(
                g,
                ["n_participants", "n_judgments", "models", "friedman", "pairwise", "agreement"],
                ["headline", "n_partial_judgments", "reasons", "pl_position_adjusted"],
            )
            h = g["headline"]
            assert h["df"] == len(models) - 1 and 0 <= h["p"] <= 1 and h["statistic"] >= 0
            assert h["n_pages"] >= 1 and h["df_denominator"] == min(g["n_participants"], h["n_pages"]) - 1
            assert isinstance(g["n_participants"], int) and isinstance(g["n_judgments"], int)
            assert set(g["models"]) == models
            for m in g["models"].values():
                keys_then_new(
                    m, ["mean_rank", "mean_rank_ci", "top1_share", "rank_shares", "pl_log_worth", "pl_log_worth_ci"], []
                )
                lo, hi = m["mean_rank_ci"]
                assert lo <= m["mean_rank"] <= hi
                lo, hi = m["pl_log_worth_ci"]
                assert lo <= m["pl_log_worth"] <= hi
                assert len(m["rank_shares"]) == len(models)
                assert sum(m["rank_shares"]) == pytest.approx(1.0)
                assert m["top1_share"] == pytest.approx(m["rank_shares"][0])
            assert sum(m["pl_log_worth"] for m in g["models"].values()) == pytest.approx(0.0, abs=1e-6)
            keys_then_new(g["friedman"], ["statistic", "df", "p", "kendall_w"], ["n_participants", "p_exact"])
            assert all(_is_number(g["friedman"][k]) for k in ("statistic", "df", "p", "kendall_w"))
            assert g["friedman"]["df"] == len(models) - 1
            assert g["friedman"]["p_exact"] is None  # groups of ~18 participants use the chi-square p
            assert len(g["pairwise"]) == len(models) * (len(models) - 1) // 2
            for p in g["pairwise"]:
                keys_then_new(
                    p,
                    ["a", "b", "win_rate_a", "statistic", "p", "p_holm"],
                    ["win_rate_ci", "mean_rank_difference", "p_crossed", "p_crossed_holm", "rank_biserial"],
                )
                lo, hi = p["win_rate_ci"]
                assert 0 <= lo <= p["win_rate_a"] <= hi <= 1
                assert 0 <= p["p_crossed"] <= p["p_crossed_holm"] <= 1
                assert {p["a"], p["b"]} <= models
                assert 0 <= p["p"] <= p["p_holm"] <= 1
                assert -1 <= p["rank_biserial"] <= 1
            keys_then_new(g["agreement"], ["krippendorff_alpha_ordinal"], ["krippendorff_alpha_ordinal_ci"])
            lo, hi = g["agreement"]["krippendorff_alpha_ordinal_ci"]
            assert lo <= g["agreement"]["krippendorff_alpha_ordinal"] <= hi
            assert g["n_partial_judgments"] == 0 and g["reasons"] == {}
            adj = g["pl_position_adjusted"]
            assert adj["reason"] is None and set(adj["log_worth"]) == models
        groups = crit["groups"]
        assert (
            groups["korea"]["n_participants"] + groups["nigeria"]["n_participants"] == groups["all"]["n_participants"]
        )
    for name in ("all", "korea", "nigeria"):
        assert res["position_balance"][name]["verdict"] == "balanced"  # the simulator's Latin square, measured
    assert res["warnings"] == []


def test_html_is_self_contained_and_carries_the_caveats(ran):
    out, _, _ = ran
    page = (out / "report.html").read_text(encoding="utf-8")

    class Refs(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.refs: list[tuple[str, str, str]] = []

        def handle_starttag(self, tag, attrs):
            for key, value in attrs:
                if key in ("src", "href", "srcset", "data") and value is not None:
                    self.refs.append((tag, key, value))

    parser = Refs()
    parser.feed(page)
    images = [v for tag, key, v in parser.refs if tag == "img"]
    assert len(images) >= 7 and all(v.startswith("data:image/png;base64,") for v in images)
    others = [v for tag, _, v in parser.refs if tag != "img"]
    assert all(v.startswith("#") for v in others), others
    assert "<link" not in page and "<script" not in page and "@import" not in page and "url(" not in page
    assert 'name="viewport"' in page
    for text in (
        "participant is the unit",
        "crossed bootstrap",
        "own prompts",
        "excluded",
        "SCoFT+MPC",
        "Stable Diffusion",
    ):
        assert text in page
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "participant is the unit" in md and "figures/pl_forest.png" in md
    assert "participants and pages as random factors" in md and "Classic view, Friedman" in md


def test_same_seed_same_results(study):
    design_path, design, _, csv = study
    df = attach_design(read_responses(csv), design)
    rows, info = apply_exclusions(df)
    rows = rows[rows["criterion"] == "cultural_relevance"]
    a = report.analyse(rows, info, design=design, n_boot=B, seed=3, progress=False)
    b = report.analyse(rows, info, design=design, n_boot=B, seed=3, progress=False)
    assert a.results == b.results
    kept_rows, kept_info = apply_exclusions(df[df["criterion"] == "offensiveness"], keep_excluded=True)
    kept = report.analyse(kept_rows, kept_info, design=design, n_boot=5, seed=3, progress=False)
    assert kept.results["n_participants"] > a.results["n_participants"]


def test_without_design_uses_ids(study, tmp_path, capsys):
    _, _, df, _ = study
    csv = write_responses(df[df["criterion"] == "offensiveness"], tmp_path / "one.csv")
    code = report.main(["--responses", str(csv), "--out", str(tmp_path / "out"), "--bootstrap", "5", "--quiet"])
    assert code == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(res["criteria"]) == ["offensiveness"]
    assert set(res["criteria"]["offensiveness"]["groups"]) == {"all", "korea", "nigeria"}
    assert "scoft_mpc" in capsys.readouterr().out


def test_bad_csv_exits_nonzero_with_a_message(study, tmp_path):
    _, _, df, _ = study
    broken = df.copy()
    broken.loc[broken.index[:3], "rank"] = 1  # not a permutation any more
    bad = write_responses(broken, tmp_path / "bad.csv")
    proc = subprocess.run(
        [sys.executable, "-m", "analysis.report", "--responses", str(bad), "--out", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "error:" in proc.stderr and "permutation" in proc.stderr and "line" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "report.html").exists()


def test_missing_file_and_wrong_header(tmp_path, capsys):
    assert report.main(["--responses", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m analysis.report: error: ") and "no such file" in err
    (tmp_path / "h.csv").write_text("a,b\n1,2\n")
    assert report.main(["--responses", str(tmp_path / "h.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "missing column" in capsys.readouterr().err


def test_tables_match_results(ran):
    out, _, _ = ran
    res = json.loads((out / "results.json").read_text())
    summary = pd.read_csv(out / "tables" / "summary.csv")
    row = summary[(summary["criterion"] == "offensiveness") & (summary["group"] == "korea")].set_index("model_id")
    for model, m in res["criteria"]["offensiveness"]["groups"]["korea"]["models"].items():
        assert row.at[model, "mean_rank"] == pytest.approx(m["mean_rank"])
        assert row.at[model, "pl_log_worth_ci_hi"] == pytest.approx(m["pl_log_worth_ci"][1])
