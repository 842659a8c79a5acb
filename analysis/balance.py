"""Position balance measured from the data, and Plackett–Luce with position effects.

``position_balance``: the model × initial-position table of shown images (one count per participant, page and
image, whatever the number of criteria) with a chi-square test of independence (``scipy.stats.chi2_contingency``,
no continuity correction) and Cramér's V. The verdict is stated from the data, never from the design file:
``balanced`` when V < 0.1 (positions nearly independent of models), ``NOT balanced`` when the test rejects at 5% with
V ≥ 0.1, ``not confirmed`` otherwise (too few images to tell).

``position_adjusted_pl``: each image's log-worth is ``θ_model + γ_position``; maximum likelihood over all rankings
of one criterion (scipy L-BFGS with the exact gradient), both sets centred to sum 0, standard errors from the
observed information. When every model was always shown in the same position the two sets are confounded and no
estimate is returned (with that reason).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps

from analysis._tables import codes, judgment_ids, main_rows

V_BALANCED = 0.1
ALPHA = 0.05


def position_model_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Images shown per model (rows) and 0-based initial position (columns), each image counted once."""
    rows = main_rows(df)
    pcode, participants = codes(rows["participant_id"])
    gcode, pages = codes(rows["page_id"])
    mcode, models = codes(rows["model_id"])
    pos = rows["initial_position"].to_numpy(dtype=np.int64)
    n_pos = int(pos.max()) + 1 if len(pos) else 0
    key = ((pcode * max(len(pages), 1) + gcode) * max(len(models), 1) + mcode) * max(n_pos, 1) + pos
    image = np.unique(key)  # one (participant, page, model, position) per shown image, whatever the criteria
    cell = image % (max(len(models), 1) * max(n_pos, 1))
    counts = np.bincount(cell, minlength=len(models) * n_pos).reshape(len(models), n_pos)
    table = pd.DataFrame(counts, index=pd.Index(models.astype(str), name="model_id"))
    table.columns = pd.Index(range(n_pos), name="initial_position")
    return table


def position_balance(df: pd.DataFrame, *, models: list[str] | None = None) -> dict:
    """Chi-square test of independence of model and initial position, Cramér's V and a measured verdict."""
    table = position_model_counts(df)
    if models is not None:
        table = table.reindex([m for m in models if m in table.index])
    table = table.loc[table.sum(axis=1) > 0, table.sum(axis=0) > 0]
    out: dict = {"n_images": int(table.to_numpy().sum()), "chi2": math.nan, "df": 0, "p": math.nan}
    out |= {"cramers_v": math.nan, "verdict": "not testable", "reason": None}
    if min(table.shape) < 2:
        out["reason"] = "fewer than two models or positions were shown"
        return out
    res = sps.chi2_contingency(table.to_numpy(), correction=False)
    n = out["n_images"]
    v = math.sqrt(float(res.statistic) / (n * (min(table.shape) - 1))) if n else math.nan
    out.update(chi2=float(res.statistic), df=int(res.dof), p=float(res.pvalue), cramers_v=v)
    if v < V_BALANCED:
        out["verdict"] = "balanced"
    elif out["p"] < ALPHA:
        out["verdict"] = "NOT balanced"
    else:
        out["verdict"] = "not confirmed"
        out["reason"] = f"Cramér's V = {v:.2f} but only {n} images: too few to tell"
    return out


# -- Plackett–Luce with position worths -----------------------------------------------------------------------------
def _arrays(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, pd.Index, pd.Index]:
    rows = main_rows(df)
    rows = rows[rows["rank"].notna()]
    jid = judgment_ids(rows)
    mcode, models = codes(rows["model_id"])
    pcode, positions = codes(rows["initial_position"].astype(np.int64))
    n_j, k = (int(jid.max()) + 1 if len(jid) else 0), len(models)
    rank = np.full((n_j, k), np.inf)
    pos = np.full((n_j, k), -1, dtype=np.int64)
    rank[jid, mcode] = rows["rank"].to_numpy(dtype=np.float64)
    pos[jid, mcode] = pcode
    order = np.argsort(rank, axis=1, kind="stable")
    present = np.take_along_axis(np.isfinite(rank), order, axis=1)
    model_sorted = np.where(present, order, -1)
    pos_sorted = np.where(present, np.take_along_axis(pos, order, axis=1), -1)
    # the likelihood depends on a ranking only through (models in rank order, their positions): count distinct ones
    uniq, weight = np.unique(np.hstack([model_sorted, pos_sorted]), axis=0, return_counts=True)
    model_sorted, pos_sorted = uniq[:, :k], uniq[:, k:]
    return model_sorted, pos_sorted, model_sorted >= 0, weight.astype(np.float64), models, positions


def _identifiable(model_sorted: np.ndarray, pos_sorted: np.ndarray, present: np.ndarray, k: int, p: int) -> bool:
    # distinct rankings suffice: the rank of the design matrix does not depend on how often a row repeats
    """Rank of the within-ranking centred design [model one-hot, position one-hot] is (k − 1) + (p − 1)."""
    x = np.zeros((*present.shape, k + p))
    j, i = np.nonzero(present)
    x[j, i, model_sorted[j, i]] = 1.0
    x[j, i, k + pos_sorted[j, i]] = 1.0
    n = present.sum(axis=1, keepdims=True).astype(np.float64)
    centred = np.where(present[:, :, None], x - x.sum(axis=1, keepdims=True) / np.maximum(n, 1)[:, :, None], 0.0)
    flat = centred.reshape(-1, k + p)
    return int(np.linalg.matrix_rank(flat.T @ flat, tol=1e-8)) == (k - 1) + (p - 1)


def _nll_grad(params, model_sorted, pos_sorted, present, weight, k, p) -> tuple[float, np.ndarray]:
    theta = np.append(params[: k - 1], 0.0)
    gamma = np.append(params[k - 1 :], 0.0)
    u = np.where(present, theta[np.maximum(model_sorted, 0)] + gamma[np.maximum(pos_sorted, 0)], -np.inf)
    lse = np.logaddexp.accumulate(u[:, ::-1], axis=1)[:, ::-1]  # lse[:, s] = log Σ_{q ≥ s} e^{u_q}
    length = present.sum(axis=1)
    stage = np.arange(u.shape[1])[None, :] < (length[:, None] - 1)  # choice stages (the last item is not a choice)
    ll = float(np.sum(weight[:, None] * np.where(stage, u - np.where(stage, lse, 0.0), 0.0)))
    c = np.cumsum(np.where(stage, np.exp(-np.where(stage, lse, 0.0)), 0.0), axis=1)
    g_u = weight[:, None] * np.where(present, stage.astype(np.float64) - np.exp(np.where(present, u, 0.0)) * c, 0.0)
    g_theta = np.bincount(np.maximum(model_sorted, 0).ravel(), weights=g_u.ravel(), minlength=k)
    g_gamma = np.bincount(np.maximum(pos_sorted, 0).ravel(), weights=g_u.ravel(), minlength=p)
    return -ll, -np.concatenate([g_theta[: k - 1], g_gamma[: p - 1]])


def _hessian(x: np.ndarray, args: tuple, h: float = 1e-5) -> np.ndarray:
    """Observed information: central differences of the exact gradient, symmetrised."""
    hess = np.empty((len(x), len(x)))
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = h
        hess[:, i] = (_nll_grad(x + e, *args)[1] - _nll_grad(x - e, *args)[1]) / (2 * h)
    return (hess + hess.T) / 2


def position_adjusted_pl(df: pd.DataFrame) -> dict:
    """``{"log_worth": {model: θ}, "se": {model: se}, "position_log_worth": {position: γ}, "reason"}`` for one
    criterion; ``reason`` says why there is no estimate (and the estimates are then empty)."""
    out: dict = {"log_worth": {}, "se": {}, "position_log_worth": {}, "reason": None}
    model_sorted, pos_sorted, present, weight, models, positions = _arrays(df)
    k, p = len(models), len(positions)
    if k < 2 or p < 2 or present.shape[0] == 0:
        out["reason"] = "fewer than two models or positions"
        return out
    if not _identifiable(model_sorted, pos_sorted, present, k, p):
        out["reason"] = "models and positions are confounded (a model was always shown in the same position)"
        return out
    args = (model_sorted, pos_sorted, present, weight, k, p)
    res = optimize.minimize(
        _nll_grad, np.zeros(k + p - 2), args=args, jac=True, method="BFGS", options={"gtol": 1e-8, "maxiter": 500}
    )
    x = res.x
    hess = _hessian(x, args)
    for _ in range(3):  # Newton polish: BFGS may stop short of the optimum at "precision loss"
        try:
            x = x - np.linalg.solve(hess, _nll_grad(x, *args)[1])
        except np.linalg.LinAlgError:
            break
        hess = _hessian(x, args)
    grad = _nll_grad(x, *args)[1]
    if not np.all(np.isfinite(x)) or np.max(np.abs(x)) > 25 or np.max(np.abs(grad)) > 1e-6 * max(weight.sum(), 1):
        out["reason"] = "the maximum-likelihood fit did not converge (a model or position may never win)"
        return out
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        cov = np.full_like(hess, np.nan)
    expand = np.zeros((k + p, k + p - 2))  # free parameters → centred θ and γ
    expand[: k - 1, : k - 1] = np.eye(k - 1)
    expand[k : k + p - 1, k - 1 :] = np.eye(p - 1)
    centre = np.zeros((k + p, k + p))
    centre[:k, :k] = np.eye(k) - 1.0 / k
    centre[k:, k:] = np.eye(p) - 1.0 / p
    lin = centre @ expand
    est = lin @ x
    se = np.sqrt(np.clip(np.diag(lin @ cov @ lin.T), 0, None))
    out["log_worth"] = {str(m): float(est[i]) for i, m in enumerate(models)}
    out["se"] = {str(m): float(se[i]) for i, m in enumerate(models)}
    out["position_log_worth"] = {str(int(q)): float(est[k + i]) for i, q in enumerate(positions)}
    return out
