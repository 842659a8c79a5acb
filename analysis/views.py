"""What the report says about each criterion: tables rows, headlines and the evidence rule for naming a best model.

Pure functions from an :class:`~analysis.summary.Analysis` to strings and ``(header, rows)`` tables. The headline test
is the crossed-bootstrap Wald test (participants and pages random; ``analysis.headline``); where it could not be
computed, the classic Friedman test (exact where the group is small). A model is named "best" only when that test
rejects at 5% AND the pairwise test of the lowest mean rank against the runner-up (crossed, Holm-adjusted; else
Wilcoxon, Holm) rejects at 5%; otherwise the report says that no model is separated. A "no difference" sentence
appears only next to a computed test; where an estimate is missing the group's reason is shown.
"""

from __future__ import annotations

from typing import Any

from analysis.fmt import fmt, fmt_ci, fmt_p, fmt_pct
from analysis.summary import Analysis

ALPHA = 0.05
Table = tuple[list[str], list[list[str]]]
CROSSED = "crossed-bootstrap Wald"


def group(a: Analysis, crit: str, name: str = "all") -> dict | None:
    g = a.results["criteria"].get(crit, {}).get("groups", {}).get(name)
    return g if g and g.get("n_judgments") else None


def intervals_shown(g: dict) -> bool:
    return "intervals" not in g.get("reasons", {})


def omnibus_p(g: dict) -> tuple[float | None, str]:
    """The headline p-value and its label: the crossed test, else exact Friedman where computed, else Friedman."""
    h = g.get("headline") or {}
    if h.get("p") is not None:
        return h["p"], CROSSED
    f = g["friedman"]
    if f.get("p_exact") is not None:
        return f["p_exact"], "exact Friedman"
    return f.get("p"), "Friedman"


def pair_p(pair: dict) -> tuple[float | None, str]:
    """Holm-adjusted p of a pair: the crossed test where computed, else the Wilcoxon signed-rank test."""
    if pair.get("p_crossed_holm") is not None:
        return pair["p_crossed_holm"], "crossed test, Holm"
    return pair.get("p_holm"), "Wilcoxon, Holm"


def ranked(g: dict) -> list[str]:
    """Models by mean rank (best first), models without a mean rank left out."""
    pairs = [(m["mean_rank"], k) for k, m in g["models"].items() if m["mean_rank"] is not None]
    return [k for _, k in sorted(pairs)]


def _pair(g: dict, a: str, b: str) -> dict | None:
    for p in g["pairwise"]:
        if {p["a"], p["b"]} == {a, b}:
            return p
    return None


def no_test_reason(g: dict) -> str:
    r = g.get("reasons", {})
    return r.get("headline") or r.get("friedman") or "too few participants"


def separated(a: Analysis, g: dict) -> tuple[str | None, str]:
    """(best model, why) for one group — None unless the evidence separates it from the runner-up."""
    order = ranked(g)
    if len(order) < 2:
        return None, "fewer than two models have a mean rank"
    p, label = omnibus_p(g)
    if p is None:
        return None, f"no test computed ({no_test_reason(g)})"
    if p >= ALPHA:
        return None, f"{label} p {p_phrase(p)}: no difference detected"
    pair = _pair(g, order[0], order[1])
    q, how = pair_p(pair) if pair else (None, "")
    if q is None:
        return None, "no pairwise test of the two lowest mean ranks"
    if q >= ALPHA:
        return None, f"{a.label(order[0])} is not separated from {a.label(order[1])} ({how} p {p_phrase(q)})"
    rb = pair.get("rank_biserial")
    return order[0], (
        f"ranked better than the runner-up {a.label(order[1])} ({how} p {p_phrase(q)}, "
        f"matched-pairs rank-biserial {fmt(abs(rb) if rb is not None else None)})"
    )


def best_model(a: Analysis, crit: str, name: str = "all") -> tuple[str | None, str]:
    """(best model, why) — the model is None unless the evidence separates it from the runner-up."""
    g = group(a, crit, name)
    return separated(a, g) if g is not None else (None, "no rankings")


def p_phrase(p: Any) -> str:
    s = fmt_p(p)
    return s if s.startswith("<") else f"= {s}"


def _test_phrase(g: dict) -> str:
    h, f = g.get("headline") or {}, g["friedman"]
    p, label = omnibus_p(g)
    exact = f.get("p_exact") is not None
    classic = (
        f"Classic view, {'exact ' if exact else ''}Friedman on participants' mean ranks: χ² = {fmt(f['statistic'])}, "
        f"p {p_phrase(f['p_exact'] if exact else f['p'])}, Kendall's W = {fmt(f['kendall_w'], 3)}"
    )
    if label == CROSSED:
        return (
            "Test of equal mean ranks with participants and pages as random factors (crossed-bootstrap Wald, "
            f"{g['n_participants']} participants × {h.get('n_pages')} pages): T = {fmt(h['statistic'])}, "
            f"F({h['df']}, {h['df_denominator'] - h['df'] + 1}) p {p_phrase(p)}. {classic}"
        )
    return f"No crossed test ({no_test_reason(g)}). {classic}"


def headline(a: Analysis, crit: str) -> str:
    g = group(a, crit)
    if g is None:
        return "No rankings for this criterion."
    p, _ = omnibus_p(g)
    order = ranked(g)
    if p is None:
        lead = f"No test computed: {no_test_reason(g)}."
        low = g["models"][order[0]] if order else None
        tail = f" Lowest mean rank: {a.label(order[0])} ({fmt(low['mean_rank'])}; descriptive only)." if low else ""
        return lead + tail
    test = _test_phrase(g)
    best, why = separated(a, g)
    if p >= ALPHA:
        return f"{test} — no difference between the models is detected at the 5% level; no model is named best."
    if best is None:
        return f"{test} — the models differ, but no single model is best: {why}."
    m = g["models"][best]
    ci = f", 95% CI {fmt_ci(*m['mean_rank_ci'])}" if intervals_shown(g) else ""
    return f"{test} — best: {a.label(best)} (mean rank {fmt(m['mean_rank'])}{ci}), {why}."


def models_rows(a: Analysis, g: dict) -> tuple[list[str], list[list[str]], int | None]:
    header = ["Model", "Mean rank", "95% CI", "Top-1", "PL log-worth", "95% CI", "PL, position-adjusted (SE)"]
    show = intervals_shown(g)
    adj = g.get("pl_position_adjusted") or {}
    rows, best = [], None
    crit_best = separated(a, g)[0] if g.get("n_judgments") else None
    for i, model in enumerate(m for m in a.models if m in g["models"]):
        m = g["models"][model]
        lw = adj.get("log_worth", {}).get(model)
        rows.append(
            [
                a.label(model),
                fmt(m["mean_rank"]),
                fmt_ci(*m["mean_rank_ci"]) if show else "not shown",
                fmt_pct(m["top1_share"]),
                fmt(m["pl_log_worth"]),
                fmt_ci(*m["pl_log_worth_ci"]) if show else "not shown",
                f"{fmt(lw)} ({fmt(adj['se'].get(model))})" if lw is not None else "–",
            ]
        )
        if model == crit_best:
            best = i
    return header, rows, best


def group_notes(a: Analysis, g: dict) -> list[str]:
    """A sentence for every missing estimate of a group (why an interval, a test or a fit is not shown)."""
    names = {
        "group": "Group",
        "headline": "Crossed headline test",
        "intervals": "Intervals",
        "friedman": "Friedman test",
        "friedman_p_exact": "Exact Friedman p",
        "pl_log_worth": "Plackett–Luce",
        "mean_rank": "Mean rank",
    }
    out = [f"{names.get(k, k)}: {v}." for k, v in g.get("reasons", {}).items()]
    adj = g.get("pl_position_adjusted") or {}
    if adj.get("reason"):
        out.append(f"Position-adjusted Plackett–Luce: not estimated — {adj['reason']}.")
    elif adj.get("position_log_worth"):
        pos = ", ".join(f"position {int(q) + 1}: {fmt(v)}" for q, v in adj["position_log_worth"].items())
        out.append(f"Position log-worths of the adjusted fit (centred; higher = ranked better): {pos}.")
    return out


def pairwise_rows(a: Analysis, g: dict) -> Table:
    header = ["A", "B", "A ranked above B", "95% CI", "Mean rank A − B", "Crossed p (Holm)"]
    header += ["Wilcoxon W", "p", "p (Holm)", "Rank-biserial (A better > 0)"]
    show = intervals_shown(g)
    rows = []
    for p in g["pairwise"]:
        ci = (
            fmt_ci(*p["win_rate_ci"], digits=2) if show and p.get("win_rate_ci") else ("not shown" if not show else "–")
        )
        rows.append(
            [a.label(p["a"]), a.label(p["b"]), fmt_pct(p["win_rate_a"]), ci, fmt(p.get("mean_rank_difference"))]
            + [fmt_p(p.get("p_crossed_holm")), fmt(p["statistic"], 1), fmt_p(p["p"]), fmt_p(p["p_holm"])]
            + [fmt(p.get("rank_biserial"))]
        )
    return header, rows


def tests_rows(a: Analysis, crit: str) -> Table:
    header = ["Group", "Participants", "Pages", "Rankings", "Crossed Wald T", "df", "p", "Friedman χ²", "p"]
    header += ["p (exact)", "Kendall's W", "Krippendorff α", "α 95% CI", "Partial rankings"]
    rows = []
    for name, g in a.results["criteria"][crit]["groups"].items():
        f, h = g["friedman"], g.get("headline") or {}
        alpha_ci = g["agreement"].get("krippendorff_alpha_ordinal_ci")
        show = intervals_shown(g) and g.get("n_judgments")
        rows.append(
            [
                a.culture_label(name),
                fmt(g["n_participants"]),
                fmt(h.get("n_pages")),
                fmt(g["n_judgments"]),
                fmt(h.get("statistic")),
                f"{h['df']}, {h['df_denominator'] - h['df'] + 1}" if h.get("p") is not None else "–",
                fmt_p(h.get("p")),
                fmt(f["statistic"]),
                fmt_p(f["p"]),
                fmt_p(f.get("p_exact")),
                fmt(f["kendall_w"], 3),
                fmt(g["agreement"]["krippendorff_alpha_ordinal"], 3),
                fmt_ci(*alpha_ci, digits=3) if show and alpha_ci else "–",
                fmt(g.get("n_partial_judgments", 0)),
            ]
        )
    return header, rows


def summary_rows(a: Analysis) -> Table:
    header = ["Criterion", "Best model (evidence)", "Lowest mean rank", "Headline p", "Classic Friedman p"]
    header += ["Kendall's W", "Participants"]
    rows = []
    for crit in a.criteria:
        g = group(a, crit)
        if g is None:
            rows.append([crit.replace("_", " "), "no rankings", "–", "–", "–", "–", "0"])
            continue
        best, _ = best_model(a, crit)
        order = ranked(g)
        p, label = omnibus_p(g)
        f = g["friedman"]
        exact = f.get("p_exact") is not None
        rows.append(
            [
                crit.replace("_", " "),
                a.label(best) if best else "none separated",
                f"{a.label(order[0])} ({fmt(g['models'][order[0]]['mean_rank'])})" if order else "–",
                f"{fmt_p(p)} ({label})" if p is not None else "no test",
                f"{fmt_p(f['p_exact'] if exact else f['p'])}{' (exact)' if exact else ''}",
                fmt(f["kendall_w"], 3),
                fmt(g["n_participants"]),
            ]
        )
    return header, rows


def summary_lines(a: Analysis) -> list[str]:
    """Short per-criterion summary for the terminal."""
    lines = []
    width = max(len(c) for c in a.criteria)
    for crit in a.criteria:
        g = group(a, crit)
        if g is None:
            lines.append(f"{crit:<{width}}  no rankings")
            continue
        best, _ = best_model(a, crit)
        h, f = g.get("headline") or {}, g["friedman"]
        order = ranked(g)
        low = f"lowest mean rank {a.label(order[0])} ({fmt(g['models'][order[0]]['mean_rank'])})" if order else ""
        exact = "exact " if f.get("p_exact") is not None else ""
        classic = f["p_exact"] if exact else f["p"]
        lines.append(
            f"{crit:<{width}}  {low}  best: {a.label(best) if best else 'none separated'}"
            f"  crossed p {fmt_p(h.get('p'))}  {exact}Friedman p {fmt_p(classic)}"
            f"  W {fmt(f['kendall_w'], 3)}  n {g['n_participants']}"
        )
    return lines
