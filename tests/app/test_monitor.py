"""Pure monitoring computations on hand-written rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app import monitor as m
from app import participant_table

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PAGES = [m.PageRef("k1", "korea"), m.PageRef("k2", "korea"), m.PageRef("n1", "nigeria")]


def _p(pid: int, status: str = "active", **kw) -> m.ParticipantRow:
    return m.ParticipantRow(id=pid, pseudonym=f"p{pid}", status=status, **kw)


def _s(sid: int, pid: int, page: str, *, done: bool = True, kind: str = "regular", secs: float = 10.0, **kw):
    return m.SlotRow(
        id=sid,
        participant_id=pid,
        page_id=page,
        position=sid,
        kind=kind,
        submitted_at=NOW - timedelta(minutes=1) if done else None,
        seconds_on_page=secs if done else None,
        **kw,
    )


def _judgment(slot: int, criterion: str, ranks: dict[str, int], initial: list[str]) -> list[m.RankingRow]:
    return [m.RankingRow(slot, criterion, img, ranks[img], initial.index(img)) for img in initial]


def test_coverage_counts_done_excluded_target_and_live_leases():
    people = [_p(1), _p(2), _p(3, "excluded"), _p(4, "timed_out"), _p(5, failed_checks=2)]
    slots = [
        _s(1, 1, "k1"),
        _s(2, 2, "k1"),
        _s(3, 3, "k1"),  # excluded by the researcher: done, and counted as excluded
        _s(8, 5, "k1"),  # failed two attention checks: excluded by the design's rule
        _s(4, 2, "k2", done=False, leased_until=NOW + timedelta(minutes=5)),  # live lease
        _s(5, 1, "k2", done=False, leased_until=NOW - timedelta(seconds=1)),  # expired lease
        _s(6, 4, "n1", done=False, leased_until=NOW + timedelta(minutes=5)),  # timed-out participant
        _s(7, 1, "k2", kind="attention"),  # attention pages never count toward coverage
    ]
    cov = m.coverage_matrix(PAGES, slots, people, target=2, now=NOW, exclude_after_failed_checks=2)
    cells = {c.page_id: c for culture in cov for c in culture.cells}
    assert (cells["k1"].done, cells["k1"].excluded, cells["k1"].leased, cells["k1"].target) == (4, 2, 0, 2)
    assert cells["k1"].complete and cells["k1"].valid == 2
    assert (cells["k2"].done, cells["k2"].leased) == (0, 1)
    assert (cells["n1"].done, cells["n1"].leased) == (0, 0)
    korea = next(c for c in cov if c.culture == "korea")
    assert (korea.done, korea.excluded, korea.target, korea.leased, korea.pages_complete) == (4, 2, 4, 1, 1)
    without_rule = m.coverage_matrix(PAGES, slots, people, target=2, now=NOW)
    assert next(c for c in without_rule if c.culture == "korea").excluded == 1
    assert [c.culture for c in cov] == ["korea", "nigeria"]


def test_participants_by_status_lists_every_status_in_order():
    counts = m.participants_by_status([_p(1), _p(2, "completed"), _p(3, "completed"), _p(4, "excluded")])
    assert list(counts)[: len(m.STATUSES)] == list(m.STATUSES)
    assert counts["completed"] == 2 and counts["active"] == 1 and counts["excluded"] == 1 and counts["returned"] == 0


def test_median_seconds_ignores_unsubmitted_slots():
    slots = [_s(1, 1, "k1", secs=4), _s(2, 1, "k2", secs=10), _s(3, 1, "n1", secs=30), _s(4, 2, "k1", done=False)]
    assert m.median_seconds_per_page(slots) == 10
    assert m.median_seconds_per_page([]) is None


def test_flags_speeding_untouched_identical_and_attention():
    rules = m.FlagRules(min_seconds_per_page=3)
    people = [_p(1), _p(2, failed_checks=1)]
    order = ["a", "b", "c"]
    slots = [_s(1, 1, "k1", secs=1.5), _s(2, 1, "k2", secs=20), _s(3, 2, "k1", secs=20), _s(4, 2, "k2", secs=20)]
    shown = {"a": 1, "b": 2, "c": 3}
    rankings = [
        # participant 1 leaves every ranking as shown, identical across both criteria
        *_judgment(1, "x", shown, order),
        *_judgment(1, "y", shown, order),
        *_judgment(2, "x", shown, order),
        *_judgment(2, "y", shown, order),
        # participant 2 reorders, and differently per criterion
        *_judgment(3, "x", {"a": 3, "b": 1, "c": 2}, order),
        *_judgment(3, "y", {"a": 2, "b": 3, "c": 1}, order),
        *_judgment(4, "x", {"a": 2, "b": 1, "c": 3}, order),
        *_judgment(4, "y", {"a": 1, "b": 3, "c": 2}, order),
    ]
    q = m.participant_quality(people, slots, rankings, rules)
    one, two = q[1], q[2]
    assert one.speeding_pages == 1 and m.FLAG_SPEEDING in one.flags
    assert (one.judgments, one.untouched_judgments) == (4, 4) and m.FLAG_UNTOUCHED in one.flags
    assert one.identical_pages == 2 and m.FLAG_IDENTICAL in one.flags
    assert m.FLAG_FAILED_ATTENTION not in one.flags
    assert two.flags == (m.FLAG_FAILED_ATTENTION,)
    assert (two.untouched_judgments, two.identical_pages, two.speeding_pages) == (0, 0, 0)
    assert one.median_seconds == (1.5 + 20) / 2


def test_no_speeding_flag_when_the_design_sets_no_minimum():
    q = m.participant_quality([_p(1)], [_s(1, 1, "k1", secs=0.2)], [], m.FlagRules(min_seconds_per_page=0))
    assert q[1].speeding_pages == 0 and q[1].flags == ()


def test_retest_disagreement_compares_a_page_with_its_repeat():
    order = ["a", "b", "c"]
    people = [_p(1), _p(2)]
    slots = [
        _s(1, 1, "k1"),
        _s(2, 1, "k1", kind="repeat"),
        _s(3, 2, "k1"),
        _s(4, 2, "k1", kind="repeat"),
    ]
    rankings = [
        *_judgment(1, "x", {"a": 1, "b": 2, "c": 3}, order),
        *_judgment(2, "x", {"a": 3, "b": 2, "c": 1}, order),  # reversed: tau = -1
        *_judgment(3, "x", {"a": 2, "b": 1, "c": 3}, order),
        *_judgment(4, "x", {"a": 2, "b": 1, "c": 3}, order),  # same: tau = 1
    ]
    q = m.participant_quality(people, slots, rankings, m.FlagRules())
    assert q[1].retest_tau == -1 and m.FLAG_RETEST in q[1].flags
    assert q[2].retest_tau == 1 and m.FLAG_RETEST not in q[2].flags


def test_kendall_tau():
    assert m.kendall_tau({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2, "c": 3}) == 1
    assert m.kendall_tau({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 3, "c": 2}) == 1 / 3
    assert m.kendall_tau({"a": 1}, {"a": 1}) is None


def test_attention_check_failed_by_most_raters_looks_broken():
    slots = [
        *[_s(i, i, "att-1", kind="attention", attention_passed=False) for i in range(1, 4)],
        _s(4, 4, "att-1", kind="attention", attention_passed=True),
        _s(5, 1, "att-2", kind="attention", attention_passed=False),
        *[_s(i, i, "att-2", kind="attention", attention_passed=True) for i in range(6, 10)],
    ]
    health = {h.page_id: h for h in m.attention_health(slots, m.FlagRules())}
    assert health["att-1"].looks_broken and health["att-1"].failure_rate == 0.75
    assert not health["att-2"].looks_broken and health["att-2"].failed == 1


def test_round_summary_response_rows_and_leases():
    people = [_p(1, "completed"), _p(2), _p(3, "returned")]
    order = ["a", "b"]
    slots = [
        _s(1, 1, "k1"),
        _s(2, 1, "att", kind="attention"),
        _s(3, 2, "k2", done=False, leased_until=NOW + timedelta(minutes=1)),
        _s(4, 3, "n1", done=False, leased_until=NOW + timedelta(minutes=1)),  # returned: lease not live
    ]
    rankings = [*_judgment(1, "x", {"a": 1, "b": 2}, order), *_judgment(2, "x", {"a": 2, "b": 1}, order)]
    cov = m.coverage_matrix(PAGES, slots, people, target=1, now=NOW)
    quality = m.participant_quality(people, slots, rankings, m.FlagRules())
    s = m.round_summary(people, slots, rankings, cov, quality, skipped_judgments=1, now=NOW)
    assert s.response_rows == 4 and s.pages_submitted == 2 and s.attention_pages_submitted == 1
    assert s.live_leases == 1 and s.coverage_done == 1 and s.coverage_target == 3 and s.skipped_judgments == 1
    assert s.participants_total == 3 and s.participants_by_status["returned"] == 1


def test_participant_rows_are_pseudonymous():
    t0 = NOW - timedelta(minutes=12)
    people = [_p(7, "completed", culture="korea", created_at=t0, completed_at=NOW, platform="prolific")]
    rows = participant_table.participant_rows(people, {})
    assert list(rows[0]) == list(participant_table.PARTICIPANT_COLUMNS)
    assert rows[0]["participant_id"] == "p7" and rows[0]["minutes"] == 12.0 and rows[0]["culture"] == "korea"
    assert rows[0]["excluded"] == "false"
    careless = [_p(8, "completed", failed_checks=2), _p(9, "excluded", exclusion_reason="bot")]
    rows = participant_table.participant_rows(careless, {}, exclude_after_failed_checks=2)
    assert [r["excluded"] for r in rows] == ["true", "true"] and rows[1]["exclusion_reason"] == "bot"
    assert participant_table.participant_rows(careless, {})[0]["excluded"] == "false"
