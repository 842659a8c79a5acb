"""The validation of a submitted ranking page (pure: a form in, a ``Submission`` or a ``SubmissionError`` out)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.flow.errors import SubmissionError


@dataclass(frozen=True, slots=True)
class Submission:
    ranks: dict[str, tuple[int, ...]]  # criterion -> rank of the image at each shown position (1 = best)
    skipped: frozenset[str]

    def digest(self) -> str:
        canon = {c: list(r) for c, r in sorted(self.ranks.items())} | {f"skip:{c}": True for c in sorted(self.skipped)}
        return hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()


_FIELD = re.compile(r"^rank-([a-z0-9][a-z0-9_\-]*)-(\d{1,3})$")
_SKIP = re.compile(r"^skip-([a-z0-9][a-z0-9_\-]*)$")
ALLOWED_OTHER = {"token", "position"}


def parse_submission(
    form: Mapping[str, Sequence[str]], *, criteria: Sequence[str], n_items: int, skippable: set[str]
) -> Submission:
    """Validate a page's form (``rank-{criterion}-{i}`` = rank of the image shown i-th, 0-based).

    Every criterion needs a full permutation of 1..n_items, unless it may be skipped and ``skip-{criterion}`` is set.
    """
    given: dict[str, dict[int, int]] = {c: {} for c in criteria}
    skipped: set[str] = set()
    for key, values in form.items():
        if len(values) != 1:
            raise SubmissionError(f"Field {key!r} was sent more than once.")
        value = values[0]
        if key in ALLOWED_OTHER:
            continue
        if m := _SKIP.match(key):
            crit = m.group(1)
            if crit not in given:
                raise SubmissionError(f"Unknown question {crit!r}.")
            if crit not in skippable:
                raise SubmissionError(f"The question {crit!r} cannot be skipped.")
            skipped.add(crit)
            continue
        m = _FIELD.match(key)
        if not m:
            raise SubmissionError(f"Unknown field {key!r}.")
        crit, idx = m.group(1), int(m.group(2))
        if crit not in given:
            raise SubmissionError(f"Unknown question {crit!r}.")
        if idx >= n_items:
            raise SubmissionError(f"Unknown image: there is no Image {idx + 1} on this page.")
        try:
            rank = int(value)
        except ValueError:
            raise SubmissionError(f"Image {idx + 1}: the rank must be a number from 1 to {n_items}.") from None
        if not 1 <= rank <= n_items:
            raise SubmissionError(f"Image {idx + 1}: the rank must be from 1 to {n_items}.")
        given[crit][idx] = rank
    ranks: dict[str, tuple[int, ...]] = {}
    for crit in criteria:
        if crit in skipped:
            continue
        got = given[crit]
        if not got:
            raise SubmissionError(f"Missing answer for the question {crit!r}.")
        missing = [i + 1 for i in range(n_items) if i not in got]
        if missing:
            raise SubmissionError(f"Question {crit!r}: missing rank for image(s) {missing}.")
        values = [got[i] for i in range(n_items)]
        if sorted(values) != list(range(1, n_items + 1)):
            raise SubmissionError(f"Question {crit!r}: each rank from 1 to {n_items} must be used exactly once.")
        ranks[crit] = tuple(values)
    return Submission(ranks, frozenset(skipped))
