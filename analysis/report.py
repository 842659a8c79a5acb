"""``python -m analysis.report``: responses.csv → report.html, report.md, results.json, tables/*.csv, figures/*.png.

The only module of ``analysis`` that writes files. The work is split into pure steps — :func:`analyse` (statistics
into an :class:`Analysis`), :func:`make_figures`, :func:`render_html` / :func:`render_markdown` — and
:func:`write_report`, which writes them to a folder.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from analysis import figures as figs
from analysis import stats
from analysis.headline import METHOD as HEADLINE_METHOD
from analysis.load import ResponsesError, apply_exclusions, attach_design, read_responses
from study_designs.schema import Design, DesignError, load_design

SCHEMA = "scoft-study/results/v1"
TEMPLATE = "report.html.j2"
UNIT_CAVEAT = (
    "Participants and pages are both random samples, so judgments are correlated within a participant and "
    "within a page (its images share their model-specific quality). Every interval comes from a crossed bootstrap "
    "that resamples participants and pages, and the headline test of equal mean ranks uses its covariance. The "
    "classic view, where the participant is the unit of analysis, stays alongside: Friedman with Kendall's W on each "
    "participant's mean rank of each model, pairwise Wilcoxon signed-rank, Holm-adjusted over all pairs of a group; "
    "it ignores page-to-page variation and so overstates significance when images vary."
)
RANK_CAVEAT = (
    "Rank 1 is best on every criterion (best match, most representative, least stereotypical, least offensive)."
)
PL_CAVEAT = (
    "Plackett–Luce log-worths are centred to sum 0 within a group; a difference of 1 between two models means "
    "odds of e^1 ≈ 2.7 to 1 that the first is preferred in a head-to-head choice."
)


@dataclass
class Analysis:
    """Everything the report shows, computed from one responses table (no files touched)."""

    results: dict
    tables: dict[str, pd.DataFrame]
    info: dict
    criteria: list[str]
    cultures: list[str]
    models: list[str]
    model_labels: dict[str, str] = field(default_factory=dict)
    culture_labels: dict[str, str] = field(default_factory=dict)
    questions: dict[str, str] = field(default_factory=dict)
    position_balance: str | None = None
    n_boot: int = 1000
    seed: int = 0
    keep_excluded: bool = False
    source: str = "responses.csv"
    source_sha256: str = ""
    design_id: str | None = None
    title: str = "Ranking study report"
    retest: dict | None = None

    def label(self, model: str) -> str:
        return self.model_labels.get(model, model)

    def culture_label(self, culture: str) -> str:
        return "All cultures" if culture == "all" else self.culture_labels.get(culture, culture)


# ------------------------------------------------------------------------------------------------- analysis
def _ordered_unique(values: pd.Series, order: Sequence[str] | None = None) -> list[str]:
    present = sorted(map(str, pd.unique(values.dropna())))
    if order is None:
        if isinstance(values.dtype, pd.CategoricalDtype):
            return [str(c) for c in values.cat.categories if str(c) in present]
        return present
    return [v for v in order if v in present] + [v for v in present if v not in order]


def _is(df: pd.DataFrame, column: str, value: str) -> np.ndarray:
    col = df[column]
    if isinstance(col.dtype, pd.CategoricalDtype):
        where = col.cat.categories.get_indexer([value])[0]
        return col.cat.codes.to_numpy() == where if where >= 0 else np.zeros(len(col), dtype=bool)
    return (col.astype(str) == value).to_numpy(dtype=bool)


def analyse(
    df: pd.DataFrame,
    info: Mapping[str, Any],
    *,
    design: Design | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    keep_excluded: bool = False,
    progress: bool = True,
) -> Analysis:
    """Run every statistic of the report on the analysed rows ``df`` (exclusions already applied)."""
    if len(df) == 0:
        raise ResponsesError("no rankings left to analyse after exclusions")
    crit_order = [c.id for c in design.criteria] if design else None
    cult_order = [c.id for c in design.cultures] if design else None
    model_order = [m.id for m in design.models] if design else None
    criteria = _ordered_unique(df["criterion"], crit_order)
    cultures = _ordered_unique(df["page_culture"], cult_order)
    models = _ordered_unique(df["model_id"], model_order)
    groups = ["all", *cultures]

    crit_mask = {c: _is(df, "criterion", c) for c in criteria}
    cult_mask = {c: _is(df, "page_culture", c) for c in cultures}
    participant_culture = (
        df.groupby("participant_id", observed=True)["participant_culture"].first().astype(str).to_dict()
    )

    results: dict[str, Any] = {
        "schema": SCHEMA,
        "n_participants": int(info.get("n_included", df["participant_id"].nunique())),
        "n_excluded": int(info.get("n_excluded", 0)),
        "criteria": {},
    }
    position_rows, position_tests, culture_rows, kruskal_rows, dist_rows = [], [], [], [], []
    total = len(criteria) * (len(groups) + 2) + 1
    with tqdm(total=total, desc="analysis", unit="step", disable=not progress) as bar:
        for crit in criteria:
            sub = df[crit_mask[crit]]
            out_groups: dict[str, Any] = {}
            for group in groups:
                bar.set_postfix_str(f"{crit} / {group}", refresh=False)
                rows = sub if group == "all" else sub[cult_mask[group][crit_mask[crit]]]
                if len(rows) and rows["participant_id"].nunique() > 0:
                    try:
                        out_groups[group] = stats.summarise_group(rows, n_boot=n_boot, seed=seed)
                    except ValueError as err:  # e.g. only repeat pages in this group
                        if "no rankings" not in str(err):
                            raise
                bar.update()
            results["criteria"][crit] = {"groups": out_groups}

            pos_table, pos_test = stats.position_bias(sub)
            position_rows.append(pos_table.assign(criterion=crit))
            position_tests.append({"criterion": crit, **{k: v for k, v in pos_test.items() if k != "test"}})
            pmr = stats.participant_mean_ranks(sub)
            long = pmr.reset_index().melt(id_vars="participant_id", var_name="model_id", value_name="mean_rank")
            long["participant_id"] = long["participant_id"].astype(str)
            long["culture"] = long["participant_id"].map(participant_culture)
            dist_rows.append(long.assign(criterion=crit))
            bar.update()

            if len(cultures) >= 2:
                cc = stats.culture_comparison(sub, n_perm=n_boot, seed=seed)
                culture_rows.append({"criterion": crit, **cc["interaction"]})
                kruskal_rows.append(cc["kruskal"].assign(criterion=crit))
            bar.update()

        bar.set_postfix_str("reliability and paper views", refresh=False)
        retest = stats.test_retest(df)
        in_out = stats.in_out_group(df)
        paper = stats.paper_views(df)
        bar.update()

    results["inference"] = inference_block(n_boot, seed)
    tables = _tables(results, models, criteria, groups)
    tables["position_bias"] = _front(pd.concat(position_rows, ignore_index=True), "criterion")
    tables["position_bias_tests"] = pd.DataFrame(position_tests)
    tables["participant_mean_ranks"] = _front(pd.concat(dist_rows, ignore_index=True), "criterion", "culture")
    if culture_rows:
        tables["culture_interaction"] = pd.DataFrame(culture_rows)
        tables["culture_kruskal"] = _front(pd.concat(kruskal_rows, ignore_index=True), "criterion")
    tables["test_retest"] = retest
    if in_out is not None:
        tables["in_out_group"] = in_out
    tables["paper_ranks"] = paper["ranks"]
    tables["paper_ranked_better"] = paper["ranked_better"]
    tables["exclusions"] = pd.DataFrame(
        {"participant_id": list(info.get("reasons", {})), "reason": list(info.get("reasons", {}).values())}
    )
    retest_summary = None
    if len(retest):
        tau = retest["kendall_tau"].to_numpy(dtype=float)
        retest_summary = {
            "n_participants": len(retest),
            "mean_tau": float(np.nanmean(tau)) if np.isfinite(tau).any() else float("nan"),
            "median_tau": float(np.nanmedian(tau)) if np.isfinite(tau).any() else float("nan"),
        }

    return Analysis(
        results=results,
        tables=tables,
        info=dict(info),
        criteria=criteria,
        cultures=cultures,
        models=models,
        model_labels={m.id: m.label for m in design.models} if design else {},
        culture_labels={c.id: c.label for c in design.cultures} if design else {},
        questions=_questions(design, criteria) if design else {},
        position_balance=design.assignment.position_balance if design else None,
        n_boot=n_boot,
        seed=seed,
        keep_excluded=keep_excluded,
        design_id=design.id if design else None,
        title=design.title if design else "Ranking study report",
        retest=retest_summary,
    )


def inference_block(n_boot: int, seed: int) -> dict[str, Any]:
    """How the intervals and headline tests of ``results.json`` were computed."""
    return {
        "method": "crossed bootstrap over participants and pages (pigeonhole; percentile intervals)",
        "n_boot": int(n_boot),
        "seed": int(seed),
        "headline_test": HEADLINE_METHOD,
        "classic_tests": "participant-level Friedman and Wilcoxon signed-rank with Holm",
    }


def _questions(design: Design, criteria: Sequence[str]) -> dict[str, str]:
    out = {}
    for c in design.criteria:
        if c.id in criteria:
            text = c.question.replace("{adjective}", "[culture]")
            out[c.id] = f"{text} (1 = {c.best_label.lower()}, last = {c.worst_label.lower()})"
    return out


def _front(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    return df[[*cols, *[c for c in df.columns if c not in cols]]]


def _tables(results: dict, models: list[str], criteria: list[str], groups: list[str]) -> dict[str, pd.DataFrame]:
    summary, shares, tests, pairs = [], [], [], []
    for crit in criteria:
        for group, g in results["criteria"][crit]["groups"].items():
            for model, m in g["models"].items():
                summary.append(
                    {
                        "criterion": crit,
                        "group": group,
                        "model_id": model,
                        "mean_rank": m["mean_rank"],
                        "mean_rank_ci_lo": m["mean_rank_ci"][0],
                        "mean_rank_ci_hi": m["mean_rank_ci"][1],
                        "top1_share": m["top1_share"],
                        "pl_log_worth": m["pl_log_worth"],
                        "pl_log_worth_ci_lo": m["pl_log_worth_ci"][0],
                        "pl_log_worth_ci_hi": m["pl_log_worth_ci"][1],
                        "n_participants": g["n_participants"],
                        "n_judgments": g["n_judgments"],
                    }
                )
                for r, share in enumerate(m["rank_shares"], start=1):
                    shares.append({"criterion": crit, "group": group, "model_id": model, "rank": r, "share": share})
            tests.append(
                {
                    "criterion": crit,
                    "group": group,
                    "n_participants": g["n_participants"],
                    "n_judgments": g["n_judgments"],
                    **{f"friedman_{k}": v for k, v in g["friedman"].items()},
                    "krippendorff_alpha_ordinal": g["agreement"]["krippendorff_alpha_ordinal"],
                }
            )
            pairs.extend({"criterion": crit, "group": group, **p} for p in g["pairwise"])
    return {
        "summary": pd.DataFrame(summary),
        "rank_shares": pd.DataFrame(shares),
        "tests": pd.DataFrame(tests),
        "pairwise": pd.DataFrame(pairs),
    }


# -------------------------------------------------------------------------------------------------- figures
@dataclass(frozen=True)
class FigureSpec:
    name: str
    figure: Any
    caption: str


def make_figures(a: Analysis) -> list[FigureSpec]:
    t = a.tables
    labels = a.model_labels or None
    out = []
    shares = t["rank_shares"]
    for group in ["all", *a.cultures]:
        sub = shares[shares["group"] == group]
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
    out.append(
        FigureSpec(
            "pl_forest",
            figs.forest_figure(
                forest,
                labels=labels,
                models=a.models,
                groups=["all", *a.cultures],
                criteria=a.criteria,
                group_labels={g: a.culture_label(g) for g in ["all", *a.cultures]},
            ),
            "Plackett–Luce log-worths with 95% crossed-bootstrap intervals, all cultures and each culture.",
        )
    )
    pw = t["pairwise"]
    out.append(
        FigureSpec(
            "win_rates",
            figs.win_rate_heatmap(pw[pw["group"] == "all"], labels=labels, models=a.models, criteria=a.criteria),
            "Share of judgments in which the row model was ranked above the column model (all cultures).",
        )
    )
    n_items = len(a.models)
    out.append(
        FigureSpec(
            "position_bias",
            figs.position_bias_figure(t["position_bias"], n_items=n_items, criteria=a.criteria),
            "Mean rank by the position an image was first shown in; the dashed line is no position effect.",
        )
    )
    dist = t["participant_mean_ranks"]
    out.append(
        FigureSpec(
            "rank_distribution",
            figs.rank_distribution_figure(
                dist,
                labels=labels,
                models=a.models,
                cultures=a.cultures,
                criteria=a.criteria,
                culture_labels=a.culture_labels,
            ),
            "Each participant's mean rank of each model (points), with boxes per culture.",
        )
    )
    return out


# ------------------------------------------------------------------------------------------------ formatting
def fmt(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return f"{int(x):,}"
    return f"{float(x):.{digits}f}"


def fmt_p(p: Any) -> str:
    if p is None or not math.isfinite(float(p)):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def fmt_pct(x: Any) -> str:
    return "–" if x is None or not math.isfinite(float(x)) else f"{float(x):.0%}"


def fmt_ci(lo: Any, hi: Any, digits: int = 2) -> str:
    return f"[{fmt(lo, digits)}, {fmt(hi, digits)}]"


def _group_models_rows(a: Analysis, g: dict) -> tuple[list[str], list[list[str]], int | None]:
    header = ["Model", "Mean rank", "95% CI", "Top-1", "PL log-worth", "95% CI"]
    rows, best, best_rank = [], None, math.inf
    for i, model in enumerate(m for m in a.models if m in g["models"]):
        m = g["models"][model]
        rows.append(
            [
                a.label(model),
                fmt(m["mean_rank"]),
                fmt_ci(*m["mean_rank_ci"]),
                fmt_pct(m["top1_share"]),
                fmt(m["pl_log_worth"]),
                fmt_ci(*m["pl_log_worth_ci"]),
            ]
        )
        if m["mean_rank"] is not None and m["mean_rank"] < best_rank:
            best, best_rank = i, m["mean_rank"]
    return header, rows, best


def _pairwise_rows(a: Analysis, g: dict) -> tuple[list[str], list[list[str]]]:
    header = ["A", "B", "A ranked above B", "Wilcoxon W", "p", "p (Holm)"]
    rows = [
        [a.label(p["a"]), a.label(p["b"]), fmt_pct(p["win_rate_a"]), fmt(p["statistic"], 1), fmt_p(p["p"])]
        + [fmt_p(p["p_holm"])]
        for p in g["pairwise"]
    ]
    return header, rows


def _tests_rows(a: Analysis, crit: str) -> tuple[list[str], list[list[str]]]:
    header = ["Group", "Participants", "Rankings", "Friedman χ²", "df", "p", "Kendall's W", "Krippendorff α"]
    rows = []
    for group, g in a.results["criteria"][crit]["groups"].items():
        f = g["friedman"]
        rows.append(
            [
                a.culture_label(group),
                fmt(g["n_participants"]),
                fmt(g["n_judgments"]),
                fmt(f["statistic"]),
                fmt(f["df"]),
                fmt_p(f["p"]),
                fmt(f["kendall_w"], 3),
                fmt(g["agreement"]["krippendorff_alpha_ordinal"], 3),
            ]
        )
    return header, rows


def best_model(a: Analysis, crit: str) -> str | None:
    g = a.results["criteria"][crit]["groups"].get("all")
    if not g:
        return None
    ranked = [(m["mean_rank"], k) for k, m in g["models"].items() if m["mean_rank"] is not None]
    return min(ranked)[1] if ranked else None


def headline(a: Analysis, crit: str) -> str:
    g = a.results["criteria"][crit]["groups"].get("all")
    best = best_model(a, crit)
    if not g or best is None:
        return "No rankings for this criterion."
    f = g["friedman"]
    h = g.get("headline", {})
    m = g["models"][best]
    if h.get("p") is None:
        verdict = "no test could be computed (too few participants or pages)"
    elif h["p"] < 0.05:
        verdict = "the models differ (p < 0.05)"
    else:
        verdict = "no difference between the models is detected at the 5% level"
    return (
        f"Best mean rank: {a.label(best)} ({fmt(m['mean_rank'])}, 95% CI {fmt_ci(*m['mean_rank_ci'])}). "
        f"Test of equal mean ranks with participants and pages as random factors (crossed bootstrap, "
        f"{g['n_participants']} participants × {h.get('n_pages', '–')} pages): p {_p_phrase(h.get('p'))} — "
        f"{verdict}. Classic view, Friedman on participants' mean ranks: χ² = {fmt(f['statistic'])}, "
        f"p {_p_phrase(f['p'])}, Kendall's W = {fmt(f['kendall_w'], 3)}."
    )


def _p_phrase(p: Any) -> str:
    s = fmt_p(p)
    return s if s.startswith("<") else f"= {s}"


def exclusion_lines(a: Analysis) -> list[str]:
    info = a.info
    n_ex, n_all = info.get("n_excluded", 0), info.get("n_participants", 0)
    lines = [
        f"{n_ex} of {n_all} participants in the export were marked excluded by the design's attention-check rule"
        + (" and are KEPT in this analysis (--keep-excluded)." if a.keep_excluded else " and are left out.")
    ]
    reasons = pd.Series(list(info.get("reasons", {}).values()), dtype=object)
    if len(reasons):
        counts = reasons.value_counts()
        lines.append("Reasons: " + "; ".join(f"{why} ({n})" for why, n in counts.items()) + ".")
    if info.get("attention_rows_dropped"):
        lines.append(f"{info['attention_rows_dropped']:,} rows of attention-check pages are not analysed.")
    if info.get("skipped_judgments"):
        lines.append(
            f"{info['skipped_judgments']:,} rankings were skipped by participants (e.g. 'too distressing to judge') "
            "and are not analysed."
        )
    return lines


def caveats(a: Analysis) -> list[str]:
    out = [UNIT_CAVEAT, RANK_CAVEAT, PL_CAVEAT]
    if len(a.cultures) >= 2:
        out.append("Culture comparison: " + stats.CULTURE_CAVEAT)
    out.append(exclusion_lines(a)[0])
    out.append("Repeat (test–retest) pages are used only for reliability; attention-check pages are not analysed.")
    return out


def summary_lines(a: Analysis) -> list[str]:
    """Short per-criterion summary for the terminal."""
    lines = []
    width = max(len(c) for c in a.criteria)
    for crit in a.criteria:
        g = a.results["criteria"][crit]["groups"].get("all")
        best = best_model(a, crit)
        if not g or best is None:
            lines.append(f"{crit:<{width}}  no rankings")
            continue
        f = g["friedman"]
        lines.append(
            f"{crit:<{width}}  best {a.label(best)} (mean rank {fmt(g['models'][best]['mean_rank'])})"
            f"  crossed p {fmt_p(g.get('headline', {}).get('p'))}"
            f"  Friedman p {fmt_p(f['p'])}  W {fmt(f['kendall_w'], 3)}  n {g['n_participants']}"
        )
    return lines


# --------------------------------------------------------------------------------------------------- HTML / MD
def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, highlight: int | None = None) -> str:
    text_cols = [not _numeric(v) for v in rows[0]] if rows else [False] * len(header)
    head = "".join(
        f'<th scope="col"{_cls(is_text)}>{html.escape(str(h))}</th>'
        for h, is_text in zip(header, text_cols, strict=False)
    )
    body = []
    for i, row in enumerate(rows):
        cls = ' class="best"' if i == highlight else ""
        cells = "".join(f"<td{_cls(not _numeric(v))}>{html.escape(str(v))}</td>" for v in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{len(header)}">none</td></tr>')
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _numeric(value: Any) -> bool:
    text = str(value)
    return text.lstrip("[<–-− ").replace(",", "")[:1].isdigit() or text in ("–", "")


def _cls(is_text: bool) -> str:
    return ' class="t"' if is_text else ""


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    if not rows:
        lines.append("| " + " | ".join(["none", *[""] * (len(header) - 1)]) + " |")
    return "\n".join(lines)


def _summary_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    header = ["Criterion", "Best model", "Mean rank", "Crossed p", "Friedman p", "Kendall's W", "Participants"]
    rows = []
    for crit in a.criteria:
        g = a.results["criteria"][crit]["groups"].get("all")
        best = best_model(a, crit)
        if not g or best is None:
            continue
        rows.append(
            [
                crit.replace("_", " "),
                a.label(best),
                fmt(g["models"][best]["mean_rank"]),
                fmt_p(g.get("headline", {}).get("p")),
                fmt_p(g["friedman"]["p"]),
                fmt(g["friedman"]["kendall_w"], 3),
                fmt(g["n_participants"]),
            ]
        )
    return header, rows


def _position_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    t = a.tables["position_bias"]
    k = int(t["initial_position"].max()) + 1 if len(t) else 0
    header = ["Criterion", *[f"position {i + 1}" for i in range(k)], "Friedman p", "W"]
    tests = a.tables["position_bias_tests"].set_index("criterion")
    rows = []
    for crit in a.criteria:
        sub = t[t["criterion"] == crit].set_index("initial_position")["mean_rank"]
        rows.append(
            [crit.replace("_", " "), *[fmt(sub.get(i)) for i in range(k)]]
            + [fmt_p(tests.at[crit, "p"]), fmt(tests.at[crit, "kendall_w"], 3)]
        )
    return header, rows


def _culture_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    header = ["Criterion", "Interaction statistic", "Permutation p", "Participants", "Cultures"]
    t = a.tables.get("culture_interaction")
    if t is None:
        return header, []
    rows = [
        [r.criterion.replace("_", " "), fmt(r.statistic, 3), fmt_p(r.p), fmt(r.n_participants), fmt(r.n_cultures)]
        for r in t.itertuples(index=False)
    ]
    return header, rows


def _kruskal_rows(a: Analysis, crit: str) -> tuple[list[str], list[list[str]]]:
    header = ["Model", "Kruskal–Wallis H", "df", "p", "p (Holm)"]
    t = a.tables.get("culture_kruskal")
    if t is None:
        return header, []
    sub = t[t["criterion"] == crit]
    rows = [
        [a.label(str(r.model_id)), fmt(r.statistic), fmt(r.df), fmt_p(r.p), fmt_p(r.p_holm)]
        for r in sub.itertuples(index=False)
    ]
    return header, rows


def _retest_text(a: Analysis) -> str:
    if not a.retest:
        return "No repeat pages in this export: test–retest reliability is not available."
    r = a.retest
    return (
        f"Test–retest: {r['n_participants']} participants ranked a page twice; Kendall's τ between their two rankings "
        f"has mean {fmt(r['mean_tau'], 2)} and median {fmt(r['median_tau'], 2)} (1 = identical, 0 = unrelated)."
    )


def _in_out_rows(a: Analysis) -> tuple[list[str], list[list[str]]] | None:
    t = a.tables.get("in_out_group")
    if t is None:
        return None
    header = [c.replace("_", " ") for c in t.columns]
    rows = [
        [fmt(v) if isinstance(v, float | np.floating) else str(v) for v in row] for row in t.itertuples(index=False)
    ]
    return header, rows


def _paper_rows(a: Analysis) -> tuple[list[str], list[list[str]]]:
    t = a.tables["paper_ranks"]
    t = t[t["page_culture"] == "all"]
    header = ["Criterion", "Model", "Mean rank", "Median", "SEM", "Judgments"]
    rows = [
        [str(r.criterion).replace("_", " "), a.label(str(r.model_id)), fmt(r.mean_rank), fmt(r.median_rank, 1)]
        + [fmt(r.sem, 3), fmt(r.n)]
        for r in t.itertuples(index=False)
    ]
    return header, rows


def _position_note(a: Analysis) -> str:
    if a.position_balance == "latin":
        return "balanced with a Latin square over models, so position effects cannot masquerade as model effects"
    if a.position_balance == "shuffle":
        return "shuffled per participant and page"
    return "as recorded in initial_position"


def render_html(a: Analysis, pngs: Mapping[str, bytes], captions: Mapping[str, str]) -> str:
    """The self-contained HTML report (figures embedded as base64 PNG; no external resources)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from markupsafe import Markup

    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    crit_ctx = []
    for crit in a.criteria:
        groups = a.results["criteria"][crit]["groups"]
        ctx: dict[str, Any] = {
            "id": crit,
            "title": crit.replace("_", " ").capitalize(),
            "question": a.questions.get(crit),
            "headline": headline(a, crit),
            "groups": [],
        }
        if "all" in groups:
            header, rows, best = _group_models_rows(a, groups["all"])
            ctx["models_table"] = Markup(html_table(header, rows, highlight=best))
            ctx["pairwise_table"] = Markup(html_table(*_pairwise_rows(a, groups["all"])))
        else:
            ctx["models_table"] = ctx["pairwise_table"] = Markup("<p>No rankings.</p>")
        ctx["tests_table"] = Markup(html_table(*_tests_rows(a, crit)))
        for group in a.cultures:
            if group not in groups:
                continue
            header, rows, best = _group_models_rows(a, groups[group])
            ctx["groups"].append(
                {
                    "title": a.culture_label(group),
                    "n_participants": groups[group]["n_participants"],
                    "models_table": Markup(html_table(header, rows, highlight=best)),
                    "pairwise_table": Markup(html_table(*_pairwise_rows(a, groups[group]))),
                }
            )
        crit_ctx.append(ctx)
    in_out = _in_out_rows(a)
    figures_ctx = [
        {"data": base64.b64encode(data).decode("ascii"), "alt": captions.get(name, name), "caption": captions.get(name)}
        for name, data in pngs.items()
    ]
    return env.get_template(TEMPLATE).render(
        title=a.title,
        source_name=Path(a.source).name,
        source_sha256=a.source_sha256,
        design_id=a.design_id,
        n_boot=a.n_boot,
        seed=a.seed,
        n_participants=a.results["n_participants"],
        n_excluded=a.results["n_excluded"],
        keep_excluded=a.keep_excluded,
        n_judgments=f"{_n_judgments(a):,}",
        criteria=crit_ctx,
        cultures=a.cultures,
        caveats=caveats(a),
        summary_table=Markup(html_table(*_summary_rows(a))),
        figures=figures_ctx,
        position_note=_position_note(a),
        position_table=Markup(html_table(*_position_rows(a))),
        retest_html=Markup(f"<p>{html.escape(_retest_text(a))}</p>"),
        in_out_table=Markup(html_table(*in_out)) if in_out else None,
        culture_caveat=stats.CULTURE_CAVEAT,
        culture_table=Markup(html_table(*_culture_rows(a))),
        kruskal=[
            {"title": crit.replace("_", " ").capitalize(), "table": Markup(html_table(*_kruskal_rows(a, crit)))}
            for crit in a.criteria
            if "culture_kruskal" in a.tables
        ],
        exclusion_lines=exclusion_lines(a),
        exclusion_table=Markup(""),
        paper_table=Markup(html_table(*_paper_rows(a))),
        schema=SCHEMA,
    )


def _n_judgments(a: Analysis) -> int:
    return sum(c["groups"]["all"]["n_judgments"] for c in a.results["criteria"].values() if "all" in c["groups"])


def render_markdown(a: Analysis, figure_files: Mapping[str, str], captions: Mapping[str, str]) -> str:
    out = [f"# {a.title}", ""]
    out.append(
        f"Responses `{Path(a.source).name}` (sha256 {a.source_sha256[:16]}…)"
        + (f", design `{a.design_id}`" if a.design_id else "")
        + f"; {a.results['n_participants']} participants analysed, {a.results['n_excluded']} excluded; "
        f"{_n_judgments(a):,} rankings; {a.n_boot} crossed-bootstrap resamples (participants × pages), seed {a.seed}."
    )
    out += ["", "## How to read this report", ""]
    out += [f"- {c}" for c in caveats(a)]
    out += ["", "## Summary", "", md_table(*_summary_rows(a))]
    for crit in a.criteria:
        groups = a.results["criteria"][crit]["groups"]
        out += ["", f"## {crit.replace('_', ' ').capitalize()}", ""]
        if crit in a.questions:
            out += [f"*{a.questions[crit]}*", ""]
        out += [headline(a, crit), ""]
        if "all" in groups:
            header, rows, _ = _group_models_rows(a, groups["all"])
            out += ["### All cultures", "", md_table(header, rows), ""]
        out += ["### Tests per group (participants as units)", "", md_table(*_tests_rows(a, crit)), ""]
        if "all" in groups:
            out += ["### Pairwise comparisons, all cultures", "", md_table(*_pairwise_rows(a, groups["all"])), ""]
        for group in a.cultures:
            if group in groups:
                header, rows, _ = _group_models_rows(a, groups[group])
                out += [f"### {a.culture_label(group)}", "", md_table(header, rows), ""]
                out += [md_table(*_pairwise_rows(a, groups[group])), ""]
    out += ["## Figures", ""]
    for name, path in figure_files.items():
        out += [f"![{captions.get(name, name)}]({path})", "", f"*{captions.get(name, '')}*", ""]
    out += ["## Position bias and reliability", "", f"Image order was {_position_note(a)}.", ""]
    out += [md_table(*_position_rows(a)), "", _retest_text(a), ""]
    in_out = _in_out_rows(a)
    if in_out:
        out += ["### In-group and out-group raters", "", md_table(*in_out), ""]
    out += ["## Culture comparison", "", f"> {stats.CULTURE_CAVEAT}", "", md_table(*_culture_rows(a)), ""]
    out += ["## Exclusions", ""] + [f"{line}\n" for line in exclusion_lines(a)]
    out += [
        "## The original analysis' views",
        "",
        "Judgment-level summaries as the original study reported them (descriptive only; judgments are not "
        "independent). Full tables: `tables/paper_ranks.csv`, `tables/paper_ranked_better.csv`.",
        "",
        md_table(*_paper_rows(a)),
        "",
        f"Machine-readable results: `results.json` (schema {SCHEMA}); every table is in `tables/`.",
        "",
    ]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------------ files
def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value) if math.isfinite(value) else None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(a: Analysis, out_dir: str | Path, *, progress: bool = True) -> dict[str, Path]:
    """Write every output of the report into ``out_dir``; returns the main paths."""
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results_path.write_text(
        json.dumps(_finite(a.results), indent=2, default=_json_default, allow_nan=False) + "\n", encoding="utf-8"
    )
    for name, table in a.tables.items():
        table.to_csv(out / "tables" / f"{name}.csv", index=False)
    pngs: dict[str, bytes] = {}
    captions: dict[str, str] = {}
    files: dict[str, str] = {}
    for spec in tqdm(make_figures(a), desc="figures", unit="fig", disable=not progress):
        pngs[spec.name] = figs.save_png(spec.figure, out / "figures" / f"{spec.name}.png")
        captions[spec.name] = spec.caption
        files[spec.name] = f"figures/{spec.name}.png"
    html_path = out / "report.html"
    html_path.write_text(render_html(a, pngs, captions), encoding="utf-8")
    md_path = out / "report.md"
    md_path.write_text(render_markdown(a, files, captions), encoding="utf-8")
    return {"html": html_path, "markdown": md_path, "results": results_path}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(
    responses: str | Path,
    out_dir: str | Path,
    *,
    design_path: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    keep_excluded: bool = False,
    progress: bool = True,
) -> Analysis:
    """Load, analyse and write the report; raises :class:`ResponsesError` / :class:`DesignError` on bad input."""
    design = load_design(design_path) if design_path else None
    df = read_responses(responses)
    if design is not None:
        df = attach_design(df, design)
    rows, info = apply_exclusions(df, keep_excluded=keep_excluded)
    a = analyse(rows, info, design=design, n_boot=n_boot, seed=seed, keep_excluded=keep_excluded, progress=progress)
    a.source = str(responses)
    a.source_sha256 = sha256_file(responses)
    write_report(a, out_dir, progress=progress)
    return a


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m analysis.report",
        description="Rank statistics of a ranking study (participant as the unit): HTML and Markdown report, "
        "results.json, tables and figures.",
    )
    p.add_argument("--responses", required=True, help="responses.csv exported by the app")
    p.add_argument("--design", help="study design TOML (model labels, criteria questions, orders)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--bootstrap", type=int, default=1000, help="crossed-bootstrap resamples, participants × pages (default 1000)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-excluded", action="store_true", help="analyse participants marked excluded too")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bootstrap < 0:
        print("error: --bootstrap must be >= 0", file=sys.stderr)
        return 2
    try:
        a = run(
            args.responses,
            args.out,
            design_path=args.design,
            n_boot=args.bootstrap,
            seed=args.seed,
            keep_excluded=args.keep_excluded,
            progress=not args.quiet,
        )
    except (ResponsesError, DesignError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"{a.results['n_participants']} participants analysed, {a.results['n_excluded']} excluded; "
        f"{_n_judgments(a):,} rankings"
    )
    print("\n".join(summary_lines(a)))
    print(f"report: {Path(args.out) / 'report.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
