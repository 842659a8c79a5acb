"""A pool strangers cannot drain: enrolment is rate-limited per address and per round (429, no rows), the per-round
cap holds across workers (counted in the database), platform rounds need the platform's ids, and a burst of fake
entries does not keep a real participant out, during or after the leases."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import func, select
from starlette.testclient import TestClient

from app.config import Settings
from app.db import new_session
from app.main import create_app
from app.models import Participant
from app.ratelimit import limiter_from_settings
from tests.factories import FakeClock, launch_placeholders, walk

DEMO = Path(__file__).resolve().parents[2] / "study_designs" / "demo.toml"


def design(tmp_path: Path, *, target: int = 2, platform: str = "none") -> Path:
    toml = DEMO.read_text().replace("target_rankings_per_page = 2", f"target_rankings_per_page = {target}")
    path = tmp_path / "pool.toml"
    path.write_text(toml.replace('platform = "none"', f'platform = "{platform}"'))
    return path


class Round:
    def __init__(self, tmp_path: Path, design_path: Path, **limits) -> None:
        self.settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'study.db'}",
            media_root=tmp_path / "media",
            secret_key="pool-secret",
            researcher_token="pool-token",
            **limits,
        )
        launch_placeholders(self.settings.database_url, self.settings.media_root, design_path, tmp_path / "img", "r")
        self.clock = FakeClock()
        self.seconds = 0.0
        self.clients: list[TestClient] = []

    def worker(self) -> TestClient:
        """One more app process on the same database (its own in-process limiter)."""
        app = create_app(self.settings, clock=self.clock)
        app.state.enrol_limiter = limiter_from_settings(self.settings, clock=lambda: self.seconds)  # no real time
        self.app = app
        return self.client_for(app, "198.51.100.1")

    def client_for(self, app, address: str) -> TestClient:
        c = TestClient(app, client=(address, 40000), follow_redirects=False)
        c.__enter__()
        self.clients.append(c)
        return c

    def rows(self) -> int:
        with new_session(self.app.state.engine) as s:
            return s.exec(select(func.count()).select_from(Participant)).one()

    def statuses(self) -> list[str]:
        with new_session(self.app.state.engine) as s:
            return list(s.exec(select(Participant.status)).all())

    def close(self) -> None:
        for c in self.clients:
            c.__exit__(None, None, None)


def fake_entry(c: TestClient):
    c.cookies.clear()  # cookie-less, as a script would be
    return c.get("/s/r")


def test_a_burst_from_one_address_is_refused_with_429_and_creates_no_rows(tmp_path):
    rnd = Round(tmp_path, design(tmp_path))  # the defaults: 10 a minute per address, 120 per round
    try:
        c = rnd.worker()
        codes = [fake_entry(c).status_code for _ in range(1000)]
        refused = fake_entry(c)
        assert codes.count(303) == 10 and codes.count(429) == 990
        assert rnd.rows() == 10  # the 990 refused entries left nothing behind
        assert int(refused.headers["Retry-After"]) >= 1 and "Nothing has been recorded" in refused.text
        assert "scoft_r" not in refused.headers.get("set-cookie", "")
        other = rnd.client_for(rnd.app, "203.0.113.9")
        assert other.get("/s/r").status_code == 303  # another address is not held back by the burst
    finally:
        rnd.close()


def test_the_round_cap_is_counted_in_the_database_so_it_holds_across_workers(tmp_path):
    rnd = Round(tmp_path, design(tmp_path), enrol_rate_per_client=0, enrol_rate_per_round=5, enrol_burst_per_round=5)
    try:
        workers = [rnd.worker(), rnd.worker()]  # each has its own in-process limiter allowing 5
        got = [fake_entry(w).status_code for _ in range(4) for w in workers]
        assert got.count(303) == 5 and got.count(429) == 3 and rnd.rows() == 5
        rnd.clock.advance(minutes=2)  # the window has passed, and the in-process buckets have refilled
        rnd.seconds += 120
        assert fake_entry(workers[0]).status_code == 303 and rnd.rows() == 6
    finally:
        rnd.close()


def test_a_platform_round_needs_the_platform_ids(tmp_path):
    rnd = Round(tmp_path, design(tmp_path, platform="prolific"), enrol_rate_per_client=0, enrol_rate_per_round=0)
    try:
        c = rnd.worker()
        r = c.get("/s/r")
        assert r.status_code == 400 and "participant id" in r.text and rnd.rows() == 0
        for params in ({"PROLIFIC_PID": "p1"}, {"PROLIFIC_PID": "p1\n", "STUDY_ID": "s"}, {"workerId": "w1"}):
            assert c.get("/s/r", params=params).status_code == 400 and rnd.rows() == 0
        ok = c.get("/s/r", params={"PROLIFIC_PID": "p1", "STUDY_ID": "s1", "SESSION_ID": "x1"})
        assert ok.status_code == 303 and rnd.rows() == 1
        with new_session(rnd.app.state.engine) as s:
            assert s.exec(select(Participant.platform_raw)).one()["SESSION_ID"] == "x1"
    finally:
        rnd.close()


def test_a_burst_of_fake_entries_does_not_keep_a_real_participant_out(tmp_path):
    """1,000 cookie-less entries from one address; the ten admitted all choose a culture and stop. A real person
    from another address still gets pages and finishes while those leases last, and so does one after them."""
    rnd = Round(tmp_path, design(tmp_path, target=10))  # korea: 4 pages × 10 rankings, 4 pages each
    try:
        c = rnd.worker()
        admitted = [r for r in (fake_entry(c) for _ in range(1000)) if r.status_code == 303]
        assert len(admitted) == 10 and rnd.rows() == 10
        for r in admitted:
            code = r.headers["location"].rsplit("/", 1)[-1]
            for path, data in (("consent", {"agree": "yes"}), ("profile", {"culture": "korea"})):
                c.post(f"/p/{code}/{path}", data=data)
        real = rnd.client_for(rnd.app, "203.0.113.20")
        during = walk(real, "/s/r", culture="korea")
        assert during.pages == 5 and "DEMO-DONE" in during.final_html  # 4 pages + the attention check
        rnd.clock.advance(minutes=31)
        rnd.seconds += 31 * 60
        after = walk(rnd.client_for(rnd.app, "203.0.113.21"), "/s/r", culture="korea")
        assert after.pages == 5
        assert "ineligible" not in rnd.statuses()
    finally:
        rnd.close()
