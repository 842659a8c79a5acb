"""Figures of a ranking study, each built on its own :class:`matplotlib.figure.Figure` (no pyplot state).

Inputs are tidy DataFrames (one row per estimate). Colours are colour-blind safe: the Okabe–Ito palette for
categories (cultures, groups) and the cividis map for ordered values (ranks, win rates). Models are shown with
their design labels when ``labels`` maps model ids to labels.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442", "#000000")
ALL_COLOUR = "#333333"
_PANEL_COLS = 2


def category_colours(names: Sequence[str]) -> dict[str, str]:
    """Okabe–Ito colour per name; the pooled group ``all`` is dark grey."""
    out: dict[str, str] = {}
    i = 0
    for name in names:
        if name == "all":
            out[name] = ALL_COLOUR
        else:
            out[name] = OKABE_ITO[i % len(OKABE_ITO)]
            i += 1
    return out


def _label(model: str, labels: Mapping[str, str] | None) -> str:
    return (labels or {}).get(model, model)


def _pretty(text: str) -> str:
    return text.replace("_", " ").capitalize()


def _grid(n_panels: int, *, width: float = 5.2, height: float = 3.2, cols: int = _PANEL_COLS) -> tuple[Figure, list]:
    cols = max(1, min(cols, n_panels))
    rows = max(1, math.ceil(n_panels / cols))
    fig = Figure(figsize=(width * cols, height * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _empty(title: str, message: str = "no data") -> Figure:
    fig = Figure(figsize=(6, 2), layout="constrained")
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    fig.suptitle(title)
    return fig


def _ordered(values: pd.Series, order: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(values.astype(str)))
    if order is None:
        return present
    return [v for v in order if v in present] + [v for v in present if v not in order]


# ------------------------------------------------------------------------------------------------------------
def rank_share_figure(
    shares: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    models: Sequence[str] | None = None,
    criteria: Sequence[str] | None = None,
    title: str = "Share of judgments giving each rank",
) -> Figure:
    """Stacked horizontal bars: for each criterion (panel) and model (bar), the share of each rank.

    ``shares`` has columns ``criterion, model_id, rank, share`` (shares of one model in one criterion sum to 1).
    """
    if shares.empty:
        return _empty(title)
    crits = _ordered(shares["criterion"], criteria)
    model_order = _ordered(shares["model_id"], models)
    n_ranks = int(shares["rank"].max())
    cmap = colormaps["cividis"]
    colours = [cmap(x) for x in np.linspace(0.05, 0.95, n_ranks)]
    fig, axes = _grid(len(crits), height=0.45 * len(model_order) + 1.6)
    for ax, crit in zip(axes, crits, strict=True):
        sub = shares[shares["criterion"] == crit]
        table = (
            sub.pivot_table(index="model_id", columns="rank", values="share", aggfunc="sum")
            .reindex(index=model_order, columns=range(1, n_ranks + 1))
            .fillna(0.0)
        )
        y = np.arange(len(model_order))
        left = np.zeros(len(model_order))
        for r in range(1, n_ranks + 1):
            width = table[r].to_numpy()
            ax.barh(y, width, left=left, color=colours[r - 1], edgecolor="white", linewidth=0.5, label=f"rank {r}")
            for yi, (x0, w) in enumerate(zip(left, width, strict=True)):
                if w >= 0.08:
                    ax.text(x0 + w / 2, yi, f"{w:.0%}", ha="center", va="center", fontsize=7.5,
                            color="white" if r - 1 < n_ranks / 2 else "black")  # fmt: skip
            left += width
        ax.set_yticks(y, [_label(m, labels) for m in model_order])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
        ax.set_title(_pretty(crit))
        ax.set_xlabel("share of judgments")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=n_ranks, title="rank (1 = best)", frameon=False)
    fig.suptitle(title)
    return fig


def forest_figure(
    worths: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    models: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    criteria: Sequence[str] | None = None,
    title: str = "Plackett–Luce log-worth (95% crossed-bootstrap CI)",
    group_labels: Mapping[str, str] | None = None,
) -> Figure:
    """Forest plot of log-worths with CIs: panel per criterion, row per model, one point per group.

    ``worths`` has columns ``criterion, group, model_id, pl_log_worth, ci_lo, ci_hi``.
    """
    if worths.empty:
        return _empty(title)
    crits = _ordered(worths["criterion"], criteria)
    model_order = _ordered(worths["model_id"], models)
    group_order = _ordered(worths["group"], groups)
    colours = category_colours(group_order)
    n_g = len(group_order)
    step = 0.8 / max(n_g, 1)
    fig, axes = _grid(len(crits), height=0.35 * len(model_order) * max(1, n_g / 2) + 1.6)
    for ax, crit in zip(axes, crits, strict=True):
        sub = worths[worths["criterion"] == crit]
        for gi, group in enumerate(group_order):
            g = sub[sub["group"] == group].set_index("model_id").reindex(model_order)
            y = np.arange(len(model_order)) - 0.4 + step * (gi + 0.5)
            est = g["pl_log_worth"].to_numpy(dtype=float)
            lo, hi = g["ci_lo"].to_numpy(dtype=float), g["ci_hi"].to_numpy(dtype=float)
            has_ci = np.isfinite(lo) & np.isfinite(hi)
            err = np.vstack([np.clip(est - lo, 0, None), np.clip(hi - est, 0, None)])
            ax.errorbar(
                np.where(has_ci, est, np.nan),
                y,
                xerr=np.nan_to_num(err),
                fmt="o" if group == "all" else "s",
                ms=4.5,
                color=colours[group],
                capsize=2,
                lw=1.2,
                label=(group_labels or {}).get(group, group),
            )
            if (~has_ci & np.isfinite(est)).any():  # no interval (group too small): an open marker, no bar
                ax.plot(np.where(has_ci, np.nan, est), y, ls="none", marker="o" if group == "all" else "s", ms=4.5,
                        mfc="white", mec=colours[group])  # fmt: skip
        ax.axvline(0.0, color="#999999", lw=0.8, ls="--")
        ax.set_yticks(np.arange(len(model_order)), [_label(m, labels) for m in model_order])
        ax.invert_yaxis()
        ax.set_title(_pretty(crit))
        ax.set_xlabel("log-worth (centred; higher = ranked better)")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(n_g, 6), title="group", frameon=False)
    fig.suptitle(title)
    return fig


def win_rate_heatmap(
    pairwise: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    models: Sequence[str] | None = None,
    criteria: Sequence[str] | None = None,
    title: str = "Pairwise win rate: share of judgments where the row model is ranked above the column model",
) -> Figure:
    """Heatmap per criterion of ``win_rate_a`` (row = a, column = b); the mirror cell is ``1 - win_rate_a``.

    ``pairwise`` has columns ``criterion, a, b, win_rate_a`` (one row per unordered or ordered pair).
    """
    if pairwise.empty:
        return _empty(title)
    crits = _ordered(pairwise["criterion"], criteria)
    model_order = _ordered(pd.concat([pairwise["a"], pairwise["b"]]), models)
    idx = {m: i for i, m in enumerate(model_order)}
    k = len(model_order)
    fig, axes = _grid(len(crits), width=0.9 * k + 2.6, height=0.75 * k + 1.4)
    image = None
    for ax, crit in zip(axes, crits, strict=True):
        mat = np.full((k, k), np.nan)
        for row in pairwise[pairwise["criterion"] == crit].itertuples(index=False):
            i, j = idx[str(row.a)], idx[str(row.b)]
            mat[i, j] = float(row.win_rate_a)
            if np.isnan(mat[j, i]):
                mat[j, i] = 1.0 - float(row.win_rate_a)
        image = ax.imshow(mat, cmap="cividis", vmin=0.0, vmax=1.0)
        for i in range(k):
            for j in range(k):
                if not np.isnan(mat[i, j]):
                    ax.text(j, i, f"{mat[i, j]:.0%}", ha="center", va="center", fontsize=8,
                            color="white" if mat[i, j] < 0.5 else "black")  # fmt: skip
        names = [_label(m, labels) for m in model_order]
        ax.set_xticks(range(k), names, rotation=30, ha="right")
        ax.set_yticks(range(k), names)
        ax.set_title(_pretty(crit))
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="win rate of row model", format=lambda v, _: f"{v:.0%}")
    fig.suptitle(title, wrap=True)
    return fig


def position_bias_figure(
    positions: pd.DataFrame,
    *,
    n_items: int | None = None,
    criteria: Sequence[str] | None = None,
    title: str = "Mean rank by position in which an image was first shown (95% CI)",
) -> Figure:
    """Mean rank per ``initial_position``, one line per criterion, with the no-bias reference ``(K + 1) / 2``.

    ``positions`` has columns ``criterion, initial_position, mean_rank`` (optionally ``ci_lo, ci_hi``: drawn as 95%
    interval bars, and ``n``).
    """
    if positions.empty:
        return _empty(title)
    crits = _ordered(positions["criterion"], criteria)
    colours = category_colours(crits)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    offsets = np.linspace(-0.12, 0.12, len(crits)) if len(crits) > 1 else np.zeros(1)
    for crit, dx in zip(crits, offsets, strict=True):
        sub = positions[positions["criterion"] == crit].sort_values("initial_position")
        x, est = sub["initial_position"].to_numpy() + 1 + dx, sub["mean_rank"].to_numpy(dtype=float)
        if {"ci_lo", "ci_hi"} <= set(sub.columns):
            lo, hi = sub["ci_lo"].to_numpy(dtype=float), sub["ci_hi"].to_numpy(dtype=float)
            err = np.nan_to_num(np.vstack([np.clip(est - lo, 0, None), np.clip(hi - est, 0, None)]))
            ax.errorbar(x, est, yerr=err, fmt="o-", color=colours[crit], capsize=2, lw=1.2, label=_pretty(crit))
        else:
            ax.plot(x, est, marker="o", color=colours[crit], label=_pretty(crit))
    k = n_items or int(positions["initial_position"].max()) + 1
    ax.axhline((k + 1) / 2, color="#999999", ls="--", lw=0.8, label="no position effect")
    ax.set_xticks(range(1, k + 1))
    ax.set_xlabel("position first shown (1 = first)")
    ax.set_ylabel("mean rank (1 = best)")
    ax.invert_yaxis()
    ax.legend(frameon=False, fontsize=8)
    fig.suptitle(title, wrap=True)
    return fig


def rank_distribution_figure(
    participant_ranks: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    models: Sequence[str] | None = None,
    cultures: Sequence[str] | None = None,
    criteria: Sequence[str] | None = None,
    title: str = "Participants' mean rank of each model, by culture",
    max_points: int = 150,
    culture_labels: Mapping[str, str] | None = None,
) -> Figure:
    """Per criterion (panel): each participant's mean rank of each model, as boxes (median, quartiles, whiskers to
    1.5 IQR) with a white diamond at the mean, plus points coloured by culture; the legend gives n per culture.

    ``participant_ranks`` has columns ``criterion, culture, participant_id, model_id, mean_rank``. Boxes use every
    participant; at most ``max_points`` points per culture and model are drawn (a seeded random subset).
    """
    if participant_ranks.empty:
        return _empty(title)
    crits = _ordered(participant_ranks["criterion"], criteria)
    model_order = _ordered(participant_ranks["model_id"], models)
    culture_order = _ordered(participant_ranks["culture"], cultures)
    colours = category_colours(culture_order)
    n_c = len(culture_order)
    width = 0.8 / max(n_c, 1)
    rng = np.random.default_rng(0)
    panel_width = min(max(5.2, 0.4 * len(model_order) * n_c + 2), 10.0)
    fig, axes = _grid(len(crits), width=panel_width, height=3.4, cols=1 if panel_width > 6.5 else _PANEL_COLS)
    for ax, crit in zip(axes, crits, strict=True):
        sub = participant_ranks[participant_ranks["criterion"] == crit]
        for ci, culture in enumerate(culture_order):
            sc = sub[sub["culture"] == culture]
            positions, data = [], []
            for mi, model in enumerate(model_order):
                vals = sc.loc[sc["model_id"] == model, "mean_rank"].dropna().to_numpy(dtype=float)
                x = mi - 0.4 + width * (ci + 0.5)
                if len(vals):
                    positions.append(x)
                    data.append(vals)
                    shown = vals if len(vals) <= max_points else rng.choice(vals, max_points, replace=False)
                    jitter = rng.uniform(-width * 0.3, width * 0.3, len(shown))
                    ax.scatter(x + jitter, shown, s=6, color=colours[culture], alpha=0.45, linewidths=0)
            if data:
                ax.boxplot(data, positions=positions, widths=width * 0.8, showfliers=False, patch_artist=True,
                           boxprops={"facecolor": "none", "edgecolor": colours[culture]},
                           medianprops={"color": colours[culture]}, whiskerprops={"color": colours[culture]},
                           capprops={"color": colours[culture]}, manage_ticks=False)  # fmt: skip
                ax.plot(positions, [float(np.mean(d)) for d in data], ls="none", marker="D", ms=5,
                        mfc="white", mec="black", mew=1.0, zorder=5)  # fmt: skip
            n = sc["participant_id"].nunique()
            name = (culture_labels or {}).get(culture, culture)
            ax.scatter([], [], color=colours[culture], label=f"{name} (n = {n})")
        ax.set_xticks(range(len(model_order)), [_label(m, labels) for m in model_order], rotation=20, ha="right")
        ax.set_ylabel("participant mean rank (1 = best)")
        ax.invert_yaxis()
        ax.set_title(_pretty(crit))
    handles, names = axes[0].get_legend_handles_labels()
    handles.append(Line2D([], [], ls="none", marker="D", ms=5, mfc="white", mec="black"))
    names.append("mean")
    fig.legend(handles, names, loc="outside lower center", ncols=min(n_c + 1, 7), title="culture", frameon=False)
    fig.suptitle(title)
    return fig


# ------------------------------------------------------------------------------------------------------------
def png_bytes(fig: Figure, *, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_png(fig: Figure, path: str | Path, *, dpi: int = 110) -> bytes:
    """Write ``fig`` as PNG to ``path`` (folders created) and return the bytes (for embedding)."""
    data = png_bytes(fig, dpi=dpi)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


PAPER_DPI = 300
FORMATS = ("png", "svg", "pdf")


def save_for_paper(fig: Figure, stem: str | Path, *, dpi: int = PAPER_DPI) -> list[Path]:
    """Write ``fig`` as ``stem.png`` (``dpi``, default 300), ``stem.svg`` and ``stem.pdf`` (vector, without
    timestamps: the same figure gives the same PNG and PDF bytes, and SVG up to clip-path ids); returns the paths
    (PNG first)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    engine = fig.get_layout_engine()
    for ext in FORMATS:
        path = stem.with_name(f"{stem.name}.{ext}")
        metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(ext)
        with _svg_hash_salt(stem.name):
            fig.savefig(path, format=ext, dpi=dpi if ext == "png" else "figure", metadata=metadata)
        out.append(path)
        fig.set_layout_engine("none")  # the first draw placed everything: the vector copies reuse that layout
    fig.set_layout_engine(engine)
    return out


def screen_png(png: bytes, *, dpi: int = 110, from_dpi: int = PAPER_DPI) -> bytes:
    """A screen-resolution copy of a high-resolution PNG (resampled, not redrawn), for embedding in HTML."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        size = (max(1, round(im.width * dpi / from_dpi)), max(1, round(im.height * dpi / from_dpi)))
        small = im.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


class _svg_hash_salt:
    """SVG element ids derived from the figure name, not drawn at random (restored afterwards)."""

    def __init__(self, salt: str) -> None:
        self.salt = salt

    def __enter__(self) -> None:
        from matplotlib import rcParams

        self.before = rcParams["svg.hashsalt"]
        rcParams["svg.hashsalt"] = self.salt

    def __exit__(self, *exc: object) -> None:
        from matplotlib import rcParams

        rcParams["svg.hashsalt"] = self.before
