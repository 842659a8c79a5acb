"""Power by simulation: more participants, more power; bigger differences need fewer participants."""

from __future__ import annotations

import pytest

from analysis import power
from analysis.simulate import make_spec

# three models and >= 14 participants keep scipy's Wilcoxon on its fast path in these tests
SPEC = make_spec(cultures=("a", "b"), models=("base", "mid", "best"), pages={"a": 12, "b": 10}, pages_per_participant=8)


def test_power_grows_with_participants():
    kw = dict(worth_difference=0.35, participants=[14, 60], seed=1, progress=False)
    curve = power.power_curve(SPEC, n_sim=40, test="friedman", both=False, **kw)
    assert list(curve["participants"]) == [14, 60]
    assert curve["power"].iloc[1] > curve["power"].iloc[0]
    assert ((curve["ci_lo"] <= curve["power"]) & (curve["power"] <= curve["ci_hi"])).all()
    pairwise = power.power_curve(SPEC, n_sim=10, **kw)  # Holm-adjusted Wilcoxon of best vs base
    assert pairwise["power"].equals(pairwise["power_wilcoxon"])
    assert pairwise["power"].iloc[1] > pairwise["power"].iloc[0]


def test_no_difference_rejects_rarely():
    curve = power.power_curve(
        SPEC, worth_difference=0.0, participants=[20], n_sim=40, seed=2, test="friedman", both=False, progress=False
    )
    assert curve["power"].iloc[0] <= 0.15
    assert curve["power_wilcoxon"].isna().all()


def test_bigger_difference_needs_fewer_participants():
    kw = dict(n_sim=16, seed=3, test="friedman", both=False, progress=False)
    big = power.participants_needed(SPEC, worth_difference=1.5, **kw)
    small = power.participants_needed(SPEC, worth_difference=0.5, **kw)
    assert big.participants is not None and small.participants is not None
    assert big.participants < small.participants
    reached = big.curve.set_index("participants")["power"]
    assert reached[big.participants] >= 0.8


def test_setup_defaults_and_checks():
    setup = power.make_setup(SPEC, worth_difference=0.5)
    assert (setup.a, setup.b) == ("best", "base")
    assert setup.culture == "b"  # the culture with the fewest pages
    assert setup.worths == {"base": 0.0, "mid": 0.0, "best": 0.5}
    with pytest.raises(ValueError, match="unknown criterion"):
        power.make_setup(SPEC, worth_difference=0.5, criterion="nope")
    with pytest.raises(ValueError, match="unknown model"):
        power.make_setup(SPEC, worth_difference=0.5, compare=("best", "nope"))


def test_cli_prints_table_and_answer(capsys):
    code = power.main(
        ["--design", "study_designs/demo.toml", "--worth-difference", "2.5", "--sims", "6", "--test", "friedman"]
        + ["--max-participants", "8", "--seed", "4"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "participants" in out and "Friedman" in out
    assert "participants per culture give 80% power" in out or "was not reached" in out


def test_cli_bad_design_exits_nonzero(capsys, tmp_path):
    code = power.main(["--design", str(tmp_path / "missing.toml"), "--worth-difference", "0.5"])
    assert code == 2
    assert capsys.readouterr().err.startswith("python -m analysis.power: error: ")
