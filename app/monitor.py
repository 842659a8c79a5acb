"""Round monitoring as pure functions over plain rows: coverage, participants by status, timing and quality flags.

A thin query layer (``app.console_data``) turns database rows into the dataclasses below; everything here is
deterministic and database-free so it can be tested on hand-written rows. ``now`` is always passed in.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations

from app.flow import status as flow_status

STATUSES = flow_status.STATUS_VALUES  # the order the console lists them in

FLAG_FAILED_ATTENTION = "failed_attention"
FLAG_SPEEDING = "speeding"
FLAG_UNTOUCHED = "untouched"
FLAG_IDENTICAL = "identical_criteria"
FLAG_RETEST = "retest_disagreement"
FLAGS = (FLAG_FAILED_ATTENTION, FLAG_SPEEDING, FLAG_UNTOUCHED, FLAG_IDENTICAL, FLAG_RETEST)


# -- inputs ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageRef:
    id: str
    culture: str


@dataclass(frozen=True, slots=True)
class ParticipantRow:
    id: int
    pseudonym: str
    status: str
    culture: str | None = None
    platform: str = "none"
    failed_checks: int = 0
    exclusion_reason: str | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    last_seen_at: datetime | None = None
    language: str | None = None

    @property
    def excluded_by_researcher(self) -> bool:
        return self.status == flow_status.ParticipantStatus.EXCLUDED


@dataclass(frozen=True, slots=True)
class SlotRow:
    """One assigned page position of one participant."""

    id: int
    participant_id: int
    page_id: str
    position: int = 0
    kind: str = "regular"  # regular | attention | repeat
    leased_until: datetime | None = None
    submitted_at: datetime | None = None
    seconds_on_page: float | None = None
    attention_passed: bool | None = None


@dataclass(frozen=True, slots=True)
class RankingRow:
    """One image's rank under one criterion on one submitted slot (rank 1 = best; initial_position 0-based)."""

    slot_id: int
    criterion: str
    image_id: str
    rank: int
    initial_position: int


@dataclass(frozen=True, slots=True)
class FlagRules:
    """When a quality signal becomes a flag. Counts are always reported; flags only point the researcher at them."""

    min_seconds_per_page: float = 0.0
    untouched_share: float = 0.5  # flag when at least this share of a participant's judgments were left as shown
    untouched_min_judgments: int = 2
    identical_share: float = 0.5  # flag when at least this share of pages got one ranking for every criterion
    retest_max_tau: float = 0.0  # flag when the mean Kendall tau between a page and its repeat is below this
    broken_check_rate: float = 0.5  # an attention page failed by at least this share of raters ...
    broken_check_min_n: int = 3  # ... out of at least this many looks broken rather than careless
    exclude_after_failed_checks: int | None = None  # the design's exclusion rule (None: no attention checks)


# -- outputs ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CoverageCell:
    page_id: str
    culture: str
    done: int
    target: int
    leased: int
    excluded: int = 0  # of ``done``: rankings by participants the export marks excluded

    @property
    def complete(self) -> bool:
        return self.done >= self.target

    @property
    def valid(self) -> int:
        return self.done - self.excluded


@dataclass(frozen=True, slots=True)
class CultureCoverage:
    culture: str
    cells: tuple[CoverageCell, ...]

    @property
    def done(self) -> int:
        return sum(c.done for c in self.cells)

    @property
    def target(self) -> int:
        return sum(c.target for c in self.cells)

    @property
    def leased(self) -> int:
        return sum(c.leased for c in self.cells)

    @property
    def excluded(self) -> int:
        return sum(c.excluded for c in self.cells)

    @property
    def pages_complete(self) -> int:
        return sum(c.complete for c in self.cells)


@dataclass(frozen=True, slots=True)
class ParticipantQuality:
    participant_id: int
    pages_submitted: int = 0
    failed_checks: int = 0
    speeding_pages: int = 0
    judgments: int = 0
    untouched_judgments: int = 0
    identical_pages: int = 0
    retest_tau: float | None = None
    median_seconds: float | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AttentionHealth:
    page_id: str
    n: int
    failed: int
    looks_broken: bool

    @property
    def failure_rate(self) -> float:
        return self.failed / self.n if self.n else 0.0


@dataclass(frozen=True, slots=True)
class RoundSummary:
    participants_by_status: dict[str, int]
    participants_total: int
    pages_submitted: int
    regular_pages_submitted: int
    attention_pages_submitted: int
    repeat_pages_submitted: int
    response_rows: int
    skipped_judgments: int
    live_leases: int
    median_seconds_per_page: float | None
    coverage_done: int
    coverage_excluded: int
    coverage_target: int
    flagged: dict[str, int] = field(default_factory=dict)


# -- computations ----------------------------------------------------------------------------------------------


def lease_live(slot: SlotRow, now: datetime) -> bool:
    return slot.submitted_at is None and slot.leased_until is not None and slot.leased_until > now


def is_excluded(p: ParticipantRow, exclude_after_failed_checks: int | None) -> bool:
    """Excluded by a researcher, or by the design's attention-check rule (as the export marks it)."""
    return flow_status.is_excluded(p.status, p.failed_checks, exclude_after_failed_checks)


def _live(p: ParticipantRow) -> bool:
    """Still taking part (holds live leases, may add rankings); unknown statuses count as not live."""
    return p.status in flow_status.LIVE_STATUSES


def coverage_matrix(
    pages: Sequence[PageRef],
    slots: Iterable[SlotRow],
    participants: Iterable[ParticipantRow],
    *,
    target: int,
    now: datetime,
    exclude_after_failed_checks: int | None = None,
) -> list[CultureCoverage]:
    """Culture × page: rankings done (submitted regular pages, as assignment counts them; ``excluded`` says how
    many of them the export marks excluded), the target, and live leases of participants still taking part."""
    people = {p.id: p for p in participants}
    done: Counter[str] = Counter()
    excluded: Counter[str] = Counter()
    leased: Counter[str] = Counter()
    for s in slots:
        p = people.get(s.participant_id)
        if s.kind != "regular" or p is None:
            continue
        if s.submitted_at is not None:
            done[s.page_id] += 1
            excluded[s.page_id] += is_excluded(p, exclude_after_failed_checks)
        elif _live(p) and lease_live(s, now):
            leased[s.page_id] += 1
    by_culture: dict[str, list[CoverageCell]] = defaultdict(list)
    for pg in pages:
        by_culture[pg.culture].append(
            CoverageCell(pg.id, pg.culture, done[pg.id], target, leased[pg.id], excluded[pg.id])
        )
    return [CultureCoverage(c, tuple(cells)) for c, cells in by_culture.items()]


def participants_by_status(participants: Iterable[ParticipantRow]) -> dict[str, int]:
    counts = Counter(p.status for p in participants)
    out = {s: counts.pop(s, 0) for s in STATUSES}
    out.update(sorted(counts.items()))
    return out


def median_seconds_per_page(slots: Iterable[SlotRow]) -> float | None:
    times = [s.seconds_on_page for s in slots if s.submitted_at is not None and s.seconds_on_page is not None]
    return float(statistics.median(times)) if times else None


def _orders(rankings: Iterable[RankingRow]) -> dict[tuple[int, str], dict[str, RankingRow]]:
    """(slot, criterion) -> image -> row."""
    out: dict[tuple[int, str], dict[str, RankingRow]] = defaultdict(dict)
    for r in rankings:
        out[(r.slot_id, r.criterion)][r.image_id] = r
    return out


def untouched(judgment: Mapping[str, RankingRow]) -> bool:
    """The final order equals the order in which the images were first shown."""
    return all(r.rank == r.initial_position + 1 for r in judgment.values())


def kendall_tau(a: Mapping[str, int], b: Mapping[str, int]) -> float | None:
    """Kendall's tau-a between two rankings of the same items (None when fewer than two shared items)."""
    items = sorted(set(a) & set(b))
    pairs = list(combinations(items, 2))
    if not pairs:
        return None
    score = 0
    for x, y in pairs:
        da, db = a[x] - a[y], b[x] - b[y]
        score += (da * db > 0) - (da * db < 0)
    return score / len(pairs)


def participant_quality(
    participants: Sequence[ParticipantRow],
    slots: Sequence[SlotRow],
    rankings: Iterable[RankingRow],
    rules: FlagRules,
) -> dict[int, ParticipantQuality]:
    """Per participant: counts behind each quality signal and the flags they raise."""
    orders = _orders(rankings)
    by_slot: dict[int, dict[str, dict[str, RankingRow]]] = defaultdict(dict)
    for (slot_id, criterion), judgment in orders.items():
        by_slot[slot_id][criterion] = judgment
    slots_of: dict[int, list[SlotRow]] = defaultdict(list)
    for s in slots:
        if s.submitted_at is not None:
            slots_of[s.participant_id].append(s)

    out: dict[int, ParticipantQuality] = {}
    for p in participants:
        mine = sorted(slots_of.get(p.id, []), key=lambda s: s.position)
        judged = [s for s in mine if s.kind != "attention"]
        speeding = sum(
            1
            for s in judged
            if rules.min_seconds_per_page > 0
            and s.seconds_on_page is not None
            and s.seconds_on_page < rules.min_seconds_per_page
        )
        n_judgments = n_untouched = n_identical = n_multi = 0
        for s in judged:
            crit = by_slot.get(s.id, {})
            n_judgments += len(crit)
            n_untouched += sum(untouched(j) for j in crit.values())
            if len(crit) >= 2:
                n_multi += 1
                maps = [{img: r.rank for img, r in j.items()} for j in crit.values()]
                n_identical += all(m == maps[0] for m in maps[1:])
        taus: list[float] = []
        originals = {s.page_id: s for s in mine if s.kind == "regular"}
        for rep in (s for s in mine if s.kind == "repeat"):
            orig = originals.get(rep.page_id)
            if orig is None:
                continue
            first, again = by_slot.get(orig.id, {}), by_slot.get(rep.id, {})
            for criterion in sorted(set(first) & set(again)):
                tau = kendall_tau(
                    {i: r.rank for i, r in first[criterion].items()}, {i: r.rank for i, r in again[criterion].items()}
                )
                if tau is not None:
                    taus.append(tau)
        retest = statistics.fmean(taus) if taus else None
        failed = max(p.failed_checks, sum(1 for s in mine if s.kind == "attention" and s.attention_passed is False))
        flags = []
        if failed > 0:
            flags.append(FLAG_FAILED_ATTENTION)
        if speeding > 0:
            flags.append(FLAG_SPEEDING)
        if n_judgments >= rules.untouched_min_judgments and n_untouched >= rules.untouched_share * n_judgments:
            flags.append(FLAG_UNTOUCHED)
        if n_multi and n_identical >= rules.identical_share * n_multi:
            flags.append(FLAG_IDENTICAL)
        if retest is not None and retest < rules.retest_max_tau:
            flags.append(FLAG_RETEST)
        out[p.id] = ParticipantQuality(
            participant_id=p.id,
            pages_submitted=len(mine),
            failed_checks=failed,
            speeding_pages=speeding,
            judgments=n_judgments,
            untouched_judgments=n_untouched,
            identical_pages=n_identical,
            retest_tau=retest,
            median_seconds=median_seconds_per_page(judged),
            flags=tuple(flags),
        )
    return out


def attention_health(slots: Iterable[SlotRow], rules: FlagRules) -> list[AttentionHealth]:
    """Per attention page: a check most raters fail is probably broken, not a sign of careless raters."""
    n: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for s in slots:
        if s.kind == "attention" and s.submitted_at is not None and s.attention_passed is not None:
            n[s.page_id] += 1
            failed[s.page_id] += not s.attention_passed
    return [
        AttentionHealth(
            page_id,
            n[page_id],
            failed[page_id],
            n[page_id] >= rules.broken_check_min_n and failed[page_id] >= rules.broken_check_rate * n[page_id],
        )
        for page_id in sorted(n)
    ]


def round_summary(
    participants: Sequence[ParticipantRow],
    slots: Sequence[SlotRow],
    rankings: Sequence[RankingRow],
    coverage: Sequence[CultureCoverage],
    quality: Mapping[int, ParticipantQuality],
    *,
    skipped_judgments: int,
    now: datetime,
) -> RoundSummary:
    """The headline numbers; ``response_rows`` equals the number of rows of the round's responses.csv."""
    submitted = [s for s in slots if s.submitted_at is not None]
    submitted_ids = {s.id for s in submitted}
    kinds = Counter(s.kind for s in submitted)
    flagged = {f: sum(f in q.flags for q in quality.values()) for f in FLAGS}
    active = {p.id for p in participants if _live(p)}
    return RoundSummary(
        participants_by_status=participants_by_status(participants),
        participants_total=len(participants),
        pages_submitted=len(submitted),
        regular_pages_submitted=kinds["regular"],
        attention_pages_submitted=kinds["attention"],
        repeat_pages_submitted=kinds["repeat"],
        response_rows=sum(1 for r in rankings if r.slot_id in submitted_ids),
        skipped_judgments=skipped_judgments,
        live_leases=sum(1 for s in slots if s.participant_id in active and lease_live(s, now)),
        median_seconds_per_page=median_seconds_per_page(submitted),
        coverage_done=sum(c.done for c in coverage),
        coverage_excluded=sum(c.excluded for c in coverage),
        coverage_target=sum(c.target for c in coverage),
        flagged=flagged,
    )
