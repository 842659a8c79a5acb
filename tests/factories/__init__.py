"""What the test suites share: one clock (``clock``), one way to launch a placeholder round, and participant
drivers that go through the production code: in-process through ``app.crud`` (:class:`CrudParticipant`, here), or
over HTTP through the real pages (:class:`WebParticipant` in ``web``, over a Starlette ``TestClient`` or an
``httpx.Client`` to a live server, reading and answering the pages' forms with ``pages``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session

from app import crud
from app.db import session_scope
from app.flow import Slot
from app.identity import PlatformEntry
from app.launch import launch_round
from app.placeholder import write_placeholders
from study_designs.schema import load_design
from tests.factories.clock import T0, FakeClock
from tests.factories.pages import (
    Form,
    FormParser,
    RankChooser,
    answer,
    in_order,
    parse,
    random_ranks,
    reverse_ranks,
    step_answer,
    step_of,
)
from tests.factories.web import Seen, WebParticipant, crawl_participant, onboarded, prolific, walk

# test apps enrol many participants from one client at once; the enrolment limits have their own tests
NO_ENROL_LIMIT = {"enrol_rate_per_client": 0, "enrol_rate_per_round": 0}

__all__ = [
    "DESIGNS",
    "NO_ENROL_LIMIT",
    "T0",
    "CrudParticipant",
    "FakeClock",
    "Form",
    "FormParser",
    "RankChooser",
    "Seen",
    "WebParticipant",
    "answer",
    "attentive_answer",
    "crawl_participant",
    "in_order",
    "launch_placeholders",
    "onboarded",
    "parse",
    "prolific",
    "random_ranks",
    "reverse_ranks",
    "step_answer",
    "step_of",
    "walk",
]

REPO = Path(__file__).resolve().parents[2]
DESIGNS = REPO / "study_designs"


def launch_placeholders(
    database_url: str,
    media_root: Path,
    design_path: Path,
    images: Path,
    round_id: str,
    *,
    size: int = 16,
    now: datetime | None = None,
    reencode: Callable[[Path], None] | None = None,
) -> Path:
    """Placeholder images and their manifest under ``images``, launched as round ``round_id``; returns the manifest.

    ``reencode(manifest)``, if given, may rewrite the images (and their sha256 in the manifest) before launch."""
    manifest, _ = write_placeholders(load_design(design_path), images, size=size)
    if reencode is not None:
        reencode(manifest)
    with session_scope(database_url) as s:
        launch_round(
            s,
            design_path=design_path,
            manifest_path=manifest,
            round_id=round_id,
            media_root=media_root,
            now=now or datetime.now(UTC),
        )
    return manifest


def attentive_answer(slot: Slot) -> dict[str, list[str]]:
    """Ranks in the order shown, except that an attention check's marked image is ranked last, as asked."""
    n = len(slot.image_order)
    form: dict[str, list[str]] = {"token": [slot.token]}
    for crit in slot.criteria_order:
        ranks = list(range(1, n + 1))
        if slot.check_image_id is not None and crit == slot.check_criterion:
            ranks = list(range(1, n))
            ranks.insert(slot.image_order.index(slot.check_image_id), n)
        for i, r in enumerate(ranks):
            form[f"rank-{crit}-{i}"] = [str(r)]
    return form


@dataclass
class CrudParticipant:
    """A participant driven in-process through ``app.crud`` (the functions the routes call), without HTTP."""

    session: Callable[[], Session]
    round_id: str
    pid: str
    secret: str = "k"
    code: str = ""
    status: str = ""

    def onboard(self, culture: str, now: datetime) -> str:
        """Entry, consent, culture and instructions; returns the participant's code."""
        with self.session() as s:
            entry = PlatformEntry("prolific", self.pid, {"PROLIFIC_PID": self.pid})
            p = crud.enter(s, round_id=self.round_id, entry=entry, secret=self.secret, now=now)
            self.code = p.code
            crud.give_consent(s, code=p.code, agreed=True, now=now)
            p = crud.choose_culture(s, code=p.code, culture=culture, now=now)
            if p.status == "instructions":
                p = crud.finish_instructions(s, code=p.code, now=now)
            self.status = p.status
        return self.code

    def finish(
        self, now: datetime, *, retries: int = 1, answer: Callable[[Slot], Mapping[str, Sequence[str]]] | None = None
    ) -> int:
        """Submit every page in order (each ``retries`` times, as network retries would); returns pages stored."""
        stored = 0
        with self.session() as s:
            # the current page each time: pages are leased one at a time, and may be swapped or dropped on the way
            while pending := crud.load(s, self.code).state.pending:
                slot = pending[0]
                form = (answer or attentive_answer)(slot)
                for _ in range(retries):
                    out = crud.submit_page(
                        s, code=self.code, position=slot.position, token=slot.token, form=form, now=now
                    )
                    stored += not out.replay
        return stored
