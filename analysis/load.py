"""``responses.csv`` → a validated long table (one row per participant, page, criterion, image).

Validation is vectorised: every check runs over whole columns, and an error names the first bad rows by their CSV
line number (the header is line 1).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from study_designs.responses import REQUIRED_RESPONSE_COLUMNS

if TYPE_CHECKING:
    from study_designs.schema import Design

COLUMNS = list(REQUIRED_RESPONSE_COLUMNS)  # the DESIGN responses.csv columns, in order; later columns are ignored
STRING_COLUMNS = [
    "round_id",
    "participant_id",
    "participant_culture",
    "page_id",
    "page_culture",
    "prompt_id",
    "criterion",
    "model_id",
    "image_id",
]
INT_COLUMNS = {"seed": "int64", "rank": "int16", "n_items": "int16", "initial_position": "int16"}
BOOL_COLUMNS = ["moved", "is_attention_check", "is_repeat", "excluded"]
OPTIONAL = {"prompt_id", "seed", "seconds_on_page", "submitted_at", "attention_passed", "rank"}
_TRUE = {"true", "1", "yes", "t"}
_FALSE = {"false", "0", "no", "f"}
_SHOW = 5


class ResponsesError(ValueError):
    """A responses file that cannot be analysed; the message names the file, the problem and the first bad lines."""


class _Problems:
    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, what: str, bad: np.ndarray, index: np.ndarray | None = None) -> None:
        """Record a problem for the rows where ``bad`` is true (row positions → CSV line = position + 2)."""
        rows = np.nonzero(bad)[0] if bad.dtype == bool else np.asarray(bad)
        if len(rows) == 0:
            return
        rows = np.sort(rows)
        lines = (rows[:_SHOW] if index is None else index[rows[:_SHOW]]) + 2
        more = f" (and {len(rows) - _SHOW} more rows)" if len(rows) > _SHOW else ""
        self.items.append(f"{what}: line(s) {', '.join(map(str, lines))}{more}")

    def raise_if_any(self) -> None:
        if self.items:
            raise ResponsesError(f"{self.path}: {len(self.items)} problem(s)\n  " + "\n  ".join(self.items))


def _check_header(path: Path) -> None:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except FileNotFoundError:
        raise ResponsesError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        raise ResponsesError(f"{path}: not UTF-8 text ({err})") from None
    if not header:
        raise ResponsesError(f"{path}: empty file (expected a header row: {','.join(COLUMNS)})")
    header = [h.strip() for h in header]
    head, tail = header[: len(COLUMNS)], header[len(COLUMNS) :]
    if head == COLUMNS:  # newer exports append columns (e.g. ``late``); they are read past and ignored
        twice = sorted({c for c in tail if c in COLUMNS or tail.count(c) > 1})
        if twice:
            raise ResponsesError(f"{path}: header line 1: duplicate column(s) {twice}")
        return
    missing = [c for c in COLUMNS if c not in header]
    last = max((i for i, c in enumerate(header) if c in COLUMNS), default=-1)
    extra = [c for c in header[: last + 1] if c not in COLUMNS]
    parts = []
    if missing:
        parts.append(f"missing column(s) {missing}")
    if extra:
        parts.append(f"unexpected column(s) {extra} before {COLUMNS[-1]!r} (extra columns may only come last)")
    if not parts:
        parts.append(f"columns out of order: got {header}")
    raise ResponsesError(f"{path}: header line 1: {'; '.join(parts)}; expected {COLUMNS}")


def _parse_bool(col: pd.Series, name: str, problems: _Problems, *, nullable: bool) -> pd.Series:
    cats = col.cat.categories.astype(str).str.strip().str.lower()
    mapping = np.full(len(cats), np.nan)
    mapping[cats.isin(_TRUE)] = 1.0
    mapping[cats.isin(_FALSE)] = 0.0
    code = col.cat.codes.to_numpy()
    values = np.append(mapping, np.nan)[code]  # code -1 (empty) picks the trailing NaN
    bad_value = (code >= 0) & np.isnan(values)
    problems.add(f"column {name!r}: not a boolean (true/false/1/0)", bad_value)
    if nullable:
        return pd.Series(pd.arrays.BooleanArray(values == 1.0, np.isnan(values)), index=col.index)
    return pd.Series(values == 1.0, index=col.index)


def _parse_number(col: pd.Series, name: str, problems: _Problems, *, integer: bool) -> np.ndarray:
    cats = col.cat.categories.astype(str)
    nums = pd.to_numeric(pd.Series(cats).str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    code = col.cat.codes.to_numpy()
    values = np.append(nums, np.nan)[code]
    bad = (code >= 0) & ~np.isfinite(values)
    if integer:
        with np.errstate(invalid="ignore"):
            bad |= (code >= 0) & np.isfinite(values) & (values != np.round(values))
    problems.add(f"column {name!r}: not {'an integer' if integer else 'a number'}", bad)
    return values


def _group_first(values: np.ndarray, gid: np.ndarray, n: int) -> np.ndarray:
    first = np.full(n, -1, dtype=values.dtype) if values.dtype.kind in "iu" else np.empty(n, dtype=values.dtype)
    first[gid[::-1]] = values[::-1]
    return first


def read_responses(path: str | Path) -> pd.DataFrame:
    """Read and validate ``responses.csv`` (DESIGN.md contract) into a typed long table.

    Strings become categoricals; ``rank``/``n_items``/``initial_position`` int16; booleans are parsed from
    true/false/1/0 (``attention_passed`` may be empty); ``submitted_at`` UTC timestamps. Each (participant, page,
    criterion, repeat) ranking must be a permutation of 1..n_items over distinct models. A ranking whose ranks are all
    empty (skipped) is dropped and counted in ``df.attrs["skipped_judgments"]``. Raises :class:`ResponsesError` naming
    the first bad CSV lines of every problem found.
    """
    path = Path(path)
    _check_header(path)
    try:
        raw = pd.read_csv(
            path,
            dtype="category",
            usecols=COLUMNS,  # columns after the contract's are not read
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8-sig",  # a UTF-8 byte-order mark (Excel's "CSV UTF-8") is accepted and dropped
            low_memory=False,  # one pass: categories are not rebuilt and unioned chunk by chunk (2-3x faster)
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ResponsesError(f"{path}: not a readable CSV file: {err}") from None
    problems = _Problems(str(path))
    n = len(raw)
    if n == 0:
        raise ResponsesError(f"{path}: no data rows")

    for name in COLUMNS:
        if name not in OPTIONAL:
            problems.add(f"column {name!r}: empty value", raw[name].cat.codes.to_numpy() < 0)

    out: dict[str, object] = {}
    for name in STRING_COLUMNS:
        out[name] = raw[name]
    nums = {name: _parse_number(raw[name], name, problems, integer=True) for name in INT_COLUMNS}
    seconds = _parse_number(raw["seconds_on_page"], "seconds_on_page", problems, integer=False)
    bools = {name: _parse_bool(raw[name], name, problems, nullable=False) for name in BOOL_COLUMNS}
    attention = _parse_bool(raw["attention_passed"], "attention_passed", problems, nullable=True)

    sub = raw["submitted_at"]
    stamps = pd.to_datetime(pd.Series(sub.cat.categories.astype(str)), utc=True, errors="coerce", format="ISO8601")
    code = sub.cat.codes.to_numpy()
    unparsed = np.append(stamps.isna().to_numpy(), False)[code]
    problems.add("column 'submitted_at': not an ISO 8601 timestamp", (code >= 0) & unparsed)
    submitted = pd.Series(stamps.array.take(code, allow_fill=True), index=raw.index)

    rank, n_items, pos = nums["rank"], nums["n_items"], nums["initial_position"]
    problems.add("column 'n_items': must be at least 2", n_items < 2)
    with np.errstate(invalid="ignore"):
        problems.add("column 'rank': outside 1..n_items", ~np.isnan(rank) & ((rank < 1) | (rank > n_items)))
        problems.add("column 'initial_position': outside 0..n_items-1", (pos < 0) | (pos >= n_items))
    problems.raise_if_any()

    # -- one ranking = (participant, page, criterion, repeat, attention check): a permutation of 1..n_items ----------
    # An attention-check page may reuse a regular page's images (and id), so the check flag is part of the key.
    key = np.zeros(n, dtype=np.int64)
    for name in ("participant_id", "page_id", "criterion"):
        col = out[name]
        key = key * max(len(col.cat.categories), 1) + col.cat.codes.to_numpy()
    key = key * 2 + bools["is_repeat"].to_numpy()
    key = key * 2 + bools["is_attention_check"].to_numpy()
    gid, _ = pd.factorize(key)
    n_groups = int(gid.max()) + 1
    size = np.bincount(gid, minlength=n_groups)
    group_n = _group_first(n_items, gid, n_groups)
    problems.add("n_items differs within one ranking (participant, page, criterion)", group_n[gid] != n_items)
    blank = np.isnan(rank)
    n_blank = np.bincount(gid, weights=blank, minlength=n_groups)
    skipped = n_blank == size
    problems.add("rank empty for some but not all images of a ranking", (n_blank[gid] > 0) & ~skipped[gid])
    problems.add("ranking has a number of rows different from n_items", size[gid] != group_n[gid])
    model_key = (
        gid.astype(np.int64) * max(len(out["model_id"].cat.categories), 1) + out["model_id"].cat.codes.to_numpy()
    )
    problems.add("model_id repeated within one ranking", pd.Series(model_key).duplicated().to_numpy())
    filled = ~blank
    if filled.any() and np.nanmax(n_items) <= 52:
        bits = np.where(filled, np.exp2(np.nan_to_num(rank) - 1), 0.0)
        mask = np.bincount(gid, weights=bits, minlength=n_groups)
        not_perm = (mask != np.exp2(group_n) - 1) & ~skipped
    else:
        dup = pd.Series(gid.astype(np.int64) * 64 + np.nan_to_num(rank).astype(np.int64)).duplicated().to_numpy()
        not_perm = np.bincount(gid, weights=dup & filled, minlength=n_groups) > 0
    problems.add(
        "ranks of one ranking are not a permutation of 1..n_items", not_perm[gid] & (size[gid] == group_n[gid])
    )

    for name, per in (
        ("participant_culture", "participant_id"),
        ("excluded", "participant_id"),
        ("page_culture", "page_id"),
    ):
        values = out[name].cat.codes.to_numpy() if name in out else bools[name].to_numpy().astype(np.int64)
        owner = out[per].cat.codes.to_numpy()
        first = _group_first(values, owner, len(out[per].cat.categories))
        problems.add(f"{name} differs between rows of the same {per.removesuffix('_id')}", first[owner] != values)
    problems.raise_if_any()

    df = pd.DataFrame(
        {
            **{name: out[name] for name in STRING_COLUMNS},
            "seed": pd.arrays.IntegerArray(np.nan_to_num(nums["seed"]).astype(np.int64), np.isnan(nums["seed"])),
            "rank": np.nan_to_num(rank).astype(np.int16),
            "n_items": n_items.astype(np.int16),
            "initial_position": pos.astype(np.int16),
            "moved": bools["moved"],
            "seconds_on_page": seconds,
            "submitted_at": submitted,
            "is_attention_check": bools["is_attention_check"],
            "is_repeat": bools["is_repeat"],
            "attention_passed": attention,
            "excluded": bools["excluded"],
        },
        index=raw.index,
    )[COLUMNS]
    n_skipped = int(skipped.sum())
    if n_skipped:
        df = df[~skipped[gid]].reset_index(drop=True)
        for name in STRING_COLUMNS:
            df[name] = df[name].cat.remove_unused_categories()
    df.attrs["skipped_judgments"] = n_skipped
    df.attrs["source"] = str(path)
    return df


def apply_exclusions(
    df: pd.DataFrame, *, keep_excluded: bool = False, drop_attention: bool = True
) -> tuple[pd.DataFrame, dict]:
    """Drop excluded participants and attention-check pages (by default); report counts and reasons.

    Returns ``(rows, info)`` with ``info`` = ``n_participants`` (in the export), ``n_excluded``, ``n_included``
    (participants left for analysis), ``excluded_ids``, ``reasons`` (participant → why), ``excluded_rows_dropped``,
    ``attention_rows_dropped``, ``skipped_judgments``.
    """
    pid = df["participant_id"]
    excluded_rows = df["excluded"].to_numpy(dtype=bool)
    excluded_ids = sorted(map(str, pd.unique(pid[excluded_rows])))
    reasons: dict[str, str] = {}
    if excluded_ids:
        checks = df[df["is_attention_check"].to_numpy(dtype=bool) & excluded_rows]
        failed = checks[checks["attention_passed"].fillna(True).eq(False).to_numpy(dtype=bool)]
        n_failed = failed.groupby(["participant_id"], observed=True)["page_id"].nunique() if len(failed) else None
        for p in excluded_ids:
            k = int(n_failed.get(p, 0)) if n_failed is not None else 0
            reasons[p] = f"failed {k} attention check page(s)" if k else "marked excluded in the export"
    keep = np.ones(len(df), dtype=bool)
    if not keep_excluded:
        keep &= ~excluded_rows
    attention_rows = df["is_attention_check"].to_numpy(dtype=bool)
    attention_dropped = int(np.sum(attention_rows & keep)) if drop_attention else 0
    if drop_attention:
        keep &= ~attention_rows
    rows = df[keep].copy()
    for name in STRING_COLUMNS:
        if isinstance(rows[name].dtype, pd.CategoricalDtype):
            rows[name] = rows[name].cat.remove_unused_categories()
    rows.attrs = dict(df.attrs)
    info = {
        "n_participants": int(pid.nunique()),
        "n_excluded": len(excluded_ids),
        "n_included": int(rows["participant_id"].nunique()),
        "excluded_ids": excluded_ids,
        "reasons": reasons,
        "excluded_rows_dropped": 0 if keep_excluded else int(excluded_rows.sum()),
        "attention_rows_dropped": attention_dropped,
        "skipped_judgments": int(df.attrs.get("skipped_judgments", 0)),
    }
    return rows, info


def attach_design(df: pd.DataFrame, design: Design) -> pd.DataFrame:
    """Add ``model_label``, ``page_culture_label``, ``participant_culture_label`` and ``criterion_question``.

    Model ids are put in the design's order (categorical order, used by tables and figures). Raises
    :class:`ResponsesError` when the export names models, criteria or page cultures the design lacks.
    """
    models = {m.id: m.label for m in design.models}
    cultures = {c.id: c for c in design.cultures}
    criteria = {c.id: c for c in design.criteria}
    problems = []
    for col, known in (("model_id", models), ("criterion", criteria), ("page_culture", cultures)):
        unknown = sorted(set(map(str, pd.unique(df[col]))) - set(known))
        if unknown:
            problems.append(f"{col} {unknown} not in design {design.id!r}")
    if problems:
        raise ResponsesError("responses do not match the design: " + "; ".join(problems))
    out = df.copy()
    order = [m.id for m in design.models]
    out["model_id"] = pd.Categorical(out["model_id"].astype(str), categories=order)
    out["model_label"] = pd.Categorical(out["model_id"].map(models).astype(str), categories=[models[m] for m in order])
    labels = {c: v.label for c, v in cultures.items()}
    out["page_culture_label"] = out["page_culture"].astype(str).map(labels).astype("category")
    out["participant_culture_label"] = (
        out["participant_culture"].astype(str).map(lambda c: labels.get(c, c)).astype("category")
    )
    pairs = out[["criterion", "page_culture"]].astype(str).drop_duplicates()
    text = {(cr, cu): criteria[cr].text_for(cultures[cu]) for cr, cu in pairs.itertuples(index=False)}
    key = out["criterion"].astype(str) + "\x1f" + out["page_culture"].astype(str)
    out["criterion_question"] = key.map({f"{a}\x1f{b}": t for (a, b), t in text.items()}).astype("category")
    return out
