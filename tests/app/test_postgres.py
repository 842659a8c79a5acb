"""PostgreSQL: many participants enrolling and submitting at once through several engines (as several workers).

No page may be handed out beyond its target (counting submitted rankings and live leases), no response may be
lost or stored twice. Skipped only when the server at TEST_DATABASE_URL cannot be reached.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, text
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from app.db import make_engine, new_session, session_scope
from app.flow import Slot, TryLater
from app.launch import launch_round
from app.models import Assignment, Participant, Ranking
from app.placeholder import write_placeholders
from study_designs.schema import load_design
from tests.factories import CrudParticipant, walk
from tests.factories.postgres import pg_schema

pytestmark = pytest.mark.postgres

DEMO = Path(__file__).resolve().parents[2] / "study_designs" / "demo.toml"
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def pg_url():
    """A fresh schema on the test server, dropped afterwards."""
    with pg_schema() as url:
        yield url


def stress_design(tmp_path: Path) -> Path:
    """The demo design with 10 pages per culture, 3 rankings per page, 4 pages per participant."""
    toml = DEMO.read_text()
    toml = re.sub(
        r"seeds = \[(\d)1, \d2\]", lambda m: f"seeds = [{', '.join(m.group(1) + str(i) for i in range(1, 6))}]", toml
    )
    toml = toml.replace("target_rankings_per_page = 2", "target_rankings_per_page = 3")
    path = tmp_path / "stress.toml"
    path.write_text(toml)
    assert len(load_design(path).pages("korea")) == 10
    return path


def answer(slot: Slot, rng_seed: int) -> dict[str, list[str]]:
    n = len(slot.image_order)
    form: dict[str, list[str]] = {"token": [slot.token]}
    for k, crit in enumerate(slot.criteria_order):
        ranks = [(i + rng_seed + k) % n + 1 for i in range(n)]
        if slot.check_image_id is not None and crit == slot.check_criterion:
            marked = slot.image_order.index(slot.check_image_id)
            ranks = [r for r in range(1, n)]
            ranks.insert(marked, n)
        for i, r in enumerate(ranks):
            form[f"rank-{crit}-{i}"] = [str(r)]
    return form


def test_concurrent_enrolment_and_submission_never_over_assign(pg_url, tmp_path):
    design_path = stress_design(tmp_path)
    design = load_design(design_path)
    target = design.assignment.target_rankings_per_page
    manifest, _ = write_placeholders(design, tmp_path / "img", size=8)
    with session_scope(pg_url) as s:
        launch_round(
            s, design_path=design_path, manifest_path=manifest, round_id="stress", media_root=tmp_path / "media", now=T0
        )
    engines = [make_engine(pg_url, pool_size=4) for _ in range(4)]  # four "workers"
    local = threading.local()

    def session():
        if not hasattr(local, "engine"):
            local.engine = engines[threading.get_ident() % len(engines)]
        return new_session(local.engine)

    drivers: dict[str, CrudParticipant] = {}

    def enrol(i: int, culture: str, now: datetime) -> str:
        person = CrudParticipant(session, "stress", f"pp{i:04d}")
        try:
            code = person.onboard(culture, now)
        except TryLater:  # every page with room is held by someone right now: they may come back
            code = person.code
        drivers[code] = person
        return code

    def complete(code: str, now: datetime) -> int:
        # every page is sent twice, as a network retry would
        return drivers[code].finish(now, retries=2, answer=lambda slot: answer(slot, sum(map(ord, code))))

    def live_coverage(now: datetime) -> Counter:
        with new_session(engines[0]) as s:
            rows = s.exec(
                select(Assignment.page_id).where(
                    Assignment.kind == "regular",
                    (Assignment.submitted_at.is_not(None)) | (Assignment.leased_until > now),
                )
            ).all()
        return Counter(rows)

    cultures = [c.id for c in design.cultures]
    need = {c: design.participants_needed(c) for c in cultures}
    with ThreadPoolExecutor(max_workers=12) as pool:
        # wave 1: twice as many people as needed arrive at once
        jobs = [(i, c) for c in cultures for i in range(2 * need[c])]
        codes = list(pool.map(lambda ic: enrol(ic[0] + 1000 * cultures.index(ic[1]), ic[1], T0), jobs))
        cov = live_coverage(T0)
        assert max(cov.values()) <= target and sum(cov.values()) == len(jobs)  # each holds the one page they are on
        with new_session(engines[0]) as s:
            people = s.exec(select(Participant)).all()
        active = [p.code for p in people if p.status == "active"]
        assert Counter(p.status for p in people) == {"active": len(jobs)}
        # half of the active people finish (concurrently, with retries); the rest walk away
        finishers, leavers = active[::2], active[1::2]
        stored = sum(pool.map(lambda c: complete(c, T0 + timedelta(minutes=5)), finishers))
        # after the leases run out, a second wave takes the abandoned pages, and no more
        later = T0 + timedelta(minutes=design.assignment.lease_minutes + 1)
        wave2 = list(pool.map(lambda i: enrol(5000 + i, cultures[i % 2], later), range(2 * len(leavers) + 4)))
        cov = live_coverage(later)
        assert max(cov.values()) <= target and sum(cov.values()) == len(design.pages()) * target
        stored += sum(
            pool.map(
                lambda c: complete(c, later + timedelta(minutes=1)),
                [c for c in wave2 if _status(engines[0], c) == "active"],
            )
        )

    with new_session(engines[0]) as s:
        submitted = s.exec(select(Assignment).where(Assignment.submitted_at.is_not(None))).all()
        n_rankings = s.exec(select(func.count()).select_from(Ranking)).one()
        distinct = s.exec(select(func.count(func.distinct(Ranking.slot_id)))).one()
        regular = Counter(a.page_id for a in submitted if a.kind == "regular")
    assert stored == len(submitted) == distinct
    k = len(design.models)
    assert n_rankings == sum(len(a.criteria_order) * k for a in submitted)
    assert set(regular.values()) == {target} and len(regular) == len(design.pages())  # every page exactly at target
    assert len(codes) == len(set(codes))
    for e in engines:
        e.dispose()


def _status(engine, code: str) -> str:
    with new_session(engine) as s:
        return s.exec(select(Participant.status).where(Participant.code == code)).one()


def test_a_submission_holds_the_next_pages_lock_before_counting_its_room(pg_url, make_study):
    """The statement that stores a page also locks the next page's ``RoundPage`` row (a ``SELECT … FOR UPDATE`` in
    ``WITH`` runs only when the main statement reads it): another transaction cannot take that row until the
    submission commits, so two submissions never both see the page's last place free."""
    study = make_study(database_url=pg_url)
    p = walk(study.client, "/s/r1", culture="korea", stop_after_pages=0)
    other = make_engine(pg_url)
    seen: list[str] = []

    def probe(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "WITH rankings AS" not in statement or not parameters.get("p_page"):
            return
        with other.connect() as c:
            try:
                c.execute(
                    text("SELECT page_id FROM roundpage WHERE round_id = :r AND page_id = :p FOR UPDATE NOWAIT"),
                    {"r": parameters["p_round"], "p": parameters["p_page"]},
                )
                seen.append("free")
            except OperationalError as err:
                seen.append("locked" if "could not obtain lock" in str(err) else str(err))

    event.listen(study.engine, "after_cursor_execute", probe)
    try:
        p.finish(study.clock)
    finally:
        event.remove(study.engine, "after_cursor_execute", probe)
        other.dispose()
    assert seen and set(seen) == {"locked"}, seen
