"""Pure assignment logic: which pages a participant gets, in which order, with which image and criteria order.

Nothing here touches the database or the clock; callers pass the current coverage and counters, and the
result depends only on the arguments (same arguments and seed → same plan).

- Pages: the least-covered pages of the participant's culture first (coverage = submitted rankings plus live
  leases), ties broken by a seeded shuffle; pages already at ``target`` are not handed out.
- Image order: row ``(latin_base + i) mod K`` of a cyclic Latin square over the models for the participant's
  i-th regular page, where ``latin_base`` counts the culture's earlier regular slots, so every model is shown
  equally often (±1) in every position within a culture. ``"shuffle"`` draws a seeded random order instead.
- Criteria: design order (``fixed``) or rotated by the participant's index within the culture (``counterbalanced``).
- Attention checks: an instructed item — one clearly marked image must be ranked last on one stated criterion.
- Repeat pages: an earlier regular page shown again later with a different image order (test–retest).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SlotPlan:
    position: int
    page_id: str
    kind: str  # "regular" | "attention" | "repeat"
    model_order: tuple[str, ...]
    criteria_order: tuple[str, ...]
    latin_row: int | None = None
    check_criterion: str | None = None
    check_model: str | None = None


@dataclass(frozen=True, slots=True)
class PlanRequest:
    seed: str
    culture_pages: tuple[str, ...]
    coverage: Mapping[str, int]
    target: int
    pages_per_participant: int
    models: tuple[str, ...]
    criteria: tuple[str, ...]
    latin_base: int
    participant_index: int
    position_balance: str = "latin"
    criteria_mode: str = "fixed"
    attention_checks: int = 0
    repeat_pages: int = 0
    check_criteria: tuple[str, ...] = ()


def rng_for(*parts: object) -> random.Random:
    """A generator seeded from a stable hash of ``parts`` (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def latin_row(models: Sequence[str], row: int) -> tuple[str, ...]:
    """Row ``row`` of the cyclic Latin square over ``models``: position p shows model (row + p) mod K."""
    k = len(models)
    return tuple(models[(row + p) % k] for p in range(k))


def choose_pages(
    culture_pages: Sequence[str], coverage: Mapping[str, int], *, target: int, k: int, rng: random.Random
) -> list[str]:
    """The ``k`` least-covered pages below ``target`` (fewer if not enough have room), seeded tie-breaks."""
    shuffled = list(culture_pages)
    rng.shuffle(shuffled)
    open_pages = [p for p in shuffled if coverage.get(p, 0) < target]
    open_pages.sort(key=lambda p: coverage.get(p, 0))  # stable: ties keep the seeded order
    return open_pages[:k]


def criteria_for(criteria: Sequence[str], mode: str, participant_index: int) -> tuple[str, ...]:
    if mode == "counterbalanced" and criteria:
        r = participant_index % len(criteria)
        return tuple(criteria[r:]) + tuple(criteria[:r])
    return tuple(criteria)


def spread_positions(n_regular: int, n_extra: int) -> list[int]:
    """Insertion indices (into the regular sequence) for ``n_extra`` items, evenly spaced, never first."""
    if n_extra <= 0:
        return []
    return [max(1, round((i + 1) * n_regular / (n_extra + 1))) for i in range(n_extra)]


def plan(req: PlanRequest) -> list[SlotPlan]:
    """The participant's slots in order. Empty when no page of the culture has room."""
    rng = rng_for(req.seed, "pages")
    pages = choose_pages(req.culture_pages, req.coverage, target=req.target, k=req.pages_per_participant, rng=rng)
    if not pages:
        return []
    crit = criteria_for(req.criteria, req.criteria_mode, req.participant_index)
    k = len(req.models)
    order_rng = rng_for(req.seed, "order")
    regular: list[SlotPlan] = []
    for i, page in enumerate(pages):
        if req.position_balance == "latin":
            row = (req.latin_base + i) % k
            order = latin_row(req.models, row)
        else:
            row = None
            shuffled = list(req.models)
            order_rng.shuffle(shuffled)
            order = tuple(shuffled)
        regular.append(SlotPlan(0, page, "regular", order, crit, latin_row=row))

    extras: list[SlotPlan] = []
    check_rng = rng_for(req.seed, "checks")
    check_pool = req.check_criteria or req.criteria
    # preferably pages the participant does not rank, each used once (one ranking per page and check flag)
    check_pages = [p for p in req.culture_pages if p not in pages] or list(req.culture_pages)
    check_rng.shuffle(check_pages)
    for i in range(req.attention_checks):
        page = check_pages[i % len(check_pages)]
        order = list(req.models)
        check_rng.shuffle(order)
        extras.append(
            SlotPlan(
                0,
                page,
                "attention",
                tuple(order),
                (check_rng.choice(list(check_pool)),),
                check_criterion=None,
                check_model=check_rng.choice(order),
            )
        )
    repeats: list[SlotPlan] = []
    repeat_rng = rng_for(req.seed, "repeat")
    n_repeat = min(req.repeat_pages, len(regular))
    first_half = regular[: max(1, len(regular) // 2)]
    for source in repeat_rng.sample(first_half, min(n_repeat, len(first_half))):
        row = ((source.latin_row or 0) + 1 + k // 2) % k if k > 1 else 0
        order = latin_row(req.models, row) if source.latin_row is not None else tuple(reversed(source.model_order))
        repeats.append(SlotPlan(0, source.page_id, "repeat", order, crit))

    sequence: list[SlotPlan] = list(regular)
    for idx, extra in sorted(
        zip(spread_positions(len(regular), len(extras)), extras, strict=True), reverse=True, key=lambda t: t[0]
    ):
        sequence.insert(idx, extra)
    sequence += repeats  # test–retest pages come last, as far from their first showing as possible
    out: list[SlotPlan] = []
    for pos, s in enumerate(sequence):
        check_criterion = s.criteria_order[0] if s.kind == "attention" else None
        out.append(
            SlotPlan(
                pos, s.page_id, s.kind, s.model_order, s.criteria_order, s.latin_row, check_criterion, s.check_model
            )
        )
    return out


def attention_passed(ranks_of_marked: int | None, n_items: int) -> bool:
    """An instructed item passes when the marked image was ranked last."""
    return ranks_of_marked == n_items
