"""An attacker on the console log-in: guessing backs off and is audited; a logged-out cookie opens nothing;
cookies are Secure behind a TLS proxy when configured."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.loginguard import LoginGuard
from app.main import create_app
from app.models import AuditLog
from tests.app.console_support import TOKEN, app_client, csrf_of, login, settings_for
from tests.factories import FakeClock


def _audit(client, action: str) -> list[AuditLog]:
    with Session(client.app.state.engine) as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action)))


def test_wrong_tokens_back_off_and_are_audited_and_the_right_token_still_works_after_the_wait(tmp_path):
    now = [0.0]
    with app_client(tmp_path) as c:
        c.app.state.login_guard = LoginGuard(free_failures=3, clock=lambda: now[0])
        codes = [c.post("/console/login", data={"token": f"guess-{i}", "actor": "eve"}).status_code for i in range(5)]
        assert codes[:4] == [401, 401, 401, 401] and codes[4] == 429
        r = c.post("/console/login", data={"token": TOKEN})  # even the right token waits out the back-off
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        failed = _audit(c, "login failed")
        assert len(failed) == 4 and {a.actor for a in failed} == {"eve"} and failed[-1].detail["wait_s"] == 1
        now[0] += 1.5
        assert c.post("/console/login", data={"token": "guess-5"}).status_code == 401  # the 5th failure: 2 s
        assert c.post("/console/login", data={"token": TOKEN}).status_code == 429
        now[0] += 2.5
        assert c.post("/console/login", data={"token": TOKEN}).status_code == 303
        assert len(_audit(c, "login")) == 1
        # a success forgets the address's failures
        assert c.post("/console/login", data={"token": "typo"}).status_code == 401


def test_back_off_doubles_and_is_capped():
    now = [0.0]
    g = LoginGuard(free_failures=2, base_delay_s=1, max_delay_s=8, clock=lambda: now[0])
    waits = [g.failed("a").retry_after for _ in range(7)]
    assert waits == [0, 0, 1, 2, 4, 8, 8]
    assert g.check("b").allowed  # another address is not held up by a's guesses
    assert not g.check("a").allowed


def test_many_addresses_are_slowed_together(tmp_path):
    now = [0.0]
    g = LoginGuard(free_failures=5, global_free_failures=10, clock=lambda: now[0])
    for i in range(11):
        g.failed(f"10.0.0.{i}")
    assert not g.check("10.0.0.200").allowed


def test_logout_ends_the_session_server_side_and_everywhere(tmp_path):
    with app_client(tmp_path) as c:
        csrf = login(c, "Ada")
        stolen = c.cookies.get("scoft_console")
        assert c.post("/console/logout", data={"csrf_token": csrf}).status_code == 303
        c.cookies.set("scoft_console", stolen, path="/console")  # a copy of the cookie kept after log-out
        r = c.get("/console")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
        assert c.get("/console/login").status_code == 200  # no redirect loop
        # two browsers; "log out everywhere" in one ends both
        c.cookies.clear()
        csrf_a = login(c, "Ada")
        a = c.cookies.get("scoft_console")
        other = TestClient(c.app, follow_redirects=False)
        login(other, "Bob")
        assert other.get("/console").status_code == 200
        c.cookies.set("scoft_console", a, path="/console")
        assert c.post("/console/logout-everywhere", data={"csrf_token": csrf_a}).status_code == 303
        assert other.get("/console").status_code == 303
        assert [x.detail["sessions"] for x in _audit(c, "logout everywhere")] == [2]
        assert len(_audit(c, "logout")) == 1


def test_cookie_is_secure_when_configured_for_a_tls_proxy(tmp_path):
    settings = settings_for(tmp_path).model_copy(update={"cookie_secure": True})
    with TestClient(create_app(settings, clock=FakeClock()), follow_redirects=False) as c:
        r = c.post("/console/login", data={"token": TOKEN})
        assert "secure" in r.headers["set-cookie"].lower()
    with app_client(tmp_path / "plain") as c:  # plain http, not configured: not Secure (else the console breaks)
        r = c.post("/console/login", data={"token": TOKEN})
        assert "secure" not in r.headers["set-cookie"].lower()
        csrf_of(c.get("/console").text)


def test_bearer_guessing_on_the_api_backs_off_too(tmp_path):
    now = [0.0]
    with app_client(tmp_path) as c:
        c.app.state.login_guard = LoginGuard(free_failures=2, clock=lambda: now[0])
        wrong = {"Authorization": "Bearer guess"}
        assert [c.get("/api/rounds", headers=wrong).status_code for _ in range(4)] == [401, 401, 401, 429]
        assert c.get("/api/rounds", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 429
        assert len(_audit(c, "login failed")) == 3
        now[0] += 5
        assert c.get("/api/rounds", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert all(c.get("/api/rounds").status_code == 401 for _ in range(5))  # no credentials: not a guess
