"""The participant state machine on plain data: every transition production takes, without a database or HTTP."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.flow import (
    Closed,
    Conflict,
    InvalidInput,
    NotFound,
    ParticipantStatus,
    Slot,
    State,
    apply,
    current_step,
    is_excluded,
)
from app.flow.machine import (
    Assigned,
    ChooseCulture,
    Consent,
    FinishInstructions,
    Reclaim,
    Replayed,
    Show,
    Stored,
    Submit,
    refresh_plan,
)
from study_designs.schema import load_design

S = ParticipantStatus
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DESIGN = load_design(Path(__file__).resolve().parents[2] / "study_designs" / "demo.toml")
CRITERIA = tuple(c.id for c in DESIGN.criteria)


def slot(position: int, *, page: str = "p", kind: str = "regular", submitted: bool = False, **kw) -> Slot:
    return Slot(
        id=position + 1,
        position=position,
        kind=kind,
        page_id=f"{page}{position}" if page == "p" else page,
        token=f"t{position}",
        image_order=("a", "b", "c"),
        criteria_order=CRITERIA,
        leased_until=kw.pop("leased_until", NOW + timedelta(minutes=10)),
        submitted_at=NOW - timedelta(minutes=1) if submitted else None,
        **kw,
    )


def form(token: str, ranks: tuple[int, ...] = (1, 2, 3), **extra: str) -> dict[str, list[str]]:
    out = {"token": [token]}
    for c in CRITERIA:
        for i, r in enumerate(ranks):
            out[f"rank-{c}-{i}"] = [str(r)]
    return out | {k: [v] for k, v in extra.items()}


def active(*slots: Slot, round_status: str = "open", failed: int = 0) -> State:
    return State(S.ACTIVE, round_status, failed, slots)


def submit(state: State, position: int, token: str, f: dict | None = None, now: datetime = NOW):
    return apply(state, Submit(position, token, f or form(token), DESIGN, now))


def test_statuses_live_and_ended_partition_the_non_finished_states():
    assert {s for s in S if s.is_live} == {S.CONSENT, S.PROFILE, S.INSTRUCTIONS, S.ACTIVE}
    assert {s for s in S if s.is_ended} == {S.TIMED_OUT, S.RETURNED, S.EXCLUDED}
    assert not S.COMPLETED.is_live and not S.COMPLETED.is_ended and not S.INELIGIBLE.is_live


def test_exclusion_rule():
    assert is_excluded("excluded", 0, None) and is_excluded("completed", 2, 2)
    assert not is_excluded("completed", 1, 2) and not is_excluded("completed", 5, None)


def test_onboarding_moves_one_step_at_a_time_and_repeats_are_harmless():
    consent = State(S.CONSENT, "open")
    with pytest.raises(InvalidInput):
        apply(consent, Consent(agreed=False))
    assert apply(consent, Consent(agreed=True)).status == S.PROFILE
    assert apply(State(S.ACTIVE, "open"), Consent(agreed=True)).status == S.ACTIVE
    profile = State(S.PROFILE, "open")
    assert apply(profile, ChooseCulture("korea", DESIGN)).assign_culture == "korea"
    assert apply(profile, ChooseCulture("other", DESIGN)).status == S.INELIGIBLE
    with pytest.raises(InvalidInput):
        apply(profile, ChooseCulture("atlantis", DESIGN))
    with pytest.raises(Conflict):
        apply(State(S.PROFILE, "paused"), ChooseCulture("korea", DESIGN))
    assert apply(State(S.INSTRUCTIONS, "open"), ChooseCulture("korea", DESIGN)).assign_culture is None
    assert apply(profile, Assigned(0)).status == S.INELIGIBLE
    assert apply(profile, Assigned(3)).status == S.INSTRUCTIONS
    assert apply(State(S.INSTRUCTIONS, "open"), FinishInstructions()).status == S.ACTIVE


def test_current_step_is_the_first_unsubmitted_page():
    state = active(slot(0, submitted=True), slot(1), slot(2))
    assert current_step(state).position == 1
    assert current_step(replace(state, status=S.TIMED_OUT)).name == "ended"
    assert current_step(active(slot(0, submitted=True))).name == "done"


def test_submission_stores_and_finishes_on_the_last_page():
    state = active(slot(0, submitted=True), slot(1))
    out = submit(state, 1, "t1")
    assert isinstance(out, Stored) and out.finished and out.status == S.COMPLETED
    assert out.submission.ranks[CRITERIA[0]] == (1, 2, 3)


def test_replay_conflict_stale_token_and_wrong_page():
    first = submit(active(slot(0), slot(1)), 0, "t0")
    assert isinstance(first, Stored)
    done = active(replace(slot(0, submitted=True), payload_sha256=first.digest), slot(1))
    assert isinstance(submit(done, 0, "t0"), Replayed)
    with pytest.raises(Conflict, match="different answers"):
        submit(done, 0, "t0", form("t0", (3, 2, 1)))
    with pytest.raises(Conflict, match="stale token"):
        submit(done, 1, "old")
    with pytest.raises(Conflict, match="not your current page"):
        submit(active(slot(0), slot(1)), 1, "t1")
    with pytest.raises(NotFound):
        submit(done, 7, "t7")
    with pytest.raises(InvalidInput):
        submit(active(slot(0)), 0, "t0", {"token": ["t0"]})


def test_closed_round_lets_people_finish_only_pages_they_still_hold():
    held = active(slot(0), round_status="closed")
    assert isinstance(submit(held, 0, "t0"), Stored)
    lapsed = active(slot(0, leased_until=NOW - timedelta(seconds=1)), round_status="closed")
    with pytest.raises(Conflict, match="closed"):
        submit(lapsed, 0, "t0")
    with pytest.raises(Closed):
        apply(lapsed, Show(NOW))


def test_attention_check_passes_only_when_the_marked_image_is_ranked_last():
    check = slot(0, kind="attention", check_criterion=CRITERIA[0], check_image_id="b")
    ok = submit(active(check, slot(1)), 0, "t0", form("t0", (1, 3, 2)))
    bad = submit(active(check, slot(1), failed=1), 0, "t0", form("t0", (1, 2, 3)))
    assert ok.attention_passed is True and ok.failed_checks == 0
    assert bad.attention_passed is False and bad.failed_checks == 2


def test_show_refreshes_expired_leases_then_stamps_the_page():
    expired = active(slot(0, leased_until=NOW - timedelta(minutes=1)), slot(1))
    assert apply(expired, Show(NOW)).refresh_leases
    fresh = active(slot(0), slot(1))
    assert apply(fresh, Show(NOW)).mark_shown == 1
    assert apply(active(slot(0, shown_at=NOW)), Show(NOW)).mark_shown is None


def test_refresh_leases_only_the_current_page_and_swaps_or_drops_a_filled_one():
    gone = NOW - timedelta(minutes=1)
    state = active(slot(0, page="x", leased_until=gone), slot(1, page="y", leased_until=gone))
    plan = refresh_plan(state, culture_pages=["x", "y", "z", "w"], coverage={"x": 2, "y": 0, "w": 1}, target=2, now=NOW)
    assert [(s.slot.page_id, s.page_id) for s in plan] == [("x", "z")]  # the current page only; later ones wait
    room = refresh_plan(state, culture_pages=["x", "y"], coverage={"x": 1}, target=2, now=NOW)
    assert [(s.slot.page_id, s.page_id) for s in room] == [("x", "x")]
    full = refresh_plan(state, culture_pages=["x", "y"], coverage={"x": 2, "y": 2}, target=2, now=NOW)
    assert [s.dropped for s in full] == [True]  # never shown and nothing with room: dropped, no page over target
    shown = active(slot(0, page="x", leased_until=gone, shown_at=gone), slot(1, page="y", leased_until=gone))
    kept = refresh_plan(shown, culture_pages=["x", "y"], coverage={"x": 2, "y": 2}, target=2, now=NOW)
    assert [(s.page_id, s.dropped) for s in kept] == [("x", False)]  # already seen: kept, so the person can finish
    held = active(slot(0, page="x"), slot(1, page="y", leased_until=gone))
    assert refresh_plan(held, culture_pages=["x", "y"], coverage={}, target=2, now=NOW) == []


def test_reclaim_times_out_only_live_participants_whose_every_open_lease_ran_out():
    gone = NOW - timedelta(minutes=1)
    assert apply(active(slot(0, leased_until=gone), slot(1, leased_until=gone)), Reclaim(NOW)).timed_out
    assert not apply(active(slot(0, leased_until=gone), slot(1)), Reclaim(NOW)).timed_out
    assert not apply(active(slot(0, submitted=True)), Reclaim(NOW)).timed_out
    ended = replace(active(slot(0, leased_until=gone)), status=S.EXCLUDED)
    assert not apply(ended, Reclaim(NOW)).timed_out
