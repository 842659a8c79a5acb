"""The participant state machine: every step, and how each event moves a participant on (pure, no database, no HTTP).

Steps, in order::

    consent --Consent(agreed)--> profile --ChooseCulture--> instructions --FinishInstructions--> active
    active --Submit(page)...--> completed          profile --ChooseCulture(other / no pages)--> ineligible
    consent --Consent(declined)--> ineligible   ("I do not agree": the declined-consent exit)
    any live step --(all leases expired, reclaimed)--> timed_out;  researcher --> excluded
    timed_out --Submit(current page)--> timed_out (the page is stored, flagged late; the last page completes)
    any live step --ReturnStudy--> returned   ("Stop and return the study": pages already sent are kept)

``apply(state, event)`` returns what to write (an ``Outcome``) or raises a ``DomainError``; ``app.crud`` loads the
state under a lock, calls it, and writes the outcome's rows.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.assignment import attention_passed
from app.flow.errors import Closed, Conflict, InvalidInput, NotFound
from app.flow.status import INELIGIBLE_CULTURE, INELIGIBLE_DECLINED, INELIGIBLE_NO_PAGES, ParticipantStatus
from app.flow.submission import Submission, parse_submission
from study_designs.schema import Design

S = ParticipantStatus
OTHER_CULTURE = "other"


def to_utc(t: datetime) -> datetime:
    """Aware UTC (the database hands back naive UTC)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


# -- state ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Slot:
    """One page position of one participant, as plain data."""

    id: int
    position: int
    kind: str  # regular | attention | repeat
    page_id: str
    token: str
    image_order: tuple[str, ...]
    criteria_order: tuple[str, ...]
    leased_until: datetime
    check_criterion: str | None = None
    check_image_id: str | None = None
    shown_at: datetime | None = None
    submitted_at: datetime | None = None
    payload_sha256: str | None = None

    @property
    def submitted(self) -> bool:
        return self.submitted_at is not None

    def lease_live(self, now: datetime) -> bool:
        return not self.submitted and to_utc(self.leased_until) > to_utc(now)


@dataclass(frozen=True, slots=True)
class State:
    """What the flow needs to know about one participant and their round."""

    status: ParticipantStatus
    round_status: str  # open | paused | closed
    failed_checks: int = 0
    slots: tuple[Slot, ...] = ()
    # (submitted, total) when ``slots`` holds only some slots: the page an active participant is on (a page view,
    # ``app.crud.load_current``), or a submitted page and the first two still to send (``app.crud.load(position=...)``:
    # ``pending`` then holds at most two, enough to tell the current page, the next one and whether it is the last);
    # None when ``slots`` holds every slot
    counts: tuple[int, int] | None = None

    def slot_at(self, position: int) -> Slot | None:
        return next((s for s in self.slots if s.position == position), None)

    @property
    def pending(self) -> list[Slot]:
        return sorted((s for s in self.slots if not s.submitted), key=lambda s: s.position)

    def progress(self) -> tuple[int, int]:
        if self.counts is not None:
            return self.counts
        return sum(s.submitted for s in self.slots), len(self.slots)


@dataclass(frozen=True, slots=True)
class Step:
    name: str  # consent | profile | instructions | page | done | ineligible | ended
    position: int | None = None


def current_step(state: State) -> Step:
    status = state.status
    if status in {S.CONSENT, S.PROFILE, S.INSTRUCTIONS, S.INELIGIBLE}:
        return Step(status.value)
    if status == S.COMPLETED:
        return Step("done")
    if status.is_ended:
        return Step("ended")
    pending = state.pending
    return Step("page", pending[0].position) if pending else Step("done")


# -- events -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Consent:
    agreed: bool
    declined: bool = False  # pressed "I do not agree": leaves the study with the declined-consent code


@dataclass(frozen=True, slots=True)
class ChooseCulture:
    culture: str
    design: Design


@dataclass(frozen=True, slots=True)
class Assigned:
    """The pages planned for a participant who chose a culture (none: nothing left)."""

    n_slots: int


@dataclass(frozen=True, slots=True)
class FinishInstructions:
    pass


@dataclass(frozen=True, slots=True)
class Show:
    """A GET of the participant's link."""

    now: datetime


@dataclass(frozen=True, slots=True)
class Submit:
    position: int
    token: str
    form: Mapping[str, Sequence[str]]
    design: Design
    now: datetime


@dataclass(frozen=True, slots=True)
class Reclaim:
    """A researcher (or the reclaim job) times out participants whose every open lease has run out."""

    now: datetime


@dataclass(frozen=True, slots=True)
class ReturnStudy:
    """The participant chose to stop and return the study (after a confirm step)."""


Event = Consent | ChooseCulture | Assigned | FinishInstructions | Show | Submit | Reclaim | ReturnStudy

# -- outcomes ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Moved:
    """The new status (unchanged when the event was a repeat); ``reason`` for ineligible participants."""

    status: ParticipantStatus
    reason: str | None = None
    assign_culture: str | None = None  # set when the participant's pages must now be planned for this culture


@dataclass(frozen=True, slots=True)
class Showing:
    """What a GET shows, and the writes it needs first (refresh expired leases; stamp the page as shown)."""

    step: Step
    refresh_leases: bool = False
    mark_shown: int | None = None  # slot id


@dataclass(frozen=True, slots=True)
class Stored:
    """A valid page to store: its rankings, the attention result, and the participant's next state."""

    slot: Slot
    submission: Submission
    digest: str
    attention_passed: bool | None
    seconds_on_page: float | None
    lease_until: datetime
    status: ParticipantStatus
    failed_checks: int
    finished: bool
    late: bool = False  # sent after the page's lease had run out

    @property
    def replay(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class Replayed:
    """An identical retry of a stored page: nothing to write."""

    slot: Slot
    finished: bool

    @property
    def replay(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class TimedOut:
    timed_out: bool


Outcome = Moved | Showing | Stored | Replayed | TimedOut

# -- transitions ------------------------------------------------------------------------------------------------


def apply(state: State, event: Event) -> Outcome:
    """The participant's next state for ``event``, or a ``DomainError`` saying why it does not apply."""
    match event:
        case Consent():
            return _consent(state, event)
        case ChooseCulture():
            return _choose_culture(state, event)
        case Assigned():
            return Moved(S.INSTRUCTIONS) if event.n_slots else Moved(S.INELIGIBLE, INELIGIBLE_NO_PAGES)
        case FinishInstructions():
            return Moved(S.ACTIVE if state.status == S.INSTRUCTIONS else state.status)
        case Show():
            return _show(state, event)
        case Submit():
            return _submit(state, event)
        case Reclaim():
            open_slots = state.pending
            expired = bool(open_slots) and not any(s.lease_live(event.now) for s in open_slots)
            return TimedOut(state.status.is_live and expired)
        case ReturnStudy():
            # idempotent: a repeated form, or one sent after the participant finished or left, changes nothing
            return Moved(S.RETURNED if state.status.is_live else state.status)
    raise TypeError(f"unknown event {event!r}")


def _consent(state: State, event: Consent) -> Moved:
    if event.declined and not event.agreed:
        return Moved(S.INELIGIBLE, INELIGIBLE_DECLINED) if state.status == S.CONSENT else Moved(state.status)
    if not event.agreed:
        raise InvalidInput("Please tick the box to agree before continuing.")
    return Moved(S.PROFILE if state.status == S.CONSENT else state.status)


def _choose_culture(state: State, event: ChooseCulture) -> Moved:
    if state.status != S.PROFILE:
        return Moved(state.status)  # a repeated or stale form: the culture was already chosen
    if event.culture == OTHER_CULTURE:
        return Moved(S.INELIGIBLE, INELIGIBLE_CULTURE)
    if event.culture not in {c.id for c in event.design.cultures}:
        raise InvalidInput("Please choose one of the listed options.")
    if state.round_status != "open":
        raise Conflict("This study is not taking new participants at the moment.")
    return Moved(S.PROFILE, assign_culture=event.culture)


def _show(state: State, event: Show) -> Showing:
    step = current_step(state)
    if step.name != "page":
        return Showing(step)
    if state.round_status == "closed" and not any(s.lease_live(event.now) for s in state.slots):
        raise Closed("Thank you for your interest.")
    slot = state.slot_at(step.position)  # type: ignore[arg-type]
    assert slot is not None
    if not slot.lease_live(event.now):  # only the current page is held (see ``refresh_plan``)
        return Showing(step, refresh_leases=True)
    return Showing(step, mark_shown=slot.id if slot.shown_at is None else None)


def _submit(state: State, event: Submit) -> Stored | Replayed:
    slot = state.slot_at(event.position)
    if slot is None:
        raise NotFound("This page is not part of your study.")
    if not secrets.compare_digest(slot.token.encode(), event.token.encode("utf-8", "surrogatepass")):
        raise Conflict("This form is out of date (stale token). Please reload the page.")
    skippable = {c.id for c in event.design.criteria if c.allow_skip}
    sub = parse_submission(event.form, criteria=slot.criteria_order, n_items=len(slot.image_order), skippable=skippable)
    digest = sub.digest()
    if slot.submitted:
        if slot.payload_sha256 == digest:
            return Replayed(slot, finished=state.status == S.COMPLETED)
        raise Conflict("This page was already submitted with different answers; they were kept.")
    timed_out = state.status == S.TIMED_OUT
    if state.status != S.ACTIVE and not timed_out:
        raise Conflict("Please continue from your current step.")
    pending = state.pending
    if event.position != pending[0].position:
        raise Conflict("This is not your current page. Please continue from your current page.")
    if state.round_status == "closed" and not slot.lease_live(event.now):
        # closing takes no one new; people already inside finish the pages they hold
        raise Conflict("This study round is closed.")
    # a page sent after its lease ran out (or after the participant was timed out) is kept, flagged ``late``,
    # even if the page has reached its target since: an answer someone gave is never thrown away
    late = not slot.lease_live(event.now)
    passed = None
    if slot.kind == "attention":
        ranks = sub.ranks.get(slot.check_criterion or "")
        passed = ranks is not None and attention_passed(
            ranks[slot.image_order.index(slot.check_image_id)],
            len(slot.image_order),  # type: ignore[arg-type]
        )
    seconds = None if slot.shown_at is None else round((to_utc(event.now) - to_utc(slot.shown_at)).total_seconds(), 3)
    finished = len(pending) == 1
    status = S.COMPLETED if finished else state.status
    return Stored(
        slot=slot,
        submission=sub,
        digest=digest,
        attention_passed=passed,
        seconds_on_page=seconds,
        # a timed-out participant's other pages stay in the pool: no lease is renewed for them
        lease_until=event.now if timed_out else event.now + timedelta(minutes=event.design.assignment.lease_minutes),
        status=status,
        failed_checks=state.failed_checks + (passed is False),
        finished=finished,
        late=late,
    )


# -- lease refresh ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Swap:
    """A slot leased (again), on ``page_id`` (a new page when its own has been taken since); ``page_id`` None: the
    slot is dropped, because its page is full and no other page of the culture has room."""

    slot: Slot
    page_id: str | None

    @property
    def swapped(self) -> bool:
        return self.page_id is not None and self.page_id != self.slot.page_id

    @property
    def dropped(self) -> bool:
        return self.page_id is None


LEASE_WINDOW = 1  # pages held at a time: the one the participant is on


def refresh_plan(
    state: State, *, culture_pages: Sequence[str], coverage: Mapping[str, int], target: int, now: datetime
) -> list[Swap]:
    """Lease the participant's current page (the first ``LEASE_WINDOW`` pending slots), swapping it when needed.

    Pages are held only while someone works on them: later slots hold no lease, so a stranger who stops holds one
    page, not a set. A page still below its target is simply leased; a full page (someone else took it meanwhile) is
    replaced by the least-covered page of the culture with room that the participant does not have yet (same
    image-order row). With none left, a page never shown is dropped (so every page stays exactly at target), while
    a page already shown to this person is kept, so they can finish what they started.
    """
    if state.status not in {S.INSTRUCTIONS, S.ACTIVE}:
        return []
    counts = dict.fromkeys(culture_pages, 0) | dict(coverage)
    mine = {s.page_id for s in state.slots if s.kind == "regular"}
    plan: list[Swap] = []
    for slot in state.pending[:LEASE_WINDOW]:
        if slot.lease_live(now):
            continue
        page: str | None = slot.page_id
        if slot.kind == "regular" and counts.get(slot.page_id, 0) >= target:
            free = sorted((p for p in culture_pages if p not in mine and counts[p] < target), key=lambda p: counts[p])
            if free:
                page = free[0]
                mine.add(page)
            elif slot.shown_at is None:
                page = None
        if slot.kind == "regular" and page is not None:
            counts[page] = counts.get(page, 0) + 1
        plan.append(Swap(slot, page))
    return plan
