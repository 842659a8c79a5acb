"""Rank statistics on the long responses table, with the participant as the unit of analysis.

Every function is pure: it takes the long table (one row per participant, page, criterion, image; columns as in
``responses.csv``) and returns a tidy DataFrame or a dict. Unless it says otherwise a function expects ONE criterion
(a subset such as ``df[df.criterion == "offensiveness"]``). Repeat pages (``is_repeat``) are left out of everything
except :func:`test_retest`.

Uncertainty comes from a crossed bootstrap that resamples participants and pages (percentile intervals, seeded;
``resample="participants"`` gives the participant-only bootstrap). The table is reduced once to per-judgment
sufficient statistics; each resample weights a judgment by its participant's times its page's multiplicity, so every
statistic over all resamples is a matrix product (see ``analysis.crossed``); Plackett–Luce fits all resamples at once
(``analysis._pl``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from analysis import headline
from analysis._alpha import LEVELS, alpha_from_coincidences, coincidences, krippendorff_alpha
from analysis._inference import (
    friedman_exact_p,
    friedman_matrix,
    holm,
    kendall_tau_rows,
    kruskal_groups,
    pairwise_wilcoxon_matrix,
)
from analysis._pl import (
    constrained_se,
    fit_counts,
    information,
    mle_exists,
    plackett_luce,
)
from analysis._tables import RankTable, codes, main_rows, percentile_ci
from analysis.crossed import GroupResamples, Resampler, alpha_resamples, resample_group
from analysis.effects import group_additions

__all__ = [
    "LEVELS",
    "CULTURE_CAVEAT",
    "culture_comparison",
    "friedman",
    "friedman_exact_p",
    "friedman_matrix",
    "holm",
    "in_out_group",
    "krippendorff_alpha",
    "kruskal_groups",
    "mean_ranks",
    "page_alpha",
    "pairwise_wilcoxon",
    "pairwise_wilcoxon_matrix",
    "paper_views",
    "participant_mean_ranks",
    "pl_worths",
    "plackett_luce",
    "position_bias",
    "rank_shares",
    "summarise_group",
    "test_retest",
    "top1_share",
    "win_rates",
]

CULTURE_CAVEAT = (
    "Each culture's participants ranked images made from that culture's own prompts, so a difference between "
    "cultures mixes who judged with what was judged; it is not an effect of rater culture alone."
)


# -- helpers -------------------------------------------------------------------------------------------------------
def _one_criterion(df: pd.DataFrame) -> None:
    if "criterion" in df.columns:
        crits = pd.unique(df["criterion"].dropna())
        if len(crits) > 1:
            raise ValueError(
                f"expected the rows of one criterion, got {len(crits)} ({', '.join(map(str, crits[:5]))}); "
                "subset first, e.g. df[df.criterion == 'offensiveness']"
            )
    if len(df) == 0:
        raise ValueError("no rankings to analyse (empty table)")


def _table(df: pd.DataFrame) -> RankTable:
    _one_criterion(df)
    table = RankTable.from_long(df)
    if table.n_judgments == 0:
        raise ValueError("no rankings to analyse (only repeat pages?)")
    return table


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _clean(value: Any) -> Any:
    """Plain-JSON value: NaN/inf become None, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


# -- descriptive ranks -----------------------------------------------------------------------------------------------
def participant_mean_ranks(df: pd.DataFrame) -> pd.DataFrame:
    """Each participant's mean rank of each model (index ``participant_id``, one column per ``model_id``)."""
    t = _table(df)
    out = pd.DataFrame(t.participant_means(), index=t.participants, columns=t.models)
    out.index.name, out.columns.name = "participant_id", "model_id"
    return out


RESAMPLE = ("crossed", "participants")


def _resampler(df: pd.DataFrame, t: RankTable, n_boot: int, seed: int, resample: str) -> GroupResamples:
    if resample not in RESAMPLE:
        raise ValueError(f"resample must be one of {RESAMPLE}, got {resample!r}")
    return resample_group(t, Resampler.for_table(df, t, n_boot, seed, pages=resample == "crossed")[0])


def _mean_rank_frame(t: RankTable, r: GroupResamples) -> pd.DataFrame:
    point = t.pooled_mean_ranks()
    boot = r.mean_ranks
    lo, hi = percentile_ci(boot)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # models never ranked give NaN
        sem = np.nanstd(boot, axis=0, ddof=1) if boot.shape[0] > 1 else np.full(t.n_models, np.nan)
        median = np.nanmedian(t.ranks, axis=0) if t.n_judgments else np.full(t.n_models, np.nan)
    return pd.DataFrame(
        {"model_id": t.models, "mean_rank": point, "ci_lo": lo, "ci_hi": hi, "median_rank": median, "sem": sem}
    )


def mean_ranks(df: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, resample: str = "crossed") -> pd.DataFrame:
    """Mean rank of each model over all judgments, with a bootstrap percentile CI.

    ``sem`` is the bootstrap standard error, ``median_rank`` the median over judgments. ``resample``: ``crossed``
    (participants and pages) or ``participants`` (participants only).
    """
    t = _table(df)
    return _mean_rank_frame(t, _resampler(df, t, n_boot, seed, resample))


def rank_shares(df: pd.DataFrame) -> pd.DataFrame:
    """Share of judgments in which each model received each rank (``model_id, rank, share``)."""
    t = _table(df)
    hist = t.rank_histogram.sum(axis=0)  # (K, V)
    share = _ratio(hist, hist.sum(axis=1, keepdims=True))
    k, v = hist.shape
    return pd.DataFrame(
        {"model_id": np.repeat(t.models.to_numpy(), v), "rank": np.tile(np.arange(1, v + 1), k), "share": share.ravel()}
    )


def top1_share(df: pd.DataFrame) -> pd.DataFrame:
    """Share of judgments in which each model was ranked first."""
    t = _table(df)
    hist = t.rank_histogram.sum(axis=0)
    return pd.DataFrame({"model_id": t.models, "top1_share": _ratio(hist[:, 0], hist.sum(axis=1))})


def _win_frame(t: RankTable, r: GroupResamples) -> pd.DataFrame:
    k = t.n_models
    wins, both = t.wins.reshape(t.n_participants, k * k), t.both.reshape(t.n_participants, k * k)
    point = _ratio(wins.sum(axis=0), both.sum(axis=0))
    lo, hi = percentile_ci(r.win_rates.reshape(r.n_boot, k * k))
    a, b = np.divmod(np.arange(k * k), k)
    keep = a != b
    models = t.models.to_numpy()
    return pd.DataFrame(
        {
            "a": models[a[keep]],
            "b": models[b[keep]],
            "win_rate_a": point[keep],
            "ci_lo": lo[keep],
            "ci_hi": hi[keep],
            "n": both.sum(axis=0)[keep].astype(np.int64),
        }
    )


def win_rates(df: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, resample: str = "crossed") -> pd.DataFrame:
    """For every ordered pair (a, b): share of judgments ranking a above b ("% ranked better").

    Bootstrap percentile CI (``resample`` as in :func:`mean_ranks`); ``n`` is the number of judgments that ranked both.
    """
    t = _table(df)
    return _win_frame(t, _resampler(df, t, n_boot, seed, resample))


# -- tests on participant mean ranks ------------------------------------------------------------------------------
def friedman(df: pd.DataFrame) -> dict:
    """Friedman test on the participant × model matrix of mean ranks; Kendall's W = statistic / (n (K − 1)).

    Participants who never ranked some model are left out (``n_participants`` says how many remain).
    """
    return friedman_matrix(participant_mean_ranks(df).to_numpy())


def pairwise_wilcoxon(df: pd.DataFrame, **wilcoxon_kwargs) -> pd.DataFrame:
    """Every pair of models: Wilcoxon signed-rank on participants' mean-rank differences a − b, Holm over all pairs.

    ``win_rate_a`` is the share of judgments ranking a above b; a negative difference (smaller rank) favours a.
    """
    return _pairwise_frame(_table(df), **wilcoxon_kwargs)


def _pairwise_frame(t: RankTable, **wilcoxon_kwargs) -> pd.DataFrame:
    means = t.participant_means()
    out = pairwise_wilcoxon_matrix(means, list(t.models), **wilcoxon_kwargs)
    wins = t.wins.sum(axis=0)
    both = t.both.sum(axis=0)
    index = {m: i for i, m in enumerate(t.models)}
    ia = out["a"].map(index).to_numpy()
    ib = out["b"].map(index).to_numpy()
    out["win_rate_a"] = _ratio(wins[ia, ib], both[ia, ib])
    return out[["a", "b", "win_rate_a", "statistic", "p", "p_holm"]]


# -- Plackett–Luce ----------------------------------------------------------------------------------------------------
def _pl_frame(t: RankTable, r: GroupResamples) -> pd.DataFrame:
    types = r.types
    total = r.stage_counts.sum(axis=0)
    k = t.n_models
    if total.sum() == 0 or not mle_exists(total, types, types.sets.T @ total > 0)[0]:
        theta, se = np.full(k, np.nan), np.full(k, np.nan)
        boot = np.full((r.n_boot, k), np.nan)
    else:
        theta = fit_counts(total[None, :], types, max_iter=200, tol=1e-10)[0][0]
        se = constrained_se(information(theta, total, types), ~np.isnan(theta))
        boot = fit_counts(r.stage_count_sums, types, start=theta)[0] if r.n_boot else np.zeros((0, k))
    lo, hi = percentile_ci(boot)
    return pd.DataFrame({"model_id": t.models, "pl_log_worth": theta, "se": se, "ci_lo": lo, "ci_hi": hi})


def pl_worths(df: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, resample: str = "crossed") -> pd.DataFrame:
    """Plackett–Luce log-worths (MLE over all judgments, centred to sum 0), model-based SE, bootstrap CI.

    NaN where the MLE does not exist (e.g. a model ranked last in every judgment); resamples in which it does not
    exist are left out of the percentile interval.
    """
    t = _table(df)
    return _pl_frame(t, _resampler(df, t, n_boot, seed, resample))


# -- agreement ------------------------------------------------------------------------------------------------------
def page_alpha(df: pd.DataFrame, level: str = "ordinal") -> float:
    """Krippendorff's alpha with units = images (page × model), raters = participants, values = ranks.

    The coincidence matrices of all pages are pooled (summed) before alpha is computed.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; use one of {LEVELS}")
    _one_criterion(df)
    rows = main_rows(df)
    rows = rows[rows["rank"].notna()]
    unit = np.zeros(len(rows), dtype=np.int64)
    for col in ("criterion", "page_id", "model_id"):
        if col in rows.columns:
            c, u = codes(rows[col])
            unit = unit * max(len(u), 1) + c
    unit = pd.factorize(unit)[0]
    value_code, values = codes(rows["rank"].astype(np.float64))
    n_units, n_values = (int(unit.max()) + 1 if len(unit) else 0), len(values)
    counts = np.bincount(unit * n_values + value_code, minlength=n_units * n_values).reshape(n_units, n_values)
    return alpha_from_coincidences(coincidences(counts), values.to_numpy(dtype=np.float64), level)


# -- design checks ----------------------------------------------------------------------------------------------------
def position_bias(df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Mean rank by initial (0-based) display position, and a Friedman test on participant × position mean ranks.

    With balanced positions a model effect does not masquerade as a position effect; a small p means participants
    favoured some screen positions.
    """
    _one_criterion(df)
    t = RankTable.from_long(df, item_col="initial_position")
    counts = t.rank_counts.sum(axis=0)
    table = pd.DataFrame(
        {
            "initial_position": t.models.to_numpy(dtype=np.int64),
            "mean_rank": t.pooled_mean_ranks(),
            "n": counts.astype(np.int64),
        }
    )
    test = {"test": "friedman on participant × initial_position mean ranks", **friedman_matrix(t.participant_means())}
    return table, test


def _participant_culture(df: pd.DataFrame, participants: pd.Index, column: str) -> np.ndarray:
    first = main_rows(df).groupby("participant_id", observed=True, sort=False)[column].first()
    return first.reindex(participants).astype(str).to_numpy()


def culture_comparison(
    df: pd.DataFrame, *, n_perm: int = 1000, seed: int = 0, culture_col: str = "participant_culture"
) -> dict:
    """Compare cultures on one criterion, participants as units.

    Returns ``estimates`` (mean rank per culture × model), ``kruskal`` (per model: Kruskal–Wallis across cultures on
    participants' mean ranks, Holm over models), ``interaction`` (permutation test of the model × culture interaction:
    participants' culture labels are shuffled; statistic = Σ_c n_c ‖profile_c − profile‖² on participants' centred
    mean-rank profiles) and ``caveat``.
    """
    t = _table(df)
    culture = _participant_culture(df, t.participants, culture_col)
    means = t.participant_means()
    models = list(t.models)

    rows_ = main_rows(df)
    est = (
        rows_.groupby([culture_col, "model_id"], observed=True)
        .agg(mean_rank=("rank", "mean"), n_judgments=("rank", "size"), n_participants=("participant_id", "nunique"))
        .reset_index()
        .rename(columns={culture_col: "culture"})
    )

    kw_rows = []
    for k, model in enumerate(models):
        groups = {c: means[culture == c, k] for c in pd.unique(culture)}
        kw_rows.append({"model_id": model, **kruskal_groups(groups)})
    kruskal = pd.DataFrame(kw_rows)
    kruskal["p_holm"] = holm(kruskal["p"].to_numpy())

    complete = ~np.isnan(means).any(axis=1)
    x = means[complete]
    x = x - x.mean(axis=1, keepdims=True)
    lab_code, labels = pd.factorize(culture[complete])
    n_c = len(labels)
    interaction = {"statistic": float("nan"), "p": float("nan"), "n_perm": int(n_perm)}
    interaction.update(n_participants=int(len(x)), n_cultures=int(n_c))
    if n_c >= 2 and len(x) > n_c:

        def stat(lab: np.ndarray) -> np.ndarray:
            """Between-culture sum of squares for each row of labels (R, n)."""
            r = lab.shape[0]
            flat = (np.arange(r)[:, None] * n_c + lab).ravel()
            size = np.bincount(flat, minlength=r * n_c).reshape(r, n_c)
            out = np.zeros(r)
            grand = x.mean(axis=0)
            for k in range(x.shape[1]):
                s = np.bincount(flat, weights=np.tile(x[:, k], r), minlength=r * n_c).reshape(r, n_c)
                mean_ck = _ratio(s, size)
                out += np.nansum(size * (mean_ck - grand[k]) ** 2, axis=1)
            return out

        observed = float(stat(lab_code[None, :])[0])
        rng = np.random.default_rng(seed)
        perms = rng.permuted(np.tile(lab_code, (n_perm, 1)), axis=1) if n_perm > 0 else np.zeros((0, len(lab_code)))
        null = stat(perms.astype(np.int64)) if n_perm > 0 else np.zeros(0)
        p = (1 + np.sum(null >= observed - 1e-12 * max(1.0, abs(observed)))) / (1 + n_perm)
        interaction.update(statistic=observed, p=float(p))
    return {"estimates": est, "kruskal": kruskal, "interaction": interaction, "caveat": CULTURE_CAVEAT}


def in_out_group(df: pd.DataFrame) -> pd.DataFrame | None:
    """Mean rank per page culture × model for raters of that culture (in) and of other cultures (out).

    ``None`` when every participant only ranked pages of their own culture.
    """
    rows = main_rows(df)
    same = rows["participant_culture"].astype(str).to_numpy() == rows["page_culture"].astype(str).to_numpy()
    if same.all():
        return None
    rows = rows.assign(rater_group=np.where(same, "in", "out"))
    keys = [c for c in ("criterion", "page_culture", "model_id", "rater_group") if c in rows.columns]
    return (
        rows.groupby(keys, observed=True)
        .agg(mean_rank=("rank", "mean"), n_participants=("participant_id", "nunique"), n_judgments=("rank", "size"))
        .reset_index()
    )


def test_retest(df: pd.DataFrame) -> pd.DataFrame:
    """Kendall's tau-b between each repeat ranking and the same participant's first ranking of that page.

    One row per participant with repeats: mean tau over their repeated (page, criterion) rankings, and how many
    distinct pages were repeated.
    """
    cols = ["participant_id", "kendall_tau", "n_pages"]
    if "is_repeat" not in df.columns:
        return pd.DataFrame(columns=cols)
    rep = df["is_repeat"].to_numpy(dtype=bool)
    if not rep.any():
        return pd.DataFrame(columns=cols)
    keys = [c for c in ("participant_id", "page_id", "criterion") if c in df.columns]
    key = np.zeros(len(df), dtype=np.int64)
    for col in keys:
        c, u = codes(df[col])
        key = key * max(len(u), 1) + c
    jid, _ = pd.factorize(key)
    mcode, models = codes(df["model_id"])
    n_j = int(jid.max()) + 1
    first = np.full((n_j, len(models)), np.nan)
    again = np.full((n_j, len(models)), np.nan)
    r = df["rank"].to_numpy(dtype=np.float64)
    first[jid[~rep], mcode[~rep]] = r[~rep]
    again[jid[rep], mcode[rep]] = r[rep]
    paired = (~np.isnan(first)).any(axis=1) & (~np.isnan(again)).any(axis=1)
    tau = kendall_tau_rows(first[paired], again[paired])
    info = pd.DataFrame(
        {"jid": jid, "participant_id": df["participant_id"].to_numpy(), "page_id": df["page_id"].to_numpy()}
    )
    info = info.drop_duplicates("jid").set_index("jid").loc[np.nonzero(paired)[0]]
    info["kendall_tau"] = tau
    out = (
        info.groupby("participant_id", observed=True, sort=True)
        .agg(kendall_tau=("kendall_tau", "mean"), n_pages=("page_id", "nunique"))
        .reset_index()
    )
    out["participant_id"] = out["participant_id"].astype(str)
    return out[cols]


# -- the original paper's views ---------------------------------------------------------------------------------------
def paper_views(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The original analysis' summaries, over the FULL multi-criterion table (judgments treated as independent).

    ``ranks``: mean / median / SEM of rank per criterion × page culture (plus culture ``all``) × model;
    ``ranked_better``: for every ordered pair (a, b), the percentage of judgments ranking a above b.
    """
    rows = main_rows(df)
    if len(rows) == 0:
        raise ValueError("no rankings to summarise (empty table)")
    parts = []
    for by in (["criterion", "page_culture", "model_id"], ["criterion", "model_id"]):
        g = (
            rows.groupby(by, observed=True)["rank"]
            .agg(mean_rank="mean", median_rank="median", sem="sem", n="size")
            .reset_index()
        )
        if "page_culture" not in by:
            g.insert(1, "page_culture", "all")
        parts.append(g)
    ranks = pd.concat(parts, ignore_index=True)

    better = []
    crit_code, crit_names = codes(rows["criterion"])
    cult_code, cult_names = codes(rows["page_culture"])
    for culture_level in (True, False):
        n_cult = len(cult_names) if culture_level else 1
        group = crit_code * n_cult + (cult_code if culture_level else 0)
        t = RankTable.from_long(rows.assign(_group=group), group_col="_group")
        k = t.n_models
        models = t.models.to_numpy()
        a, b = np.divmod(np.arange(k * k), k)
        keep = a != b
        wins = t.wins.reshape(t.n_participants, k * k)[:, keep]
        both = t.both.reshape(t.n_participants, k * k)[:, keep]
        g_crit, g_cult = np.divmod(t.participants.to_numpy(dtype=np.int64), n_cult)
        crit = crit_names.to_numpy()[g_crit]
        cult = cult_names.to_numpy()[g_cult] if culture_level else np.full(len(g_crit), "all")
        n_g, n_p = t.n_participants, int(keep.sum())
        frame = pd.DataFrame(
            {
                "criterion": np.repeat(crit, n_p),
                "page_culture": np.repeat(cult, n_p),
                "a": np.tile(models[a[keep]], n_g),
                "b": np.tile(models[b[keep]], n_g),
                "pct_a_better": 100 * _ratio(wins, both).ravel(),
                "n": both.ravel().astype(np.int64),
            }
        )
        better.append(frame[frame["n"] > 0])
    return {"ranks": ranks, "ranked_better": pd.concat(better, ignore_index=True)}


# -- one results.json group ---------------------------------------------------------------------------------------
def summarise_group(df: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """The ``GROUP`` object of ``results.json`` (DESIGN.md) for one criterion × group, JSON-ready (NaN → null)."""
    t = _table(df)
    resampler, pages = Resampler.for_table(df, t, n_boot, seed)
    boot = resample_group(t, resampler)
    mr = _mean_rank_frame(t, boot).set_index("model_id")
    pl = _pl_frame(t, boot).set_index("model_id")
    wr = _win_frame(t, boot).set_index(["a", "b"])
    hist = t.rank_histogram.sum(axis=0)
    shares = _ratio(hist, hist.sum(axis=1, keepdims=True))
    models = {}
    for k, model in enumerate(t.models):
        models[str(model)] = {
            "mean_rank": mr.at[model, "mean_rank"],
            "mean_rank_ci": [mr.at[model, "ci_lo"], mr.at[model, "ci_hi"]],
            "top1_share": shares[k, 0] if shares.shape[1] else float("nan"),
            "rank_shares": list(shares[k]),
            "pl_log_worth": pl.at[model, "pl_log_worth"],
            "pl_log_worth_ci": [pl.at[model, "ci_lo"], pl.at[model, "ci_hi"]],
        }
    fr = friedman_matrix(t.participant_means())
    pw = _pairwise_frame(t)
    models_ = list(t.models)
    crossed_pairs = {
        (models_[c["a"]], models_[c["b"]]): c
        for c in headline.pairwise(mr["mean_rank"].to_numpy(), boot.mean_ranks, t.n_participants, len(pages))
    }
    alpha = page_alpha(df, "ordinal")
    alpha_lo, alpha_hi = percentile_ci(alpha_resamples(df, resampler.weights, t.participants, pages)[:, None])
    alpha_ci = [alpha_lo[0], alpha_hi[0]]
    group = {
        "n_participants": t.n_participants,
        "n_judgments": t.n_judgments,
        "models": models,
        "friedman": {key: fr[key] for key in ("statistic", "df", "p", "kendall_w")},
        "pairwise": [
            {"a": str(r.a), "b": str(r.b), "win_rate_a": r.win_rate_a, "statistic": r.statistic, "p": r.p}
            | {"p_holm": r.p_holm}
            | _crossed_pair(wr, crossed_pairs, r.a, r.b)
            for r in pw.itertuples(index=False)
        ],
        "agreement": {"krippendorff_alpha_ordinal": alpha, "krippendorff_alpha_ordinal_ci": alpha_ci},
        "headline": headline.omnibus(mr["mean_rank"].to_numpy(), boot.mean_ranks, t.n_participants, len(pages))
        | {"n_pages": len(pages)},
    }
    group |= group_additions(t, group["friedman"], group["pairwise"], pl["pl_log_worth"].to_numpy())
    return _clean(group)


def _crossed_pair(wr: pd.DataFrame, pairs: dict, a: Any, b: Any) -> dict:
    """The crossed-bootstrap additions to one ``pairwise`` entry: win-rate CI, mean-rank difference test."""
    c = pairs[(a, b)]
    return {
        "win_rate_ci": [wr.at[(a, b), "ci_lo"], wr.at[(a, b), "ci_hi"]],
        "mean_rank_difference": c["difference"],
        "p_crossed": c["p"],
        "p_crossed_holm": c["p_holm"],
    }
