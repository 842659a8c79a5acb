"""Per-participant sufficient statistics of a long ranking table, and participant-bootstrap weights.

Every statistic the report bootstraps is a ratio of sums over participants (rank sums, pairwise win counts,
Plackett–Luce stage counts). The table is reduced once to participant-level arrays; a bootstrap resample is then a
row of a ``B × P`` matrix of multinomial counts, and every resample's statistic comes out of one matrix product.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

JUDGMENT_KEYS = ("participant_id", "page_id", "criterion", "is_repeat", "is_attention_check")


def main_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that enter the main analysis: first rankings only (repeat pages serve test–retest reliability)."""
    if "is_repeat" in df.columns and df["is_repeat"].to_numpy(dtype=bool).any():
        return df[~df["is_repeat"].to_numpy(dtype=bool)]
    return df


def codes(values: pd.Series | np.ndarray) -> tuple[np.ndarray, pd.Index]:
    """Dense integer codes and the sorted distinct values (category order for categoricals)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        raw = values.cat.codes.to_numpy().astype(np.int64)
        n_cat = len(values.cat.categories)
        used = np.flatnonzero(np.bincount(raw[raw >= 0], minlength=n_cat)) if len(raw) else np.zeros(0, np.int64)
        lookup = np.full(len(values.cat.categories), -1, dtype=np.int64)
        lookup[used] = np.arange(len(used))
        return lookup[raw], pd.Index(values.cat.categories[used])
    c, uniques = pd.factorize(values, sort=True)
    return c.astype(np.int64), pd.Index(uniques)


def judgment_ids(df: pd.DataFrame, keys: tuple[str, ...] = JUDGMENT_KEYS) -> np.ndarray:
    """One integer per (participant, page, criterion, repeat) ranking, dense 0..J-1."""
    key = np.zeros(len(df), dtype=np.int64)
    for col in keys:
        if col not in df.columns:
            continue
        c, uniq = codes(df[col])
        key = key * max(len(uniq), 1) + c
    return pd.factorize(key)[0].astype(np.int64)


def bootstrap_weights(n: int, n_boot: int, seed: int | np.random.Generator) -> np.ndarray:
    """``n_boot × n`` matrix: how many times each participant is drawn in each resample (rows sum to n).

    Each row counts ``n`` draws with replacement (multinomial with equal probabilities), tallied with one bincount.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if n_boot <= 0 or n == 0:
        return np.zeros((max(n_boot, 0), n))
    draws = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0, ignoring resamples where the statistic is undefined."""
    if samples.shape[0] == 0:
        nan = np.full(samples.shape[1:], np.nan)
        return nan, nan
    tail = 100 * (1 - level) / 2
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
        lo, hi = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
    return lo, hi


def pairwise_mean_rank(wins: np.ndarray, both: np.ndarray) -> np.ndarray:
    """Mean rank on the 1..K scale rebuilt from pairwise comparisons: ``1 + Σ_{j≠i} P̂(j ranked above i)``.

    ``wins`` and ``both`` are (..., K, K) counts of judgments ranking a above b / ranking both. For complete rankings
    this equals the ordinary mean rank (an item's rank is one plus the number of items above it). For partial
    rankings it is what a missing item cannot move: deleting an item from a ranking leaves the order of every other
    pair unchanged, so only the comparisons with the missing item change (and under Plackett–Luce the chance that i is
    ranked above j does not depend on which other items are shown). NaN where some pair was never ranked together.
    """
    wins = np.asarray(wins, dtype=np.float64)
    both = np.asarray(both, dtype=np.float64)
    k = wins.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        lost = np.where(both > 0, (both - wins) / np.where(both > 0, both, 1.0), np.nan)
    lost = np.where(np.eye(k, dtype=bool), 0.0, lost)
    return 1.0 + lost.sum(axis=-1)


@dataclass(frozen=True)
class RankTable:
    """A long table reduced to a judgments × models rank matrix and a participant code per judgment."""

    participants: pd.Index
    models: pd.Index
    ranks: np.ndarray  # (J, K) float, NaN where the model is absent from the judgment
    participant_of: np.ndarray  # (J,) int codes into ``participants``

    @classmethod
    def from_long(
        cls,
        df: pd.DataFrame,
        *,
        keep_repeats: bool = False,
        group_col: str = "participant_id",
        item_col: str = "model_id",
    ) -> RankTable:
        """Reduce a long table; ``group_col`` names the unit whose sums are kept (participants by default)."""
        missing = [c for c in ("participant_id", item_col, "rank", group_col) if c not in df.columns]
        if missing:
            raise ValueError(f"long table lacks column(s) {missing}")
        if not keep_repeats:
            df = main_rows(df)
        pcode, participants = codes(df[group_col])
        mcode, models = codes(df[item_col])
        jid = judgment_ids(df)
        n_j = int(jid.max()) + 1 if len(jid) else 0
        ranks = np.full((n_j, len(models)), np.nan)
        ranks[jid, mcode] = df["rank"].to_numpy(dtype=np.float64)
        if np.count_nonzero(~np.isnan(ranks)) != np.count_nonzero(~np.isnan(df["rank"].to_numpy(dtype=np.float64))):
            raise ValueError("a model appears twice in one ranking (participant, page, criterion)")
        participant_of = np.zeros(n_j, dtype=np.int64)
        participant_of[jid] = pcode
        return cls(participants, models, ranks, participant_of)

    # -- sizes ---------------------------------------------------------------------------------------------
    @property
    def n_participants(self) -> int:
        return len(self.participants)

    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def n_judgments(self) -> int:
        return self.ranks.shape[0]

    def _per_participant(self, values: np.ndarray) -> np.ndarray:
        """Sum ``values`` (J × ...) within participants → (P × ...)."""
        flat = values.reshape(values.shape[0], -1)
        out = np.empty((self.n_participants, flat.shape[1]))
        for col in range(flat.shape[1]):
            out[:, col] = np.bincount(self.participant_of, weights=flat[:, col], minlength=self.n_participants)
        return out.reshape((self.n_participants, *values.shape[1:]))

    # -- sufficient statistics -----------------------------------------------------------------------------
    @cached_property
    def present(self) -> np.ndarray:
        return ~np.isnan(self.ranks)

    @cached_property
    def rank_sums(self) -> np.ndarray:
        """(P, K) sum of each model's ranks per participant."""
        return self._per_participant(np.where(self.present, self.ranks, 0.0))

    @cached_property
    def rank_counts(self) -> np.ndarray:
        """(P, K) number of judgments in which each participant ranked each model."""
        return self._per_participant(self.present.astype(np.float64))

    @cached_property
    def max_rank(self) -> int:
        return int(np.nanmax(self.ranks)) if self.present.any() else 0

    @cached_property
    def rank_histogram(self) -> np.ndarray:
        """(P, K, V) number of judgments in which each participant gave model k the rank v+1."""
        v = self.max_rank
        onehot = np.zeros((self.n_judgments, self.n_models, v))
        j, k = np.nonzero(self.present)
        onehot[j, k, self.ranks[j, k].astype(np.int64) - 1] = 1.0
        return self._per_participant(onehot)

    @cached_property
    def wins(self) -> np.ndarray:
        """(P, K, K) judgments in which the participant ranked a above b (both present)."""
        r = self.ranks
        with np.errstate(invalid="ignore"):
            better = (r[:, :, None] < r[:, None, :]).astype(np.float64)
        return self._per_participant(better)

    @cached_property
    def both(self) -> np.ndarray:
        """(P, K, K) judgments in which both a and b were ranked."""
        p = self.present.astype(np.float64)
        return self._per_participant(p[:, :, None] * p[:, None, :])

    @cached_property
    def complete(self) -> bool:
        """Whether every ranking ranks every model of the table (no partial rankings)."""
        return bool(self.present.all())

    @cached_property
    def n_partial(self) -> int:
        """Number of rankings that leave out some model of the table."""
        return int(np.count_nonzero(~self.present.all(axis=1)))

    def participant_means(self) -> np.ndarray:
        """(P, K) each participant's mean rank of each model (NaN where never ranked).

        With partial rankings, the mean rank rebuilt from the participant's pairwise comparisons
        (:func:`pairwise_mean_rank`; NaN where the participant never ranked some pair together).
        """
        if not self.complete:
            return pairwise_mean_rank(self.wins, self.both)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.rank_sums / self.rank_counts

    def pooled_mean_ranks(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Mean rank of each model over all judgments (K,), or per row of participant ``weights`` (B, P) → (B, K).

        Partial rankings use :func:`pairwise_mean_rank`; complete ones the plain ratio of rank sums to counts.
        """
        k = self.n_models
        if self.complete:
            num, den = self.rank_sums, self.rank_counts
        else:
            num, den = self.wins.reshape(-1, k * k), self.both.reshape(-1, k * k)
        num, den = (num.sum(axis=0), den.sum(axis=0)) if weights is None else (weights @ num, weights @ den)
        if self.complete:
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        return pairwise_mean_rank(num.reshape(*num.shape[:-1], k, k), den.reshape(*den.shape[:-1], k, k))
