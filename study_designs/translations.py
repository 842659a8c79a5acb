"""Per-language participant-facing text of a design: the ``[translations.<lang>]`` tables.

A design lists its participant languages (``languages = ["en", "es"]``; the first is the language the design's own
strings are written in). Each further language may give, under ``[translations.<lang>]``, the title, consent text,
content warning, culture labels and adjectives, each criterion's question and best/worst labels, and the text of any
prompt (shown with a criterion that has ``show_prompt``). ``localize`` returns the design with one language's text in
place; a string a translation leaves out falls back to the design's own. ``missing`` lists every such gap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from study_designs.schema import Design

# BCP 47 as the pages use it: a language, an optional script and an optional region (en, es-MX, zh-Hans).
LanguageTag = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$")]
Text = Annotated[str, Field(min_length=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CultureText(_Frozen):
    label: Text | None = None
    adjective: Text | None = None


class CriterionText(_Frozen):
    question: Text | None = Field(default=None, description="May use {adjective}.")
    best_label: Text | None = None
    worst_label: Text | None = None


class ConsentText(_Frozen):
    text: Text | None = None
    content_warning: Text | None = None


class Translation(_Frozen):
    title: Text | None = None
    consent: ConsentText = ConsentText()
    cultures: dict[str, CultureText] = {}
    criteria: dict[str, CriterionText] = {}
    prompts: dict[str, Text] = Field(default={}, description="Prompt id -> text shown with the description question.")


def _update(item: BaseModel, given: BaseModel) -> BaseModel:
    changes = {k: v for k, v in given.model_dump().items() if v is not None}
    return item.model_copy(update=changes) if changes else item


def problems(design: Design) -> list[str]:
    """Translations for undeclared languages or unknown ids (the design is refused)."""
    out: list[str] = []
    declared = set(design.languages[1:])
    ids = {
        "cultures": {c.id for c in design.cultures},
        "criteria": {c.id for c in design.criteria},
        "prompts": {p.id for p in design.prompts},
    }
    for lang, tr in design.translations.items():
        if lang not in declared:
            out.append(f"translations.{lang}: {lang!r} is not one of the further languages {sorted(declared)}")
        for part, known in ids.items():
            for key in getattr(tr, part):
                if key not in known:
                    out.append(f"translations.{lang}.{part}: {key!r} is not one of the design's {part}")
    return out


def localize(design: Design, lang: str) -> Design:
    """The design with ``lang``'s text in place of its own (unchanged for the first language or an unknown one)."""
    tr = design.translations.get(lang)
    if tr is None:
        return design
    update: dict[str, object] = {
        "cultures": [_update(c, tr.cultures[c.id]) if c.id in tr.cultures else c for c in design.cultures],
        "criteria": [_update(c, tr.criteria[c.id]) if c.id in tr.criteria else c for c in design.criteria],
        "prompts": [
            p.model_copy(update={"text": tr.prompts[p.id]}) if p.id in tr.prompts else p for p in design.prompts
        ],
        "consent": _update(design.consent, tr.consent),
    }
    if tr.title:
        update["title"] = tr.title
    return design.model_copy(update=update)


def missing(design: Design) -> list[str]:
    """Every participant-facing string a further language leaves untranslated, as ``lang: field`` lines.

    Prompts count only where a criterion shows them (``show_prompt``).
    """
    out: list[str] = []
    shows_prompt = any(c.show_prompt for c in design.criteria)
    for lang in design.languages[1:]:
        tr = design.translations.get(lang, Translation())
        gaps = [] if tr.title else ["title"]
        gaps += [f"consent.{k}" for k, v in tr.consent.model_dump().items() if v is None]
        for part, items in (("cultures", design.cultures), ("criteria", design.criteria)):
            table = getattr(tr, part)
            for item in items:
                given = table.get(item.id)
                fields = CultureText.model_fields if part == "cultures" else CriterionText.model_fields
                gaps += [f"{part}.{item.id}.{f}" for f in fields if given is None or getattr(given, f) is None]
        if shows_prompt:
            gaps += [f"prompts.{p.id}" for p in design.prompts if p.id not in tr.prompts]
        out += [f"{lang}: {g}" for g in gaps]
    return out
