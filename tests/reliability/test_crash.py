"""kill -9 the real server (``python -m app``, SQLite) while participants submit through the HTML forms.

Every answer the server acknowledged must be in the export exactly once with its rank, no page may be half
stored, and every participant must resume on the page they were on (or the next one, when their last answer was
stored but the acknowledgement was lost: the retry with the same token is then an idempotent replay).
"""

from __future__ import annotations

from collections import Counter

from tests.reliability.campaign import run_campaign
from tests.reliability.formclient import Participant
from tests.reliability.harness import DESIGNS, Server, StudyEnv, derived_design

TARGET = 12  # demo: every participant ranks all 4 pages of their culture, so 12 per culture fill every page


def test_kill9_loses_no_acknowledged_submission(tmp_path):
    design = derived_design(DESIGNS / "demo.toml", tmp_path / "design.toml", target_rankings_per_page=TARGET)
    study = StudyEnv(tmp_path, f"sqlite:///{tmp_path / 'study.db'}")
    study.launch(design, "crash", size=16)
    cultures = ["korea", "nigeria"]
    people = [
        Participant(pid=f"crash{i:03d}", culture=cultures[i % 2], round_id="crash", completion_code="DEMO-DONE")
        for i in range(2 * TARGET)
    ]
    for p in people[:3]:
        p.images = True
    for p in people[::2]:
        p.reenter_after_crash = True
    server = Server(study)
    res = run_campaign(
        study,
        server,
        "crash",
        people,
        crashes=4,
        kill_window=(0.4, 8.0),
        kill_pages=(1, 12),
        seed=7,
        log=lambda s: None,
    )
    print(res.summary())
    assert res.problems == []
    assert res.crashes == 4
    assert res.completed == len(people)
    assert res.lost == res.duplicated == res.wrong == res.unacked_stored == res.half_stored == 0
    assert res.export_rows == res.acked_rows > 0
    # crashes really happened mid-walk: somebody had to come back to an unfinished study
    assert sum(p.crashes_seen for p in people) > 0
    # the export still fills every page exactly to its target (nothing lost, nothing counted twice)
    rows = study.export("crash")
    per_page = Counter(
        r["page_id"]
        for r in rows
        if r["is_attention_check"] == "false" and r["criterion"] == "description" and r["initial_position"] == "0"
    )
    assert set(per_page.values()) == {TARGET}
