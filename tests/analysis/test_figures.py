"""Figures: one Figure object each, labelled with design labels, colour-blind palette, no pyplot state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from analysis import figures as figs

MODELS = ["sd", "scoft_m", "scoft_mpc"]
LABELS = {"sd": "Stable Diffusion", "scoft_m": "SCoFT+M", "scoft_mpc": "SCoFT+MPC"}
CRITERIA = ["description", "offensiveness"]


def visible_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def tick_texts(fig: Figure) -> set[str]:
    out = set()
    for ax in fig.axes:
        out |= {t.get_text() for t in ax.get_yticklabels() + ax.get_xticklabels()}
    return out


@pytest.fixture
def shares() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for c in CRITERIA:
        for m in MODELS:
            for r, s in enumerate(rng.dirichlet([1, 1, 1]), start=1):
                rows.append({"criterion": c, "model_id": m, "rank": r, "share": s})
    return pd.DataFrame(rows)


def test_rank_share_bars_are_stacked_to_one(shares):
    fig = figs.rank_share_figure(shares, labels=LABELS, models=MODELS, criteria=CRITERIA)
    assert isinstance(fig, Figure)
    axes = visible_axes(fig)
    assert len(axes) == len(CRITERIA)
    assert {"Stable Diffusion", "SCoFT+M", "SCoFT+MPC"} <= tick_texts(fig)
    # each model's bar segments end at 1
    for ax in axes:
        right = {}
        for patch in ax.patches:
            y = round(patch.get_y() + patch.get_height() / 2, 6)
            right[y] = max(right.get(y, 0), patch.get_x() + patch.get_width())
        assert list(right.values()) == pytest.approx([1.0] * len(MODELS))


def test_forest_plot_has_a_point_per_group_and_model():
    rows = [
        {
            "criterion": c,
            "group": g,
            "model_id": m,
            "pl_log_worth": 0.1 * i,
            "ci_lo": 0.1 * i - 0.2,
            "ci_hi": 0.1 * i + 0.2,
        }
        for c in CRITERIA
        for g in ["all", "korea", "nigeria"]
        for i, m in enumerate(MODELS)
    ]
    fig = figs.forest_figure(pd.DataFrame(rows), labels=LABELS, models=MODELS, groups=["all", "korea", "nigeria"])
    axes = visible_axes(fig)
    assert len(axes) == 2
    lines = [line for line in axes[0].get_lines() if len(line.get_xdata()) == len(MODELS)]
    colours = {to_hex(line.get_color()) for line in lines}
    assert {figs.ALL_COLOUR.lower(), figs.OKABE_ITO[0].lower(), figs.OKABE_ITO[1].lower()} <= colours
    assert "SCoFT+MPC" in tick_texts(fig)


def test_win_rate_heatmap_fills_mirror_cells():
    pairs = pd.DataFrame(
        [
            {"criterion": "description", "a": "sd", "b": "scoft_m", "win_rate_a": 0.3},
            {"criterion": "description", "a": "sd", "b": "scoft_mpc", "win_rate_a": 0.2},
            {"criterion": "description", "a": "scoft_m", "b": "scoft_mpc", "win_rate_a": 0.45},
        ]
    )
    fig = figs.win_rate_heatmap(pairs, labels=LABELS, models=MODELS)
    ax = visible_axes(fig)[0]
    mat = ax.images[0].get_array()
    assert mat[0, 1] == pytest.approx(0.3) and mat[1, 0] == pytest.approx(0.7)
    assert np.ma.is_masked(mat[0, 0]) or np.isnan(mat[0, 0])
    assert "70%" in {t.get_text() for t in ax.texts}


def test_position_bias_and_rank_distribution():
    pos = pd.DataFrame(
        [{"criterion": c, "initial_position": p, "mean_rank": 2 + 0.1 * p} for c in CRITERIA for p in range(3)]
    )
    fig = figs.position_bias_figure(pos, n_items=3)
    assert len(visible_axes(fig)[0].get_lines()) == len(CRITERIA) + 1  # plus the no-bias reference

    rng = np.random.default_rng(1)
    dist = pd.DataFrame(
        [
            {"criterion": c, "culture": cu, "participant_id": f"{cu}{p}", "model_id": m, "mean_rank": rng.uniform(1, 3)}
            for c in CRITERIA
            for cu in ["korea", "nigeria"]
            for p in range(400)
            for m in MODELS
        ]
    )
    fig = figs.rank_distribution_figure(dist, labels=LABELS, models=MODELS, max_points=50)
    axes = visible_axes(fig)
    assert len(axes) == len(CRITERIA)
    points = sum(len(c.get_offsets()) for c in axes[0].collections)
    assert points == 2 * len(MODELS) * 50  # capped per culture and model
    assert "SCoFT+M" in tick_texts(fig)


def test_png_output_and_no_pyplot_state(tmp_path, shares):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = figs.rank_share_figure(shares)
    data = figs.save_png(fig, tmp_path / "sub" / "shares.png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "sub" / "shares.png").read_bytes() == data
    assert plt.get_fignums() == before


def test_empty_input_gives_a_placeholder_figure():
    fig = figs.forest_figure(pd.DataFrame(columns=["criterion", "group", "model_id", "pl_log_worth", "ci_lo", "ci_hi"]))
    assert isinstance(fig, Figure)
    assert figs.png_bytes(fig)[:4] == b"\x89PNG"


def test_palette_is_okabe_ito():
    colours = figs.category_colours(["all", "china", "india"])
    assert colours == {"all": figs.ALL_COLOUR, "china": "#E69F00", "india": "#56B4E9"}
