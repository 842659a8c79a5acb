"""The statistics of one report: :func:`analyse` turns the analysed rows into an :class:`Analysis` (no files touched).

``results`` is the ``results.json`` object (DESIGN.md; new keys only at the end of objects, see README), ``tables``
the tidy tables written to ``tables/*.csv``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from analysis import stats
from analysis._tables import RankTable, percentile_ci
from analysis.balance import position_adjusted_pl, position_balance, position_model_counts
from analysis.crossed import Resampler
from analysis.headline import METHOD as HEADLINE_METHOD
from analysis.load import ResponsesError
from study_designs.schema import Design

SCHEMA = "scoft-study/results/v1"
MIN_GROUP_SIZE = 15  # below this many participants no interval is shown (percentile bootstrap under-covers)


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
    min_group_size: int = MIN_GROUP_SIZE
    warnings: list[str] = field(default_factory=list)

    def label(self, model: str) -> str:
        return self.model_labels.get(model, model)

    def culture_label(self, culture: str) -> str:
        return "All cultures" if culture == "all" else self.culture_labels.get(culture, culture)

    @property
    def groups(self) -> list[str]:
        return ["all", *self.cultures]


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


def empty_group(reason: str) -> dict:
    """A ``results.json`` GROUP for a group with no rankings (e.g. a design culture nobody from came)."""
    return {
        "n_participants": 0,
        "n_judgments": 0,
        "models": {},
        "friedman": {"statistic": None, "df": None, "p": None, "kendall_w": None, "n_participants": 0, "p_exact": None},
        "pairwise": [],
        "agreement": {"krippendorff_alpha_ordinal": None, "krippendorff_alpha_ordinal_ci": [None, None]},
        "headline": {"method": HEADLINE_METHOD, "statistic": None, "df": None, "df_denominator": None, "p": None}
        | {"n_boot_used": 0, "n_pages": 0},
        "n_partial_judgments": 0,
        "reasons": {"group": reason},
    }


def _group(rows: pd.DataFrame, *, n_boot: int, seed: int, min_group_size: int) -> dict:
    try:
        g = stats.summarise_group(rows, n_boot=n_boot, seed=seed)
    except ValueError as err:  # e.g. only repeat pages in this group
        if "no rankings" not in str(err):
            raise
        return empty_group("no rankings in this group (only repeat pages?)")
    if g["n_participants"] < min_group_size:
        g["reasons"]["intervals"] = (
            f"{g['n_participants']} participant(s), fewer than the minimum group size {min_group_size}: "
            "percentile bootstrap intervals under-cover in groups this small, so none is shown"
        )
    if (g.get("headline") or {}).get("p") is None:
        g["reasons"]["headline"] = (
            "the crossed-bootstrap test needs more participants and more pages than models (its covariance comes "
            "from the scarcer factor) and some resampling variability"
        )
    if "pl_log_worth" in g["reasons"]:  # no unadjusted MLE, so none with position worths either
        g["pl_position_adjusted"] = {"log_worth": {}, "se": {}, "position_log_worth": {}}
        g["pl_position_adjusted"]["reason"] = g["reasons"]["pl_log_worth"]
    else:
        g["pl_position_adjusted"] = position_adjusted_pl(rows)
    return g


def analyse(
    df: pd.DataFrame,
    info: Mapping[str, Any],
    *,
    design: Design | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    keep_excluded: bool = False,
    progress: bool = True,
    min_group_size: int = MIN_GROUP_SIZE,
    warnings: Sequence[str] = (),
) -> Analysis:
    """Run every statistic of the report on the analysed rows ``df`` (exclusions already applied).

    With a design, every design culture gets a group (an empty one, with its reason, when nobody ranked its pages).
    """
    if len(df) == 0:
        raise ResponsesError("no rankings left to analyse after exclusions")
    crit_order = [c.id for c in design.criteria] if design else None
    cult_order = [c.id for c in design.cultures] if design else None
    model_order = [m.id for m in design.models] if design else None
    criteria = _ordered_unique(df["criterion"], crit_order)
    present_cultures = _ordered_unique(df["page_culture"], cult_order)
    cultures = [*(cult_order or []), *[c for c in present_cultures if c not in (cult_order or [])]]
    models = _ordered_unique(df["model_id"], model_order)
    groups = ["all", *cultures]

    crit_mask = {c: _is(df, "criterion", c) for c in criteria}
    cult_mask = {c: _is(df, "page_culture", c) for c in present_cultures}
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
    total = len(criteria) * (len(groups) + 2) + 2
    with tqdm(total=total, desc="analysis", unit="step", disable=not progress) as bar:
        for crit in criteria:
            sub = df[crit_mask[crit]]
            out_groups: dict[str, Any] = {}
            for group in groups:
                bar.set_postfix_str(f"{crit} / {group}", refresh=False)
                if group != "all" and group not in cult_mask:
                    out_groups[group] = empty_group("no participants ranked pages of this culture")
                else:
                    rows = sub if group == "all" else sub[cult_mask[group][crit_mask[crit]]]
                    out_groups[group] = (
                        _group(rows, n_boot=n_boot, seed=seed, min_group_size=min_group_size)
                        if len(rows)
                        else empty_group("no rankings for this criterion in this group")
                    )
                bar.update()
            results["criteria"][crit] = {"groups": out_groups}

            pos_table, pos_test = stats.position_bias(sub)
            pos_table = pos_table.merge(_position_intervals(sub, n_boot, seed), on="initial_position", how="left")
            position_rows.append(pos_table.assign(criterion=crit))
            position_tests.append({"criterion": crit, **{k: v for k, v in pos_test.items() if k != "test"}})
            pmr = stats.participant_mean_ranks(sub)
            long = pmr.reset_index().melt(id_vars="participant_id", var_name="model_id", value_name="mean_rank")
            long["participant_id"] = long["participant_id"].astype(str)
            long["culture"] = long["participant_id"].map(participant_culture)
            dist_rows.append(long.assign(criterion=crit))
            bar.update()

            if len(present_cultures) >= 2:
                cc = stats.culture_comparison(sub, n_perm=n_boot, seed=seed)
                culture_rows.append({"criterion": crit, **cc["interaction"]})
                kruskal_rows.append(cc["kruskal"].assign(criterion=crit))
            bar.update()

        bar.set_postfix_str("position balance", refresh=False)
        balance, counts = {}, []
        for group in groups:
            rows = df if group == "all" else (df[cult_mask[group]] if group in cult_mask else df.iloc[:0])
            if len(rows):
                balance[group] = position_balance(rows, models=models)
                counts.append(position_model_counts(rows).stack().rename("n_images").reset_index().assign(group=group))
        bar.update()
        bar.set_postfix_str("reliability and paper views", refresh=False)
        retest = stats.test_retest(df)
        in_out = stats.in_out_group(df)
        paper = stats.paper_views(df)
        bar.update()

    all_warnings = [*warnings, *_partial_warnings(results)]
    results["inference"] = inference_block(n_boot, seed, min_group_size)
    results["position_balance"] = balance
    results["warnings"] = all_warnings

    tables = _tables(results, criteria, groups)
    tables["position_bias"] = _front(pd.concat(position_rows, ignore_index=True), "criterion")
    tables["position_bias_tests"] = pd.DataFrame(position_tests)
    tables["position_model_counts"] = _front(pd.concat(counts, ignore_index=True), "group")
    tables["position_balance"] = pd.DataFrame([{"group": g, **b} for g, b in balance.items()])
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
        min_group_size=min_group_size,
        warnings=all_warnings,
    )


def inference_block(n_boot: int, seed: int, min_group_size: int = MIN_GROUP_SIZE) -> dict[str, Any]:
    """How the intervals and headline tests of ``results.json`` were computed."""
    return {
        "method": "crossed bootstrap over participants and pages (pigeonhole; percentile intervals)",
        "n_boot": int(n_boot),
        "seed": int(seed),
        "headline_test": HEADLINE_METHOD,
        "classic_tests": "participant-level Friedman and Wilcoxon signed-rank with Holm",
        "min_group_size": int(min_group_size),
    }


def _position_intervals(sub: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """95% crossed-bootstrap interval of the mean rank at each initial position."""
    t = RankTable.from_long(sub, item_col="initial_position")
    resampler, _ = Resampler.for_table(sub, t, n_boot, seed)
    lo, hi = percentile_ci(resampler.mean_ranks(t))
    return pd.DataFrame({"initial_position": t.models.to_numpy(dtype=np.int64), "ci_lo": lo, "ci_hi": hi})


def _partial_warnings(results: dict) -> list[str]:
    out = []
    for crit, c in results["criteria"].items():
        g = c["groups"].get("all", {})
        n_partial, n = g.get("n_partial_judgments", 0), g.get("n_judgments", 0)
        if n_partial:
            out.append(
                f"{crit}: {n_partial:,} of {n:,} rankings ({n_partial / n:.0%}) leave out some model. Mean ranks and "
                "the tests on them are rebuilt from pairwise comparisons (a missing image cannot move them); "
                "Plackett–Luce uses partial rankings natively; rank shares and top-1 shares pool rankings of "
                "different lengths."
            )
    return out


def _questions(design: Design, criteria: Sequence[str]) -> dict[str, str]:
    out = {}
    for c in design.criteria:
        if c.id in criteria:
            text = c.question.replace("{adjective}", "[culture]")
            out[c.id] = f"{text} (1 = {c.best_label.lower()}, last = {c.worst_label.lower()})"
    return out


def _front(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    return df[[*cols, *[c for c in df.columns if c not in cols]]]


def _tables(results: dict, criteria: list[str], groups: list[str]) -> dict[str, pd.DataFrame]:
    summary, shares, tests, pairs, adjusted = [], [], [], [], []
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
            adj = g.get("pl_position_adjusted") or {}
            for model, v in adj.get("log_worth", {}).items():
                adjusted.append({"criterion": crit, "group": group, "model_id": model, "log_worth": v})
                adjusted[-1]["se"] = adj["se"][model]
            tests.append(
                {
                    "criterion": crit,
                    "group": group,
                    "n_participants": g["n_participants"],
                    "n_judgments": g["n_judgments"],
                    **{f"friedman_{k}": v for k, v in g["friedman"].items() if k != "n_participants"},
                    "krippendorff_alpha_ordinal": g["agreement"]["krippendorff_alpha_ordinal"],
                    "n_partial_judgments": g.get("n_partial_judgments", 0),
                    "reasons": "; ".join(f"{k}: {v}" for k, v in g.get("reasons", {}).items()),
                }
            )
            pairs.extend({"criterion": crit, "group": group, **p} for p in g["pairwise"])
    return {
        "summary": pd.DataFrame(summary),
        "rank_shares": pd.DataFrame(shares),
        "tests": pd.DataFrame(tests),
        "pairwise": pd.DataFrame(pairs),
        "pl_position_adjusted": pd.DataFrame(adjusted, columns=["criterion", "group", "model_id", "log_worth", "se"]),
    }
