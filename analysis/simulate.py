"""Synthetic ranking studies: participants with Plackett–Luce tastes, written as ``responses.csv``.

Each participant of a culture ranks the pages of their culture (one image per model, ranked once per criterion).
A participant's log-worth for a model is the population log-worth (per model, optionally per culture) plus
Gaussian noise with standard deviation ``heterogeneity``; each ranking is one Plackett–Luce draw, sampled with the
Gumbel-max trick (sort utilities plus Gumbel noise), vectorised over all rankings at once.

Careless participants (share ``attention_failure_rate``) rank at random, so they usually fail attention checks
(rank a marked image last); attentive ones rarely do. A participant is excluded when their failed checks reach the
design's ``exclude_after_failed_checks``. Image order follows a cyclic Latin square over models (or a shuffle), and
``position_bias`` adds ``-position_bias * initial_position`` to every image's log-worth.

Pages are a sample of stimuli: with ``page_sd > 0`` every image (page × model, per criterion) gets its own Gaussian
log-worth shift with that standard deviation, shared by everyone who ranks the page — the page × model variance that
makes judgments of one page correlated across participants.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study_designs.responses import REQUIRED_RESPONSE_COLUMNS
from study_designs.schema import Design

COLUMNS = list(REQUIRED_RESPONSE_COLUMNS)  # the DESIGN responses.csv columns, in order

_START = np.datetime64("2026-01-05T08:00:00", "s")


@dataclass(frozen=True)
class SimPage:
    id: str
    culture: str
    prompt_id: str
    seed: int


@dataclass(frozen=True)
class StudySpec:
    """The parts of a study design a simulation needs."""

    cultures: tuple[str, ...]
    models: tuple[str, ...]
    criteria: tuple[str, ...]
    pages: Mapping[str, tuple[SimPage, ...]]
    pages_per_participant: int
    attention_checks: int = 0
    repeat_pages: int = 0
    exclude_after_failed_checks: int = 2
    position_balance: str = "latin"
    min_seconds_per_page: float = 0.0
    round_id: str = "sim"
    model_labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if not self.cultures:
            problems.append("at least one culture is needed")
        if len(self.models) < 2:
            problems.append("at least two models are needed")
        if not self.criteria:
            problems.append("at least one criterion is needed")
        for c in self.cultures:
            if not self.pages.get(c):
                problems.append(f"culture {c!r} has no pages")
        if self.pages_per_participant < 1:
            problems.append("pages_per_participant must be at least 1")
        if self.position_balance not in ("latin", "shuffle"):
            problems.append("position_balance must be 'latin' or 'shuffle'")
        for name in ("cultures", "models", "criteria"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                problems.append(f"{name} repeat an id: {list(values)}")
        if problems:
            raise ValueError("invalid study spec: " + "; ".join(problems))


def spec_from_design(design: Design) -> StudySpec:
    """The simulation view of a :class:`study_designs.schema.Design`."""
    pages = {
        c.id: tuple(SimPage(p.id, p.culture, p.prompt_id, p.seed) for p in design.pages(c.id)) for c in design.cultures
    }
    return StudySpec(
        cultures=tuple(c.id for c in design.cultures),
        models=tuple(m.id for m in design.models),
        criteria=tuple(c.id for c in design.criteria),
        pages=pages,
        pages_per_participant=design.assignment.pages_per_participant,
        attention_checks=design.quality.attention_checks,
        repeat_pages=design.quality.repeat_pages,
        exclude_after_failed_checks=design.quality.exclude_after_failed_checks,
        position_balance=design.assignment.position_balance,
        min_seconds_per_page=design.quality.min_seconds_per_page,
        round_id=design.id,
        model_labels={m.id: m.label for m in design.models},
    )


def make_spec(
    *,
    cultures: Sequence[str],
    models: Sequence[str],
    criteria: Sequence[str] = ("overall",),
    pages: int | Mapping[str, int] = 10,
    pages_per_participant: int | None = None,
    attention_checks: int = 0,
    repeat_pages: int = 0,
    exclude_after_failed_checks: int = 2,
    position_balance: str = "latin",
    round_id: str = "sim",
) -> StudySpec:
    """A small spec: ``pages`` per culture (an int for all, or per culture), two seeds per prompt."""
    counts = {c: pages for c in cultures} if isinstance(pages, int) else dict(pages)
    page_sets = {}
    for c in cultures:
        n = int(counts.get(c, 0))
        page_sets[c] = tuple(
            SimPage(f"{c}-prompt{j // 2}-{100 + j % 2}", c, f"{c}-prompt{j // 2}", 100 + j % 2) for j in range(n)
        )
    n_min = min(len(p) for p in page_sets.values()) if page_sets else 0
    return StudySpec(
        cultures=tuple(cultures),
        models=tuple(models),
        criteria=tuple(criteria),
        pages=page_sets,
        pages_per_participant=pages_per_participant or max(n_min, 1),
        attention_checks=attention_checks,
        repeat_pages=repeat_pages,
        exclude_after_failed_checks=exclude_after_failed_checks,
        position_balance=position_balance,
        round_id=round_id,
    )


def as_spec(design_or_spec: Design | StudySpec | Mapping[str, Any]) -> StudySpec:
    if isinstance(design_or_spec, StudySpec):
        return design_or_spec
    if isinstance(design_or_spec, Design):
        return spec_from_design(design_or_spec)
    if isinstance(design_or_spec, Mapping):
        return make_spec(**design_or_spec)
    raise TypeError(f"expected a Design, StudySpec or mapping, got {type(design_or_spec).__name__}")


def worth_matrix(spec: StudySpec, worths: Mapping[str, Any] | Sequence[float] | np.ndarray | None) -> np.ndarray:
    """Population log-worths as a cultures × models array.

    ``worths`` is one log-worth per model (a mapping model -> value or a sequence in model order), or a mapping
    culture -> (one log-worth per model). Models left out get 0; ``None`` means all models equal.
    """
    out = np.zeros((len(spec.cultures), len(spec.models)))
    if worths is None:
        return out
    if isinstance(worths, Mapping):
        per_culture = any(isinstance(v, (Mapping, Sequence, np.ndarray)) for v in worths.values())
        if per_culture:
            unknown = set(worths) - set(spec.cultures)
            if unknown:
                raise ValueError(f"worths name unknown cultures {sorted(unknown)}; cultures are {list(spec.cultures)}")
            for i, c in enumerate(spec.cultures):
                if c in worths:
                    out[i] = _model_vector(spec, worths[c])
            return out
    out[:] = _model_vector(spec, worths)
    return out


def _model_vector(spec: StudySpec, values: Mapping[str, float] | Sequence[float] | np.ndarray) -> np.ndarray:
    if isinstance(values, Mapping):
        unknown = set(values) - set(spec.models)
        if unknown:
            raise ValueError(f"worths name unknown models {sorted(unknown)}; models are {list(spec.models)}")
        return np.array([float(values.get(m, 0.0)) for m in spec.models])
    vec = np.asarray(values, dtype=float)
    if vec.shape != (len(spec.models),):
        raise ValueError(f"expected {len(spec.models)} worths (one per model), got shape {vec.shape}")
    return vec


def simulate_responses(
    design_or_spec: Design | StudySpec | Mapping[str, Any],
    *,
    participants_per_culture: int | Mapping[str, int],
    worths: Mapping[str, Any] | Sequence[float] | np.ndarray | None = None,
    heterogeneity: float = 0.5,
    attention_failure_rate: float = 0.0,
    position_bias: float = 0.0,
    pages_per_participant: int | None = None,
    seed: int = 0,
    attentive_check_failure: float = 0.02,
    page_sd: float = 0.0,
) -> pd.DataFrame:
    """Simulate a study's ``responses.csv`` rows (columns exactly as DESIGN.md, in order).

    Attention checks follow the platform: a page of the participant's culture shown for one criterion, where one
    marked image must be ranked last. Careless participants rank at random (so they pass a check by chance,
    1 in K); attentive ones fail a check with probability ``attentive_check_failure``. Repeat pages show an
    earlier regular page again, last, with a different image order.
    """
    spec = as_spec(design_or_spec)
    if heterogeneity < 0:
        raise ValueError("heterogeneity must be >= 0")
    if page_sd < 0:
        raise ValueError("page_sd must be >= 0")
    if not 0 <= attention_failure_rate <= 1:
        raise ValueError("attention_failure_rate must be in [0, 1]")
    rng = np.random.default_rng(seed)
    k, n_crit = len(spec.models), len(spec.criteria)
    pop = worth_matrix(spec, worths)
    ppp = pages_per_participant or spec.pages_per_participant
    if ppp < 1:
        raise ValueError("pages_per_participant must be at least 1")
    counts = (
        {c: int(participants_per_culture) for c in spec.cultures}
        if not isinstance(participants_per_culture, Mapping)
        else {c: int(participants_per_culture.get(c, 0)) for c in spec.cultures}
    )

    # ---- page catalogue: the pages of every culture, in culture order ------------------------------------------
    catalogue: list[SimPage] = []
    first_page: dict[str, int] = {}
    for c in spec.cultures:
        first_page[c] = len(catalogue)
        catalogue.extend(spec.pages[c])

    # ---- slots: one per (participant, page shown) ---------------------------------------------------------------
    parts: dict[str, list[np.ndarray]] = {k_: [] for k_ in ("participant", "page", "kind", "offset")}
    participant_culture: list[int] = []
    for ci, c in enumerate(spec.cultures):
        n_part = counts[c]
        if n_part <= 0:
            continue
        n_pages = len(spec.pages[c])
        n_reg = min(ppp, n_pages)
        n_att = spec.attention_checks
        n_rep = min(spec.repeat_pages, n_reg)
        n_slots = n_reg + n_att + n_rep
        local = np.arange(n_part)
        pid0 = len(participant_culture)
        participant_culture.extend([ci] * n_part)
        kind = np.zeros(n_slots, dtype=np.int8)  # 0 regular, 1 attention, 2 repeat
        if n_att:  # checks spread evenly among the regular pages
            kind[(np.arange(1, n_att + 1) * (n_reg + n_att)) // (n_att + 1)] = 1
        kind[n_reg + n_att :] = 2
        reg = (local[:, None] * n_reg + np.arange(n_reg)[None, :]) % n_pages  # even coverage of the pages
        local_page = np.empty((n_part, n_slots), dtype=np.int64)
        local_page[:, kind == 0] = reg
        # distinct check pages, from pages the participant does not rank where the design leaves enough of them
        spare = n_pages - n_reg
        if spare >= n_att:
            pick = np.argsort(rng.random((n_part, spare)), axis=1)[:, :n_att]
            check = (local[:, None] + 1) * n_reg + pick
        else:
            check = np.argsort(rng.random((n_part, n_pages)), axis=1)[:, :n_att]
            check = check if n_att <= n_pages else check[:, np.arange(n_att) % n_pages]
        local_page[:, kind == 1] = check % n_pages
        local_page[:, kind == 2] = reg[:, :n_rep]
        offset = (local[:, None] + local_page) % k
        offset[:, kind == 2] += 1 + k // 2  # a repeat shows its page in another order
        parts["participant"].append(np.repeat(pid0 + local, n_slots))
        parts["page"].append((first_page[c] + local_page).ravel())
        parts["kind"].append(np.tile(kind, n_part))
        parts["offset"].append(offset.ravel())
    if not participant_culture:
        raise ValueError("no participants to simulate")
    s_part, s_page, s_kind, s_offset = (np.concatenate(parts[k_]) for k_ in ("participant", "page", "kind", "offset"))
    s_att, s_rep = s_kind == 1, s_kind == 2
    n_participants, n_slot = len(participant_culture), len(s_page)
    p_culture = np.asarray(participant_culture)

    # ---- participants' tastes ------------------------------------------------------------------------------------
    careless = rng.random(n_participants) < attention_failure_rate
    taste = pop[p_culture][:, None, :] + heterogeneity * rng.standard_normal((n_participants, n_crit, k))
    taste[careless] = 0.0

    # ---- image positions: cyclic Latin square over models, or a shuffle ----------------------------------------
    if spec.position_balance == "latin":
        position = (np.arange(k)[None, :] + s_offset[:, None]) % k  # slot × model -> 0-based position
    else:
        position = np.argsort(rng.random((n_slot, k)), axis=1)

    # ---- rankings: Plackett–Luce by Gumbel-max, one per (slot, criterion) ---------------------------------------
    n_rank = n_slot * n_crit
    util = taste[s_part].reshape(n_rank, k)
    if page_sd > 0:  # its own stream, so page_sd = 0 reproduces studies simulated before it existed
        page_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
        image_effect = page_sd * page_rng.standard_normal((len(catalogue), n_crit, k))
        util += image_effect[s_page].reshape(n_rank, k)
    util -= position_bias * np.repeat(position, n_crit, axis=0)
    util += rng.gumbel(size=(n_rank, k))

    # attention checks: one criterion per check page, a marked image that must be ranked last
    check_crit = rng.integers(0, n_crit, n_slot)
    marked = rng.integers(0, k, n_slot)
    att_idx = np.flatnonzero(s_att)
    slip = rng.random(len(att_idx)) < attentive_check_failure
    follows = ~careless[s_part[att_idx]] & ~slip
    att_rank_rows = att_idx * n_crit + check_crit[att_idx]
    util[att_rank_rows[follows], marked[att_idx[follows]]] = -np.inf
    slipped = ~careless[s_part[att_idx]] & slip  # an attentive slip: the marked image gets ranked first
    util[att_rank_rows[slipped], marked[att_idx[slipped]]] = np.inf
    rank = _ranks_descending(util)
    slot_failed = np.zeros(n_slot, dtype=bool)
    slot_failed[att_idx] = rank[att_rank_rows, marked[att_idx]] != k
    failed_checks = np.bincount(s_part, weights=slot_failed, minlength=n_participants)
    excluded = (failed_checks >= spec.exclude_after_failed_checks) & (spec.attention_checks > 0)

    # ---- time on page and submission times ---------------------------------------------------------------------
    base = np.where(careless[s_part], 5.0, 9.0 + 4.0 * k * n_crit / 4)
    base = np.where(s_att, base / n_crit, base)
    seconds = np.round(base * rng.lognormal(0.0, 0.45, n_slot), 1)
    gaps = seconds + rng.exponential(3.0, n_slot)
    start = rng.integers(0, 14 * 24 * 3600, n_participants)
    cum = np.cumsum(gaps)
    first_of = np.r_[0, np.flatnonzero(np.diff(s_part)) + 1]
    before = np.repeat(cum[first_of] - gaps[first_of], np.diff(np.r_[first_of, n_slot]))
    submitted = _START + (start[s_part] + (cum - before)).astype("timedelta64[s]")
    submitted_text = np.char.add(np.datetime_as_string(submitted, unit="s").astype(object), "Z")

    # ---- one row per (slot, criterion, model); check pages keep only their criterion ----------------------------
    rank_slot = np.repeat(np.arange(n_slot), n_crit)
    rank_crit = np.tile(np.arange(n_crit), n_slot)
    keep_rank = ~s_att[rank_slot] | (rank_crit == check_crit[rank_slot])
    rank_ids = np.flatnonzero(keep_rank)
    row_rank = np.repeat(rank_ids, k)
    model_idx = np.tile(np.arange(k), len(rank_ids))
    row_slot = rank_slot[row_rank]
    row_participant = s_part[row_slot]
    row_page = s_page[row_slot]
    init_pos = position[row_slot, model_idx]
    rank_flat = rank[row_rank, model_idx]
    n_rows = len(rank_flat)

    pids = _participant_ids(spec.round_id, seed, n_participants)
    cultures = np.array(spec.cultures, dtype=object)
    page_ids = np.array([p.id for p in catalogue], dtype=object)
    page_cult = np.array([p.culture for p in catalogue], dtype=object)
    prompt_ids = np.array([p.prompt_id for p in catalogue], dtype=object)
    page_seeds = np.array([p.seed for p in catalogue], dtype=np.int64)
    image_ids = _image_ids(spec.round_id, catalogue, spec.models)
    passed = pd.array(~slot_failed, dtype="boolean")
    passed[~s_att] = pd.NA

    columns = {
        "round_id": np.full(n_rows, spec.round_id, dtype=object),
        "participant_id": pids[row_participant],
        "participant_culture": cultures[p_culture[row_participant]],
        "page_id": page_ids[row_page],
        "page_culture": page_cult[row_page],
        "prompt_id": prompt_ids[row_page],
        "seed": page_seeds[row_page],
        "criterion": np.array(spec.criteria, dtype=object)[rank_crit[row_rank]],
        "model_id": np.array(spec.models, dtype=object)[model_idx],
        "image_id": image_ids[row_page, model_idx],
        "rank": rank_flat.astype(np.int64),
        "n_items": np.full(n_rows, k, dtype=np.int64),
        "initial_position": init_pos.astype(np.int64),
        "moved": rank_flat != init_pos + 1,
        "seconds_on_page": seconds[row_slot],
        "submitted_at": submitted_text[row_slot],
        "is_attention_check": s_att[row_slot],
        "is_repeat": s_rep[row_slot],
        "attention_passed": passed.take(row_slot),
        "excluded": excluded[row_participant],
    }
    return pd.DataFrame(columns, columns=COLUMNS)


def _ranks_descending(util: np.ndarray) -> np.ndarray:
    """Rank 1 for the largest utility in each row."""
    order = np.argsort(-util, axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(1, util.shape[1] + 1)[None, :].repeat(len(util), axis=0), axis=1)
    return rank


def _participant_ids(round_id: str, seed: int, n: int) -> np.ndarray:
    """Pseudonymous ids, stable for (round, seed, index)."""
    rng = np.random.default_rng([seed, int.from_bytes(hashlib.sha256(round_id.encode()).digest()[:4], "big")])
    raw = rng.integers(0, 2**63, size=n, dtype=np.int64)
    ids = np.array([f"p{v:016x}" for v in raw], dtype=object)
    if len(set(ids)) != n:  # astronomically unlikely; fall back to indices
        ids = np.array([f"p{i:016x}" for i in range(n)], dtype=object)
    return ids


def _image_ids(round_id: str, catalogue: Sequence[SimPage], models: Sequence[str]) -> np.ndarray:
    out = np.empty((len(catalogue), len(models)), dtype=object)
    for i, p in enumerate(catalogue):
        for j, m in enumerate(models):
            out[i, j] = "img-" + hashlib.sha1(f"{round_id}/{p.id}/{m}".encode()).hexdigest()[:16]
    return out


def write_responses(df: pd.DataFrame, path: str | Path) -> Path:
    """Write responses as CSV with the DESIGN column order (booleans as ``true``/``false``, missing as empty)."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"responses lack columns {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = df[COLUMNS].copy()
    for col in ("moved", "is_attention_check", "is_repeat", "attention_passed", "excluded"):
        values = out[col].astype("boolean")
        text = np.where(values.fillna(False).to_numpy(dtype=bool), "true", "false").astype(object)
        text[values.isna().to_numpy()] = ""
        out[col] = text
    out.to_csv(path, index=False)
    return path
