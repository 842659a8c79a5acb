"""Crossed ("pigeonhole", two-way) bootstrap over participants AND pages.

Participants are a sample of people and pages (prompt, seed) a sample of stimuli; images on one page share their
model-specific quality, so judgments are correlated within a page as well as within a participant. The pigeonhole
bootstrap (Owen 2007, "The pigeonhole bootstrap", Ann. Appl. Stat. 1(2)) draws participants with replacement and,
independently, pages with replacement; a judgment's weight in a resample is the product of its participant's and its
page's multiplicities. Every statistic here is a ratio of weighted sums over judgments (rank sums, pairwise wins,
Plackett–Luce stage counts) or, for Krippendorff's α, built from weighted value counts per image, so ``B`` resamples
are a few matrix products over a per-judgment table of sufficient statistics (computed in chunks of resamples so the
``B × J`` weight matrix is never held at once).

With ``pages=False`` the page weights are all 1 and this is the participant (cluster) bootstrap of ``analysis.stats``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from analysis._alpha import distances
from analysis._pl import StageTypes, stage_counts, stage_types
from analysis._tables import RankTable, bootstrap_weights, codes, judgment_ids, main_rows, pairwise_mean_rank

_CHUNK_ELEMENTS = 4_000_000  # resamples × judgments per chunk of the weight matrix (32 MB of float64)


@dataclass(frozen=True)
class CrossedWeights:
    """Multiplicities of each participant and each page in each of ``B`` resamples (rows sum to P and G)."""

    participant: np.ndarray  # (B, P)
    page: np.ndarray  # (B, G)
    seed: int
    pages_resampled: bool

    @property
    def n_boot(self) -> int:
        return self.participant.shape[0]

    @classmethod
    def draw(cls, n_participants: int, n_pages: int, n_boot: int, seed: int, *, pages: bool = True) -> CrossedWeights:
        """Participants first, then pages, from one generator seeded with ``seed`` (reproducible)."""
        rng = np.random.default_rng(seed)
        wp = bootstrap_weights(n_participants, n_boot, rng)
        wg = bootstrap_weights(n_pages, n_boot, rng) if pages else np.ones((max(n_boot, 0), n_pages))
        return cls(wp, wg, int(seed), bool(pages))

    def judgment_sums(
        self, participant_of: np.ndarray, page_of: np.ndarray, x: np.ndarray, *, cell_max: int | None = None
    ) -> np.ndarray:
        """(B, ...) weighted sums over judgments of ``x`` (J, ...); judgment weight = participant × page weight.

        Weights are integers, and so are the usual statistics (ranks, indicators, counts). When every partial sum is
        bounded below 2**24 — at most ``max |x| · cell_max · P · G``, ``cell_max`` being the most judgments that share
        a (participant, page) — float32 products are exact and the matrix products run at twice the speed.
        """
        j = x.shape[0]
        flat = np.ascontiguousarray(x.reshape(j, -1), dtype=np.float64)
        n_p, n_g = self.participant.shape[1], self.page.shape[1]
        if cell_max is None:
            cell_max = int(np.bincount(participant_of * n_g + page_of).max()) if j else 0
        exact32 = (
            j > 0
            and float(flat.min()) >= 0
            and float(flat.max()) * cell_max * n_p * n_g < 2**24
            and bool(np.all(flat == np.round(flat)))
        )
        dtype = np.float32 if exact32 else np.float64
        flat = flat.astype(dtype, copy=False)
        wp, wg = self.participant.astype(dtype, copy=False), self.page.astype(dtype, copy=False)
        out = np.empty((self.n_boot, flat.shape[1]))
        step = max(1, _CHUNK_ELEMENTS // max(j, 1))
        for first in range(0, self.n_boot, step):
            sl = slice(first, first + step)
            w = wp[sl][:, participant_of]
            w *= wg[sl][:, page_of]
            out[sl] = w @ flat
        return out.reshape((self.n_boot, *x.shape[1:]))


def page_codes(df: pd.DataFrame, t: RankTable) -> tuple[np.ndarray, pd.Index]:
    """The page of each judgment of ``t`` (built from the same rows by ``RankTable.from_long``) and the pages."""
    rows = main_rows(df)
    jid = judgment_ids(rows)
    gcode, pages = codes(rows["page_id"])
    page_of = np.zeros(t.n_judgments, dtype=np.int64)
    page_of[jid] = gcode
    return page_of, pages


# -- per-judgment sufficient statistics -----------------------------------------------------------------------------
def rank_columns(t: RankTable) -> np.ndarray:
    """(J, 2, K): each judgment's rank of each model (0 where absent) and whether it was ranked."""
    present = t.present
    return np.stack([np.where(present, t.ranks, 0.0), present.astype(np.float64)], axis=1)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


# -- Krippendorff's alpha ---------------------------------------------------------------------------------------------
def _distances_batch(values: np.ndarray, margins: np.ndarray, level: str) -> np.ndarray:
    """(B, V, V) δ² for each row of coincidence margins (only the ordinal metric depends on them)."""
    if level != "ordinal":
        return np.broadcast_to(distances(values, margins[0], level), (len(margins), len(values), len(values)))
    v = len(values)
    cum = np.concatenate([np.zeros((len(margins), 1)), np.cumsum(margins, axis=1)], axis=1)
    lo = np.minimum.outer(np.arange(v), np.arange(v))
    hi = np.maximum.outer(np.arange(v), np.arange(v))
    between = cum[:, hi + 1] - cum[:, lo]
    return (between - (margins[:, lo] + margins[:, hi]) / 2.0) ** 2


def alpha_batch(o: np.ndarray, values: np.ndarray, level: str) -> np.ndarray:
    """Alpha for each of a stack of pooled coincidence matrices ``o`` (B, V, V) over sorted distinct ``values``."""
    margins = o.sum(axis=2)
    n = margins.sum(axis=1)
    d2 = _distances_batch(values, margins, level)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.sum(o * d2, axis=(1, 2)) / n
        expected = np.einsum("bv,bw,bvw->b", margins, margins, d2) / (n * (n - 1))
        alpha = 1.0 - observed / expected
    ok = (n > 1) & (np.count_nonzero(margins, axis=1) >= 2) & (expected > 0)
    return np.where(ok, alpha, np.nan)


def alpha_resamples(df: pd.DataFrame, weights: CrossedWeights, participants: pd.Index, pages: pd.Index) -> np.ndarray:
    """Krippendorff's α (ordinal) of each resample: units = images (page × model), raters = participants.

    A participant drawn w times is w raters with the same values, but copies of one participant are never paired with
    each other (a rater cannot agree with themselves: pairing copies would inflate α, and the interval would miss the
    estimate); a page drawn w times is w copies of its images. Per resample, value counts per image are
    participant-weighted sums ``n`` (one sparse product) and ``s`` the sums of squared weights, each image's coincidence
    matrix is ``(n nᵀ − diag s) / (m − 1)``, and the page weight multiplies it before pooling.
    """
    rows = main_rows(df)
    rows = rows[rows["rank"].notna()]
    p = pd.Index(participants).get_indexer(rows["participant_id"])
    g = pd.Index(pages).get_indexer(rows["page_id"])
    mcode, models = codes(rows["model_id"])
    vcode, values = codes(rows["rank"].astype(np.float64))
    n_v, n_k = len(values), len(models)
    unit = g * n_k + mcode
    n_units = len(pages) * n_k
    m = sparse.csr_matrix(
        (np.ones(len(rows)), (unit * n_v + vcode, p)), shape=(n_units * n_v, len(participants))
    )  # (U·V, P)
    unit_page = np.repeat(np.arange(len(pages)), n_k)
    out = np.empty((weights.n_boot, n_v, n_v))
    step = max(1, _CHUNK_ELEMENTS // max(n_units * n_v, 1))
    for first in range(0, weights.n_boot, step):
        sl = slice(first, first + step)
        wp = weights.participant[sl]
        counts = np.asarray(m @ wp.T).T.reshape(-1, n_units, n_v)  # (b, U, V)
        squares = np.asarray(m @ (wp * wp).T).T.reshape(-1, n_units, n_v)  # Σ w² per value: same-rater pairs
        size = counts.sum(axis=2)
        scale = np.where(size >= 2, weights.page[sl][:, unit_page] / np.where(size >= 2, size - 1, 1.0), 0.0)
        out[sl] = np.einsum("buv,buw->bvw", counts * scale[:, :, None], counts)
        diag = (squares * scale[:, :, None]).sum(axis=1)
        idx = np.arange(n_v)
        out[sl, idx, idx] -= diag
    return alpha_batch(out, values.to_numpy(dtype=np.float64), "ordinal")


@dataclass(frozen=True)
class Resampler:
    """Weighted sums over the judgments of one table, for every resample of a :class:`CrossedWeights`."""

    weights: CrossedWeights
    participant_of: np.ndarray  # (J,)
    page_of: np.ndarray  # (J,)
    n_pages: int
    cell_max: int  # most judgments sharing one (participant, page)

    @classmethod
    def for_table(
        cls, df: pd.DataFrame, t: RankTable, n_boot: int, seed: int, *, pages: bool = True
    ) -> tuple[Resampler, pd.Index]:
        page_of, page_index = page_codes(df, t)
        w = CrossedWeights.draw(t.n_participants, len(page_index), n_boot, seed, pages=pages)
        cell = t.participant_of * max(len(page_index), 1) + page_of
        cell_max = int(np.bincount(cell).max()) if len(cell) else 0
        return cls(w, t.participant_of, page_of, len(page_index), cell_max), page_index

    @property
    def n_boot(self) -> int:
        return self.weights.n_boot

    def sums(self, x: np.ndarray) -> np.ndarray:
        return self.weights.judgment_sums(self.participant_of, self.page_of, x, cell_max=self.cell_max)

    def mean_ranks(self, t: RankTable) -> np.ndarray:
        """(B, K) mean rank of each model in each resample (from pairwise wins for partial rankings, as
        :meth:`analysis._tables.RankTable.pooled_mean_ranks`)."""
        if not t.complete:
            types = stage_types(t.ranks)
            counts = self.sums(stage_counts(types, np.arange(t.n_judgments), t.n_judgments))
            wins = np.einsum("bt,tkl->bkl", counts, stage_wins(types))
            return pairwise_mean_rank(wins, wins + wins.transpose(0, 2, 1))
        s = self.sums(rank_columns(t))
        return ratio(s[:, 0], s[:, 1])


@dataclass(frozen=True)
class GroupResamples:
    """Every resample's mean ranks, win rates and Plackett–Luce stage counts of one table, from ONE weighted sum."""

    n_boot: int
    mean_ranks: np.ndarray  # (B, K)
    win_rates: np.ndarray  # (B, K, K)
    types: StageTypes
    stage_counts: np.ndarray  # (J, T) per judgment
    stage_count_sums: np.ndarray  # (B, T) per resample


def stage_wins(types: StageTypes) -> np.ndarray:
    """(T, K, K): a stage of this type means "a ranked above b" for a = the chosen item and b the rest of the set.

    A strict ranking ranks a above b exactly when b is still in the choice set at the stage where a is chosen, so a
    table's pairwise win counts are these matrices weighted by its stage-type counts.
    """
    k = types.sets.shape[1]
    beats = np.eye(k)[types.chosen][:, :, None] * types.sets[:, None, :].astype(np.float64)
    beats[:, np.arange(k), np.arange(k)] = 0.0
    return beats


def resample_group(t: RankTable, r: Resampler) -> GroupResamples:
    """One weighted sum over judgments of (rank, ranked) per model and the Plackett–Luce stage-type counts; pairwise
    wins follow from the stage counts (:func:`stage_wins`), which halves the matrix products."""
    k = t.n_models
    types = stage_types(t.ranks)
    per_judgment = stage_counts(types, np.arange(t.n_judgments), t.n_judgments)
    s = r.sums(np.hstack([rank_columns(t).reshape(t.n_judgments, -1), per_judgment]))
    ranks = s[:, : 2 * k].reshape(-1, 2, k)
    counts = s[:, 2 * k :]
    wins = np.einsum("bt,tkl->bkl", counts, stage_wins(types))
    both = wins + wins.transpose(0, 2, 1)  # rankings are strict: of two ranked models, one is above the other
    return GroupResamples(
        n_boot=r.n_boot,
        mean_ranks=ratio(ranks[:, 0], ranks[:, 1]) if t.complete else pairwise_mean_rank(wins, both),
        win_rates=ratio(wins, both),
        types=types,
        stage_counts=per_judgment,
        stage_count_sums=counts,
    )
