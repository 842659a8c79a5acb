"""What the report says about the study as run: caveats, measured position balance, position bias, reliability,
culture comparison, exclusions, warnings and the original analysis' views (pure string / table functions)."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from analysis import stats
from analysis.fmt import fmt, fmt_ci, fmt_p
from analysis.summary import Analysis

Table = tuple[list[str], list[list[str]]]

UNIT_CAVEAT = (
    "Participants and pages are both random samples, so judgments are correlated within a participant and "
    "within a page (its images share their model-specific quality). Every interval comes from a crossed bootstrap "
    "that resamples participants and pages, and the headline test of equal mean ranks uses its covariance. The "
    "classic view, where the participant is the unit of analysis, stays alongside: Friedman with Kendall's W on each "
    "participant's mean rank of each model (exact where a group is small), pairwise Wilcoxon signed-rank, "
    "Holm-adjusted over all pairs of a group, with the matched-pairs rank-biserial as effect size; it ignores "
    "page-to-page variation and so overstates significance when images vary."
)
RANK_CAVEAT = (
    "Rank 1 is best on every criterion (best match, most representative, least stereotypical, least offensive)."
)
PL_CAVEAT = (
    "Plackett–Luce log-worths are centred to sum 0 within a group; a difference of 1 between two models means "
    "odds of e^1 ≈ 2.7 to 1 that the first is preferred in a head-to-head choice."
)
BEST_CAVEAT = (
    "A model is named best only when the headline test and the pairwise test of the lowest mean rank against the "
    "runner-up (crossed, Holm-adjusted) both reject at 5%; otherwise the lowest mean rank is reported as descriptive."
)


def min_group_caveat(a: Analysis) -> str:
    return (
        f"No interval is shown for a group of fewer than {a.min_group_size} participants (--min-group-size): "
        "percentile bootstrap intervals from so few participants cover the truth far less often than 95%."
    )


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
    out = [UNIT_CAVEAT, RANK_CAVEAT, PL_CAVEAT, BEST_CAVEAT, min_group_caveat(a)]
    if len(a.cultures) >= 2:
        out.append("Culture comparison: " + stats.CULTURE_CAVEAT)
    out.append(exclusion_lines(a)[0])
    out.append("Repeat (test–retest) pages are used only for reliability; attention-check pages are not analysed.")
    return out


def n_judgments(a: Analysis) -> int:
    return sum(c["groups"]["all"]["n_judgments"] for c in a.results["criteria"].values() if "all" in c["groups"])


# -- position -------------------------------------------------------------------------------------------------------
def position_rows(a: Analysis) -> Table:
    t = a.tables["position_bias"]
    k = int(t["initial_position"].max()) + 1 if len(t) else 0
    header = ["Criterion", *[f"position {i + 1} (95% CI)" for i in range(k)], "Friedman p", "W"]
    tests = a.tables["position_bias_tests"].set_index("criterion")
    rows = []
    for crit in a.criteria:
        sub = t[t["criterion"] == crit].set_index("initial_position")
        cells = [
            f"{fmt(sub.at[i, 'mean_rank'])} {fmt_ci(sub.at[i, 'ci_lo'], sub.at[i, 'ci_hi'])}" if i in sub.index else "–"
            for i in range(k)
        ]
        rows.append([crit.replace("_", " "), *cells, fmt_p(tests.at[crit, "p"]), fmt(tests.at[crit, "kendall_w"], 3)])
    return header, rows


def balance_rows(a: Analysis) -> Table:
    header = ["Group", "Images", "χ²", "df", "p", "Cramér's V", "Measured"]
    rows = []
    for name in a.groups:
        b = a.results.get("position_balance", {}).get(name)
        if b is None:
            rows.append([a.culture_label(name), "0", "–", "–", "–", "–", "no images"])
            continue
        rows.append(
            [a.culture_label(name), fmt(b["n_images"]), fmt(b["chi2"]), fmt(b["df"]), fmt_p(b["p"])]
            + [fmt(b["cramers_v"], 3), b["verdict"]]
        )
    return header, rows


def balance_sentence(a: Analysis) -> str:
    """The position-balance claim, measured from the data; the design's intention is only quoted."""
    asked = {"latin": "a Latin square over models", "shuffle": "a shuffle per participant and page"}
    intent = f"The design asked for {asked[a.position_balance]}. " if a.position_balance in asked else ""
    b = a.results.get("position_balance", {}).get("all")
    if not b:
        return intent + "Position balance could not be measured (no images)."
    measured = (
        f"Measured from the data (chi-square test of independence of model and initial position over "
        f"{b['n_images']:,} shown images): χ² = {fmt(b['chi2'])}, df = {b['df']}, p {_pp(b['p'])}, Cramér's V = "
        f"{fmt(b['cramers_v'], 3)} — positions are {b['verdict']}"
    )
    if b["verdict"] == "balanced":
        tail = ", so position effects cannot masquerade as model effects."
    elif b["verdict"] == "NOT balanced":
        tail = (
            ": models were shown in systematically different positions, so position effects can masquerade as model "
            "effects. Compare the position-adjusted Plackett–Luce column."
        )
    else:
        tail = f" ({b['reason']})." if b.get("reason") else "."
    unbalanced = [
        a.culture_label(g) for g, v in a.results.get("position_balance", {}).items() if v["verdict"] == "NOT balanced"
    ]
    per = f" NOT balanced in: {', '.join(unbalanced)}." if unbalanced and b["verdict"] != "NOT balanced" else ""
    return intent + measured + tail + per


def _pp(p: Any) -> str:
    s = fmt_p(p)
    return s if s.startswith("<") else f"= {s}"


# -- cultures, reliability, paper -------------------------------------------------------------------------------
def culture_rows(a: Analysis) -> Table:
    header = ["Criterion", "Interaction statistic", "Permutation p", "Participants", "Cultures"]
    t = a.tables.get("culture_interaction")
    if t is None:
        return header, []
    rows = [
        [r.criterion.replace("_", " "), fmt(r.statistic, 3), fmt_p(r.p), fmt(r.n_participants), fmt(r.n_cultures)]
        for r in t.itertuples(index=False)
    ]
    return header, rows


def kruskal_rows(a: Analysis, crit: str) -> Table:
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


def retest_text(a: Analysis) -> str:
    if not a.retest:
        return "No repeat pages in this export: test–retest reliability is not available."
    r = a.retest
    return (
        f"Test–retest: {r['n_participants']} participants ranked a page twice; Kendall's τ between their two rankings "
        f"has mean {fmt(r['mean_tau'], 2)} and median {fmt(r['median_tau'], 2)} (1 = identical, 0 = unrelated)."
    )


def retest_html(a: Analysis) -> str:
    return f"<p>{html.escape(retest_text(a))}</p>"


def in_out_rows(a: Analysis) -> Table | None:
    t = a.tables.get("in_out_group")
    if t is None:
        return None
    header = [c.replace("_", " ") for c in t.columns]
    rows = [
        [fmt(v) if isinstance(v, float | np.floating) else str(v) for v in row] for row in t.itertuples(index=False)
    ]
    return header, rows


def paper_rows(a: Analysis) -> Table:
    t = a.tables["paper_ranks"]
    t = t[t["page_culture"] == "all"]
    header = ["Criterion", "Model", "Mean rank", "Median", "SEM", "Judgments"]
    rows = [
        [str(r.criterion).replace("_", " "), a.label(str(r.model_id)), fmt(r.mean_rank), fmt(r.median_rank, 1)]
        + [fmt(r.sem, 3), fmt(r.n)]
        for r in t.itertuples(index=False)
    ]
    return header, rows
