"""Does a responses table fit the design it is analysed against? One warning line per mismatch.

:func:`analysis.load.attach_design` refuses responses that name models, criteria or page cultures the design lacks
(they cannot be labelled). Everything else that suggests the wrong design, or a study that did not run as designed,
is a warning here: design models, criteria or cultures absent from the responses, rater cultures the design does not
know (shown by id), prompts or seeds that are not the design's, prompts filed under another culture.
"""

from __future__ import annotations

import pandas as pd

from study_designs.schema import Design

_SHOW = 5


def _names(values) -> str:
    values = sorted(map(str, values))
    more = f" and {len(values) - _SHOW} more" if len(values) > _SHOW else ""
    return ", ".join(values[:_SHOW]) + more


def _present(df: pd.DataFrame, col: str) -> set[str]:
    return set(map(str, pd.unique(df[col].dropna()))) if col in df.columns else set()


def design_warnings(df: pd.DataFrame, design: Design) -> list[str]:
    """Warnings for responses ``df`` (as read, before exclusions) analysed against ``design``."""
    out = []
    d = design.id
    for col, ids, what in (
        ("model_id", [m.id for m in design.models], "model"),
        ("criterion", [c.id for c in design.criteria], "criterion"),
        ("page_culture", [c.id for c in design.cultures], "culture"),
    ):
        absent = [i for i in ids if i not in _present(df, col)]
        if absent:
            extra = " (listed with 0 participants)" if what == "culture" else ""
            out.append(f"design {d!r}: {what} {_names(absent)} never appear(s) in the responses{extra}")
    cultures = {c.id for c in design.cultures}
    raters = _present(df, "participant_culture") - cultures
    if raters:
        out.append(f"participant_culture {_names(raters)} not in design {d!r}: shown by id, without a label")
    if "prompt_id" in df.columns:
        prompts = {p.id: p for p in design.prompts}
        used = df[["prompt_id", "page_culture", "seed"]].dropna(subset=["prompt_id"]).astype(str).drop_duplicates()
        unknown = set(used["prompt_id"]) - set(prompts)
        if unknown:
            out.append(f"prompt_id {_names(unknown)} not in design {d!r}: are these responses from another design?")
        known = used[used["prompt_id"].isin(prompts)]
        moved = {
            f"{r.prompt_id} ({r.page_culture}, design: {prompts[r.prompt_id].culture})"
            for r in known.itertuples(index=False)
            if r.page_culture != prompts[r.prompt_id].culture
        }
        if moved:
            out.append(f"page_culture differs from the design's culture of prompt {_names(moved)}")
        seeds = {
            f"{r.prompt_id}/{r.seed}"
            for r in known.itertuples(index=False)
            if r.seed not in ("<NA>", "nan") and int(float(r.seed)) not in set(prompts[r.prompt_id].seeds)
        }
        if seeds:
            out.append(f"seed(s) {_names(seeds)} are not seeds of those prompts in design {d!r}")
    return out
