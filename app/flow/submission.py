"""The validation of a submitted ranking page (pure: a form in, a ``Submission`` or a ``SubmissionError`` out).

Nothing is pre-ranked, so an empty rank ("") means "not chosen": a criterion is accepted only when every image got
a rank 1..K (ASCII digits, ``app.ranks.parse_rank``) or its skip box is ticked, in which case its rank fields are
ignored whatever they hold (without JavaScript a ticked box still sends that question's selects).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.flow.errors import SubmissionError
from app.ranks import parse_rank


@dataclass(frozen=True, slots=True)
class Submission:
    ranks: dict[str, tuple[int, ...]]  # criterion -> rank of the image at each shown position (1 = best)
    skipped: frozenset[str]

    def digest(self) -> str:
        canon = {c: list(r) for c, r in sorted(self.ranks.items())} | {f"skip:{c}": True for c in sorted(self.skipped)}
        return hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()


# what is wrong with one criterion's answers (the page words it with the question's own text)
INCOMPLETE = "incomplete"  # some image has no rank yet
INVALID = "invalid"  # a value that is not a rank 1..K
DUPLICATE = "duplicate"  # a rank used twice


class IncompleteAnswers(SubmissionError):
    """Some questions are not fully answered: ``problems`` maps each such criterion to what is wrong with it."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        super().__init__("Please rank every image for each question (or tick its skip box): " + ", ".join(problems))
        self.problems = dict(problems)


_FIELD = re.compile(r"rank-([a-z0-9][a-z0-9_\-]{0,63})-(0|[1-9][0-9]{0,2})", re.ASCII)
_SKIP = re.compile(r"skip-([a-z0-9][a-z0-9_\-]{0,63})", re.ASCII)
ALLOWED_OTHER = {"token", "position"}


def _short(key: str) -> str:
    return repr(key[:40] + ("…" if len(key) > 40 else ""))


def parse_submission(
    form: Mapping[str, Sequence[str]], *, criteria: Sequence[str], n_items: int, skippable: set[str]
) -> Submission:
    """Validate a page's form (``rank-{criterion}-{i}`` = rank of the image shown i-th, 0-based).

    Structural problems (a field sent twice, an unknown field, question or image) raise ``SubmissionError``; answers
    that are missing, not a rank 1..K, or repeated raise ``IncompleteAnswers`` naming each criterion.
    """
    given: dict[str, dict[int, str]] = {c: {} for c in criteria}
    skipped: set[str] = set()
    for key, values in form.items():
        if len(values) != 1:
            raise SubmissionError(f"Field {_short(key)} was sent more than once.")
        if key in ALLOWED_OTHER:
            continue
        if m := _SKIP.fullmatch(key):
            crit = m.group(1)
            if crit not in given:
                raise SubmissionError(f"Unknown question {_short(crit)}.")
            if crit not in skippable:
                raise SubmissionError(f"The question {_short(crit)} cannot be skipped.")
            skipped.add(crit)
            continue
        m = _FIELD.fullmatch(key)
        if not m:
            raise SubmissionError(f"Unknown field {_short(key)}.")
        crit, idx = m.group(1), int(m.group(2))
        if crit not in given:
            raise SubmissionError(f"Unknown question {_short(crit)}.")
        if idx >= n_items:
            raise SubmissionError(f"Unknown image: there is no Image {idx + 1} on this page.")
        given[crit][idx] = values[0]
    ranks: dict[str, tuple[int, ...]] = {}
    problems: dict[str, str] = {}
    for crit in criteria:
        if crit in skipped:
            continue  # a skipped question's ranks are ignored, even half-filled or garbage
        got = given[crit]
        texts = [got.get(i, "") for i in range(n_items)]
        parsed = [parse_rank(t, n_items) for t in texts]
        if any(p is None and t != "" for p, t in zip(parsed, texts, strict=True)):
            problems[crit] = INVALID
        elif any(p is None for p in parsed):
            problems[crit] = INCOMPLETE
        elif sorted(parsed) != list(range(1, n_items + 1)):  # type: ignore[type-var]
            problems[crit] = DUPLICATE
        else:
            ranks[crit] = tuple(parsed)  # type: ignore[arg-type]
    if problems:
        raise IncompleteAnswers(problems)
    return Submission(ranks, frozenset(skipped))
