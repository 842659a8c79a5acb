"""Pure assignment logic: which pages a participant gets, in which order, with which image and criteria order.

Nothing here touches the database or the clock; callers pass the current coverage and counters, and the
result depends only on the arguments (same arguments and seed → same plan).

- Pages: the least-covered pages of the participant's culture first (coverage = submitted rankings plus live
  leases), ties broken by a seeded shuffle; pages already at ``target`` are not handed out.
- Image order (``"latin"``): the culture's regular slots, counted by ``latin_base``, fall into blocks of K;
  block ``b`` is a random Latin square of its own, built row by row (each row drawn uniformly among the orders
  that share no (model, position) with the block's earlier rows), seeded from ``order_seed`` and ``b`` only. So
  every model is shown equally often (±1) in every position within a culture at every moment, yet no fixed row
  sequence, cyclic structure or design-order row exists: two pages in different blocks are independent, and two
  pages in the same block share nothing but the fact that balance forces (never the same model in the same
  position). ``"shuffle"`` draws a seeded random order instead (no balance).
- Criteria: design order (``fixed``) or rotated by the participant's index within the culture (``counterbalanced``).
- Attention checks: an instructed item — one clearly marked image must be ranked last on one stated criterion.
- Repeat pages: an earlier regular page shown again later with a different image order (test–retest).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
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
    # the culture's order seed (same for every participant of one round and culture; keep it secret, e.g.
    # :func:`culture_order_seed`); empty: derived from the models and the culture's pages
    order_seed: str = ""


def rng_for(*parts: object) -> random.Random:
    """A generator seeded from a stable hash of ``parts`` (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def culture_order_seed(secret: str, design_seed: object, round_id: str, culture: str) -> str:
    """The order seed of one culture of one round: keyed, so orders cannot be recomputed from the public design."""
    return hmac.new(
        secret.encode(), f"order\x1f{design_seed}\x1f{round_id}\x1f{culture}".encode(), "sha256"
    ).hexdigest()


@functools.cache
def _perms(k: int) -> tuple[tuple[int, ...], ...]:
    return tuple(itertools.permutations(range(k)))


def _matchings(allowed: list[list[bool]], rng: random.Random) -> tuple[int, ...]:
    """A random perfect matching position → model index in the bipartite graph ``allowed``.

    Uniform over all matchings for K ≤ 6 (enumerated); a randomised depth-first search above that. The graph is
    always regular (a Latin rectangle's complement), so a matching exists (König).
    """
    k = len(allowed)
    if k <= 6:
        options = [perm for perm in _perms(k) if all(allowed[p][m] for p, m in enumerate(perm))]
        return options[rng.randrange(len(options))]
    order: list[int] = []
    used = [False] * k

    def dfs(p: int) -> bool:
        if p == k:
            return True
        cands = [m for m in range(k) if allowed[p][m] and not used[m]]
        rng.shuffle(cands)
        for m in cands:
            used[m] = True
            order.append(m)
            if dfs(p + 1):
                return True
            used[m] = False
            order.pop()
        return False

    if not dfs(0):  # pragma: no cover - impossible for a regular bipartite graph
        raise RuntimeError("no balanced order exists")
    return tuple(order)


def block_rows(models: Sequence[str], order_seed: str, block: int, n_rows: int) -> list[tuple[str, ...]]:
    """The first ``n_rows`` rows of block ``block``'s random Latin square (depends on the seed and block only)."""
    k = len(models)
    rng = rng_for(order_seed, "block", block)
    allowed = [[True] * k for _ in range(k)]
    rows: list[tuple[str, ...]] = []
    for _ in range(min(n_rows, k)):
        perm = _matchings(allowed, rng)
        for p, m in enumerate(perm):
            allowed[p][m] = False
        rows.append(tuple(models[m] for m in perm))
    return rows


def balanced_orders(models: Sequence[str], order_seed: str, first: int, count: int) -> list[tuple[str, ...]]:
    """Image orders of the culture's regular slots ``first … first+count-1``: slot n is row ``n % K`` of block
    ``n // K``'s square."""
    k = len(models)
    blocks: dict[int, list[tuple[str, ...]]] = {}
    out = []
    for n in range(first, first + count):
        b = n // k
        if b not in blocks:
            blocks[b] = block_rows(models, order_seed, b, k)
        out.append(blocks[b][n % k])
    return out


def different_order(order: Sequence[str], rng: random.Random) -> tuple[str, ...]:
    """A random order with every model in another position than in ``order`` (a derangement); K = 1: the same."""
    k = len(order)
    if k < 2:
        return tuple(order)
    allowed = [[m != p for m in range(k)] for p in range(k)]
    return tuple(order[m] for m in _matchings(allowed, rng))


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
    order_seed = req.order_seed or "\x1f".join(("derived", *req.models, *sorted(req.culture_pages)))
    balanced = (
        balanced_orders(req.models, order_seed, req.latin_base, len(pages)) if req.position_balance == "latin" else []
    )
    regular: list[SlotPlan] = []
    for i, page in enumerate(pages):
        if req.position_balance == "latin":
            row = (req.latin_base + i) % k  # the row within the slot's block (the block's square is random)
            order = balanced[i]
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
        order = different_order(source.model_order, repeat_rng)
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
