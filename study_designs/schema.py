"""Frozen pydantic models of a study design and ``load_design(path)``.

A design is the shared vocabulary of the project: cultures, models (variants of the image
generator), criteria (ranking questions), prompts with their seeds (a *page* is one prompt and
one seed: one image per model), and the assignment / quality / recruitment / consent settings.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$", max_length=64)]
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class DesignError(ValueError):
    """A design file that cannot be used; the message names the file and every bad field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Culture(_Frozen):
    id: Slug
    label: str = Field(min_length=1)
    adjective: str = Field(min_length=1)


class Model(_Frozen):
    id: Slug
    label: str = Field(min_length=1, description="Researcher-facing only; never shown to participants.")
    base: str = Field(min_length=1, description="Base pipeline folder; may use ${ENV} or ${ENV:-default}.")
    lora: str | None = Field(default=None, description="LoRA folder template; may use {culture} and ${ENV}.")
    variant: Literal["base", "ldm", "m", "mp", "mpc"]

    @model_validator(mode="after")
    def _lora_matches_variant(self) -> Model:
        if self.variant == "base" and self.lora is not None:
            raise ValueError("variant 'base' takes no lora")
        if self.variant != "base" and not self.lora:
            raise ValueError(f"variant {self.variant!r} needs a lora path")
        return self

    def base_path(self) -> str:
        return expand_env(self.base)

    def lora_path(self, culture: str) -> str | None:
        return None if self.lora is None else expand_env(self.lora).replace("{culture}", culture)


class Criterion(_Frozen):
    id: Slug
    question: str = Field(min_length=1, description="May use {adjective}.")
    best_label: str = Field(min_length=1)
    worst_label: str = Field(min_length=1)
    show_prompt: bool = False
    allow_skip: bool = Field(
        default=False, description="Offer 'too distressing to judge'; recorded apart from missing."
    )

    def text_for(self, culture: Culture) -> str:
        return self.question.replace("{adjective}", culture.adjective)


class Prompt(_Frozen):
    id: Slug
    culture: Slug
    text: str = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_seeds(self) -> Prompt:
        dup = [s for s, n in Counter(self.seeds).items() if n > 1]
        if dup:
            raise ValueError(f"repeated seeds {dup}")
        if any(s < 0 or s >= 2**63 for s in self.seeds):
            raise ValueError("seeds must be in [0, 2**63)")
        return self


class Assignment(_Frozen):
    pages_per_participant: int = Field(ge=1)
    target_rankings_per_page: int = Field(ge=1)
    same_culture_only: bool = True
    position_balance: Literal["latin", "shuffle"] = "latin"
    criteria_order: Literal["fixed", "counterbalanced"] = "fixed"
    lease_minutes: int = Field(default=60, ge=1)


class Quality(_Frozen):
    attention_checks: int = Field(default=0, ge=0)
    min_seconds_per_page: float = Field(default=0.0, ge=0)
    repeat_pages: int = Field(default=0, ge=0)
    exclude_after_failed_checks: int = Field(
        default=2, ge=1, description="Crowd-platform policy: never exclude on a single failure."
    )


_CODE = r"^[A-Za-z0-9_\-]+$"
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def check_exit_url(url: str) -> str:
    """Redirect URLs shown to participants: ``https:`` only (``http:`` only for this machine, for local trials)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    local = parts.scheme == "http" and (host in _LOCAL_HOSTS or f"[{host}]" in _LOCAL_HOSTS)
    if not (parts.scheme == "https" or local) or not parts.netloc or any(ch.isspace() for ch in url):
        raise ValueError(f"must be an https:// URL, got {url[:80]!r}")
    return url


class Exit(_Frozen):
    """The code and redirect a participant gets when they leave the study early (Prolific: one code per case)."""

    code: str | None = Field(default=None, min_length=1, max_length=64, pattern=_CODE)
    url: str | None = None

    @model_validator(mode="after")
    def _https(self) -> Exit:
        if self.url is not None:
            check_exit_url(self.url)
        return self


EXIT_KINDS = ("completed", "screened_out", "declined", "full", "timed_out")


class Recruitment(_Frozen):
    """``completion_code``/``completion_url`` for people who finish, and one ``Exit`` for each other way out."""

    completion_code: str = Field(min_length=1, max_length=64, pattern=_CODE)
    completion_url: str | None = None
    platform: Literal["prolific", "mturk", "none"] = "none"
    screened_out: Exit = Exit()  # culture "Other / none of these"
    declined: Exit = Exit()  # did not agree to the consent form
    full: Exit = Exit()  # nothing left to rank for the chosen culture
    timed_out: Exit = Exit()  # the time to finish ran out

    @model_validator(mode="after")
    def _https(self) -> Recruitment:
        if self.completion_url is not None:
            check_exit_url(self.completion_url)
        return self


class Consent(_Frozen):
    text: str = Field(min_length=1)
    content_warning: str = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Page:
    """One (prompt, seed): one image per model, ranked once per criterion."""

    id: str
    culture: str
    prompt_id: str
    seed: int
    text: str


def page_id(prompt_id: str, seed: int) -> str:
    return f"{prompt_id}-{seed}"


class Design(_Frozen):
    id: Slug
    title: str = Field(min_length=1)
    seed: int = 0
    cultures: list[Culture] = Field(min_length=1)
    models: list[Model] = Field(min_length=2)
    criteria: list[Criterion] = Field(min_length=1)
    prompts: list[Prompt] = Field(min_length=1)
    assignment: Assignment
    quality: Quality = Quality()
    recruitment: Recruitment
    consent: Consent

    @model_validator(mode="after")
    def _consistent(self) -> Design:
        problems: list[str] = []
        for name in ("cultures", "models", "criteria", "prompts"):
            ids = Counter(item.id for item in getattr(self, name))
            problems += [f"{name}: id {i!r} appears {n} times" for i, n in ids.items() if n > 1]
        known = {c.id for c in self.cultures}
        for i, p in enumerate(self.prompts):
            if p.culture not in known:
                problems.append(f"prompts.{i}.culture: {p.culture!r} is not one of the cultures {sorted(known)}")
        for c in self.cultures:
            if not any(p.culture == c.id for p in self.prompts):
                problems.append(f"cultures: {c.id!r} has no prompts")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- derived views -------------------------------------------------------------------------
    def culture(self, culture_id: str) -> Culture:
        return next(c for c in self.cultures if c.id == culture_id)

    def pages(self, culture: str | None = None) -> list[Page]:
        return [
            Page(page_id(p.id, s), p.culture, p.id, s, p.text)
            for p in self.prompts
            if culture is None or p.culture == culture
            for s in p.seeds
        ]

    def participants_needed(self, culture: str) -> int:
        """Participants of ``culture`` needed so every page reaches its target number of rankings."""
        a = self.assignment
        pages = len(self.pages(culture))
        per_participant = min(a.pages_per_participant, pages)
        return math.ceil(pages * a.target_rankings_per_page / per_participant)

    def summary(self) -> str:
        lines = [f"{self.id}: {self.title}"]
        lines.append(f"  models ({len(self.models)}): " + ", ".join(f"{m.id} [{m.variant}]" for m in self.models))
        lines.append(f"  criteria ({len(self.criteria)}): " + ", ".join(c.id for c in self.criteria))
        a = self.assignment
        lines.append(
            f"  {a.pages_per_participant} pages per participant, {a.target_rankings_per_page} rankings per page,"
            f" position balance {a.position_balance}, criteria order {a.criteria_order}"
        )
        total_pages = total_people = 0
        for c in self.cultures:
            n, need = len(self.pages(c.id)), self.participants_needed(c.id)
            total_pages += n
            total_people += need
            lines.append(f"  {c.id:<12} {c.label:<20} {n:>4} pages   {need:>4} participants needed")
        lines.append(f"  {'total':<33} {total_pages:>4} pages   {total_people:>4} participants needed")
        lines.append(f"  images to sample: {total_pages * len(self.models)}")
        return "\n".join(lines)


def expand_env(value: str) -> str:
    """Expand ``${NAME}`` and ``${NAME:-default}``; an unset variable without default is an error."""

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise DesignError(f"environment variable {name} is not set (used in {value!r})")

    return _ENV.sub(sub, value)


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: {err.error_count()} problem(s)"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        lines.append(f"  {path}: {loc}: {e['msg']}")
    return "\n".join(lines)


def parse_design(data: dict, source: str | Path = "<design>") -> Design:
    try:
        return Design.model_validate(data)
    except ValidationError as err:
        raise DesignError(_format_errors(Path(source), err)) from None


def load_design(path: str | Path) -> Design:
    """Read and validate a design TOML file; raise :class:`DesignError` naming the file and fields."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DesignError(f"{path}: no such design file") from None
    except tomllib.TOMLDecodeError as err:
        raise DesignError(f"{path}: not valid TOML: {err}") from None
    except UnicodeDecodeError:
        raise DesignError(f"{path}: not UTF-8 text") from None
    except OSError as err:
        raise DesignError(f"{path}: cannot read: {err.strerror or err}") from None
    return parse_design(data, path)
