"""The response simulator: valid exports, Plackett–Luce tastes recovered, the design's rules followed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import load, stats
from analysis.simulate import COLUMNS, make_spec, simulate_responses, write_responses
from study_designs.schema import load_design

MODELS = ("m0", "m1", "m2", "m3")


def small_spec(**kw):
    base = dict(
        cultures=("a", "b"),
        models=MODELS,
        criteria=("overall", "offence"),
        pages=12,
        pages_per_participant=8,
        attention_checks=2,
        repeat_pages=1,
        exclude_after_failed_checks=2,
    )
    return make_spec(**{**base, **kw})


def test_columns_match_the_export_contract():
    df = simulate_responses(small_spec(), participants_per_culture=3, seed=0)
    assert list(df.columns) == COLUMNS == load.COLUMNS


def test_written_csv_is_accepted_by_the_loader(tmp_path):
    df = simulate_responses(small_spec(), participants_per_culture=10, attention_failure_rate=0.3, seed=1)
    path = write_responses(df, tmp_path / "responses.csv")
    back = load.read_responses(path)
    assert len(back) == len(df)
    assert back["participant_id"].nunique() == 20
    assert back["is_attention_check"].any() and back["is_repeat"].any()
    rows, info = load.apply_exclusions(back)
    assert info["n_excluded"] == df.groupby("participant_id")["excluded"].first().sum()
    assert not rows["is_attention_check"].any()


def test_paper_design_simulates_to_a_valid_export(tmp_path):
    design = load_design("study_designs/scoft-cvpr2024.toml")
    df = simulate_responses(design, participants_per_culture=3, attention_failure_rate=0.2, seed=2)
    assert set(df["page_culture"]) == {c.id for c in design.cultures}
    assert set(df["model_id"]) == {m.id for m in design.models}
    assert (df["round_id"] == design.id).all()
    loaded = load.attach_design(load.read_responses(write_responses(df, tmp_path / "r.csv")), design)
    assert len(loaded) == len(df)


def test_each_ranking_is_a_permutation_and_moved_matches_initial_position():
    df = simulate_responses(small_spec(), participants_per_culture=5, seed=3)
    keys = ["participant_id", "page_id", "criterion", "is_repeat", "is_attention_check"]
    sorted_ranks = df.groupby(keys)["rank"].apply(lambda r: tuple(sorted(r)))
    assert set(sorted_ranks) == {(1, 2, 3, 4)}
    assert (df["moved"] == (df["rank"] != df["initial_position"] + 1)).all()
    assert (df["n_items"] == len(MODELS)).all()


def test_exclusions_follow_the_failed_check_rule():
    spec = small_spec(exclude_after_failed_checks=2)
    df = simulate_responses(spec, participants_per_culture=40, attention_failure_rate=0.5, seed=4)
    checks = df[df["is_attention_check"]].drop_duplicates(["participant_id", "page_id"])
    failed = (~checks["attention_passed"].astype(bool)).groupby(checks["participant_id"]).sum()
    excluded = df.groupby("participant_id")["excluded"].first()
    assert ((failed.reindex(excluded.index, fill_value=0) >= 2) == excluded).all()
    assert 0 < excluded.sum() < len(excluded)
    # attention_passed is only set on check pages; a check is passed when the marked image is ranked last
    assert df.loc[~df["is_attention_check"], "attention_passed"].isna().all()
    assert df.loc[df["is_attention_check"], "attention_passed"].notna().all()


def test_careless_share_drives_exclusions():
    spec = small_spec(exclude_after_failed_checks=1)
    clean = simulate_responses(
        spec, participants_per_culture=30, attention_failure_rate=0.0, attentive_check_failure=0.0, seed=5
    )
    sloppy = simulate_responses(spec, participants_per_culture=30, attention_failure_rate=1.0, seed=5)
    assert not clean["excluded"].any()
    share = sloppy.groupby("participant_id")["excluded"].first().mean()
    assert share > 0.8  # random rankers rank the marked image last in only 1 of 4 checks


def test_latin_square_balances_positions():
    df = simulate_responses(small_spec(attention_checks=0, repeat_pages=0), participants_per_culture=16, seed=6)
    counts = pd.crosstab(df["model_id"], df["initial_position"])
    assert counts.to_numpy().min() == counts.to_numpy().max()


def test_plackett_luce_pairwise_probabilities():
    """In a Plackett–Luce model P(i above j) = w_i / (w_i + w_j), whatever the other items."""
    worths = {"m0": -0.5, "m1": 0.0, "m2": 0.0, "m3": 0.5}
    spec = small_spec(criteria=("overall",), attention_checks=0, repeat_pages=0)
    df = simulate_responses(spec, participants_per_culture=300, worths=worths, heterogeneity=0.0, seed=7)
    wide = df.pivot_table(index=["participant_id", "page_id"], columns="model_id", values="rank")
    observed = (wide["m3"] < wide["m0"]).mean()
    assert observed == pytest.approx(np.exp(1.0) / (1 + np.exp(1.0)), abs=0.015)


def test_plackett_luce_worths_are_recovered():
    truth = np.array([-0.6, -0.1, 0.2, 0.5])
    spec = small_spec(criteria=("overall",), attention_checks=0, repeat_pages=0)
    df = simulate_responses(spec, participants_per_culture=150, worths=truth, heterogeneity=0.0, seed=8)
    ranks = df.pivot_table(index=["participant_id", "page_id"], columns="model_id", values="rank")[list(MODELS)]
    est, _ = stats.plackett_luce(ranks.to_numpy(dtype=float))
    assert np.asarray(est) == pytest.approx(truth - truth.mean(), abs=0.06)


def test_per_culture_worths_and_position_bias():
    worths = {"a": {"m0": 1.0}, "b": {"m3": 1.0}}
    spec = small_spec(attention_checks=0, repeat_pages=0)
    df = simulate_responses(spec, participants_per_culture=40, worths=worths, position_bias=0.8, seed=9)
    mean = df.groupby(["page_culture", "model_id"])["rank"].mean()
    assert mean["a"].idxmin() == "m0" and mean["b"].idxmin() == "m3"
    by_pos = df.groupby("initial_position")["rank"].mean()
    assert by_pos.is_monotonic_increasing  # earlier positions are favoured


def test_seeded_and_reproducible():
    a = simulate_responses(small_spec(), participants_per_culture=4, attention_failure_rate=0.2, seed=10)
    b = simulate_responses(small_spec(), participants_per_culture=4, attention_failure_rate=0.2, seed=10)
    c = simulate_responses(small_spec(), participants_per_culture=4, attention_failure_rate=0.2, seed=11)
    pd.testing.assert_frame_equal(a, b)
    assert not a["rank"].equals(c["rank"])


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown models"):
        simulate_responses(small_spec(), participants_per_culture=2, worths={"nope": 1.0})
    with pytest.raises(ValueError, match="attention_failure_rate"):
        simulate_responses(small_spec(), participants_per_culture=2, attention_failure_rate=1.5)
    with pytest.raises(ValueError, match="no pages"):
        make_spec(cultures=("a",), models=MODELS, pages={"a": 0})
