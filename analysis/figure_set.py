"""The report's figures: which figures, from which tables, with which captions (:func:`make_figures`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis import figures as figs
from analysis.summary import Analysis


@dataclass(frozen=True)
class FigureSpec:
    name: str
    figure: Any
    caption: str


def _small_groups(a: Analysis) -> set[tuple[str, str]]:
    """(criterion, group) pairs whose intervals are not shown (fewer participants than the minimum group size)."""
    return {
        (crit, name)
        for crit, c in a.results["criteria"].items()
        for name, g in c["groups"].items()
        if "intervals" in g.get("reasons", {})
    }


def make_figures(a: Analysis) -> list[FigureSpec]:
    t = a.tables
    labels = a.model_labels or None
    out = []
    shares = t["rank_shares"]
    for group in a.groups:
        sub = shares[shares["group"] == group] if len(shares) else shares
        if sub.empty:
            continue
        out.append(
            FigureSpec(
                f"rank_shares_{group}",
                figs.rank_share_figure(
                    sub,
                    labels=labels,
                    models=a.models,
                    criteria=a.criteria,
                    title=f"Share of judgments giving each rank — {a.culture_label(group)}",
                ),
                f"Rank shares per criterion and model, {a.culture_label(group).lower()} (judgments pooled).",
            )
        )
    forest = t["summary"].rename(columns={"pl_log_worth_ci_lo": "ci_lo", "pl_log_worth_ci_hi": "ci_hi"})
    small = _small_groups(a)
    if small and len(forest):
        hide = np.array([(c, g) in small for c, g in zip(forest["criterion"], forest["group"], strict=True)])
        forest.loc[hide, ["ci_lo", "ci_hi"]] = np.nan
    out.append(
        FigureSpec(
            "pl_forest",
            figs.forest_figure(
                forest,
                labels=labels,
                models=a.models,
                groups=a.groups,
                criteria=a.criteria,
                group_labels={g: a.culture_label(g) for g in a.groups},
            ),
            "Plackett–Luce log-worths with 95% crossed-bootstrap intervals (participants and pages resampled), all "
            "cultures and each culture; open "
            f"markers: groups of fewer than {a.min_group_size} participants, shown without an interval.",
        )
    )
    pw = t["pairwise"]
    out.append(
        FigureSpec(
            "win_rates",
            figs.win_rate_heatmap(
                pw[pw["group"] == "all"] if len(pw) else pw, labels=labels, models=a.models, criteria=a.criteria
            ),
            "Share of judgments in which the row model was ranked above the column model (all cultures).",
        )
    )
    out.append(
        FigureSpec(
            "position_bias",
            figs.position_bias_figure(t["position_bias"], n_items=len(a.models), criteria=a.criteria),
            "Mean rank by the position an image was first shown in, with 95% crossed-bootstrap intervals "
            "(participants and pages resampled); the "
            "dashed line is no position effect.",
        )
    )
    out.append(
        FigureSpec(
            "rank_distribution",
            figs.rank_distribution_figure(
                t["participant_mean_ranks"],
                labels=labels,
                models=a.models,
                cultures=a.cultures,
                criteria=a.criteria,
                culture_labels=a.culture_labels,
            ),
            "Each participant's mean rank of each model per culture and criterion: points, boxes (median and "
            "quartiles) and white diamonds at the mean; n = participants per culture.",
        )
    )
    return out
