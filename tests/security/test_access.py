"""Researcher routes refuse anonymous and wrong-token requests; console forms need a CSRF token; image tokens
cannot be guessed or traversed; one participant cannot see or submit another's pages."""

from __future__ import annotations

import re
import secrets

from fastapi.routing import iter_route_contexts
from sqlmodel import col, func, select

from app.loginguard import LoginGuard
from app.models import Assignment, AuditLog, Ranking, Round, RoundImage
from app.security import AuthConfig, make_session_cookie
from tests.factories import onboarded
from tests.reliability.inproc import RESEARCHER_TOKEN, SECRET_KEY

PUBLIC = {("GET", "/console/login"), ("POST", "/console/login")}
FILL = {"round_id": "r1", "pseudonym": "p-0000000000000000", "action": "pause", "kind": "responses"}


PARTICIPANT_PREFIXES = ("/s/", "/p/", "/i/", "/healthz", "/openapi.json", "/static")


def researcher_routes(app) -> list[tuple[str, str]]:
    """Every (method, filled path) under /api and /console; any other route must be a participant route."""
    out = []
    for ctx in iter_route_contexts(app.routes):
        path = ctx.path or ""
        if not path.startswith(("/api", "/console")):
            assert path.startswith(PARTICIPANT_PREFIXES), f"route {path} is neither participant nor researcher"
            continue
        filled = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: FILL.get(m.group(1), "x"), path)
        out += [(m, filled) for m in sorted(ctx.methods or ()) if (m, path) not in PUBLIC and m != "HEAD"]
    return out


def _state(study) -> tuple:
    with study.session() as s:
        return (
            s.get(Round, "r1").status,
            # failed log-ins are audited (that is wanted); nothing else may be
            s.exec(select(func.count()).select_from(AuditLog).where(AuditLog.action != "login failed")).one(),
            s.exec(select(func.count()).select_from(Ranking)).one(),
        )


def _refused(method: str, path: str, r) -> str | None:
    if path.startswith("/api"):
        ok = r.status_code == 401 and r.headers.get("www-authenticate", "").lower().startswith("bearer")
    else:
        ok = r.status_code in (401, 403) or (
            r.status_code == 303 and r.headers["location"].startswith("/console/login")
        )
    return None if ok else f"{method} {path}: {r.status_code} {r.headers.get('location', '')}"


def test_every_researcher_route_refuses_anonymous_and_wrong_credentials(demo):
    c = demo.client
    # every route must give its own refusal: the log-in back-off (tests/security/test_login.py) is set out of reach
    demo.app.state.login_guard = LoginGuard(free_failures=10**6, global_free_failures=10**6)
    routes = researcher_routes(demo.app)
    assert len(routes) >= 15 and any(p.startswith("/api") for _, p in routes)
    before = _state(demo)
    forged = {
        "garbage": "not-a-cookie",
        "other-key": make_session_cookie(AuthConfig("another-secret-key", RESEARCHER_TOKEN), "mallory"),
        "old-token": make_session_cookie(AuthConfig(SECRET_KEY, "a-rotated-token"), "mallory"),
    }
    wrong_auth = [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {RESEARCHER_TOKEN}x"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {RESEARCHER_TOKEN}"},
        {"Authorization": RESEARCHER_TOKEN},
        {"X-Researcher-Token": RESEARCHER_TOKEN},
    ]
    failures = []
    for method, path in routes:
        for headers in wrong_auth:
            c.cookies.clear()
            r = c.request(method, path, headers=headers, params={"token": RESEARCHER_TOKEN})
            failures.append(_refused(method, path, r))
        for cookie in forged.values():
            c.cookies.clear()
            c.cookies.set("scoft_console", cookie, path="/console")
            failures.append(_refused(method, path, c.request(method, path)))
    c.cookies.clear()
    assert [f for f in failures if f] == []
    assert _state(demo) == before  # nothing changed, nothing audited as done
    with demo.session() as s:
        failed = s.exec(select(func.count()).select_from(AuditLog).where(AuditLog.action == "login failed")).one()
    assert failed > 0  # the wrong Bearer tokens were recorded
    # the control: the right token is accepted, so the refusals above are about the credentials
    assert c.get("/api/rounds", headers={"Authorization": f"Bearer {RESEARCHER_TOKEN}"}).status_code == 200
    bad = c.post("/console/login", data={"token": "wrong"})
    assert bad.status_code == 401 and "set-cookie" not in bad.headers


def _login(c, actor: str = "alice") -> str:
    c.cookies.clear()
    r = c.post("/console/login", data={"token": RESEARCHER_TOKEN, "actor": actor})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    page = c.get("/console/rounds/r1")
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_console_forms_need_this_sessions_csrf_token(demo):
    c = demo.client
    other_token = _login(c, "bob")
    mine = _login(c, "alice")
    assert mine != other_token
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "forged"}, {"csrf_token": other_token}):
        r = c.post("/console/rounds/r1/status/pause", data=data)
        assert r.status_code == 403, (data, r.status_code)
        assert _state(demo)[0] == "open"
    # the API never takes the console cookie instead of the bearer token (no CSRF through the API)
    assert c.post("/api/rounds/r1/pause").status_code == 401
    assert _state(demo)[0] == "open"
    r = c.post("/console/rounds/r1/status/pause", data={"csrf_token": mine})
    assert r.status_code == 303 and _state(demo)[0] == "paused"


def test_image_urls_resist_traversal_and_guessing(demo):
    c = demo.client
    with demo.session() as s:
        images = s.exec(select(RoundImage)).all()
    code = onboarded(c, "r1", "korea").code
    tokens = list(dict.fromkeys(re.findall(r'<img src="/i/([^"]+)"', c.get(f"/p/{code}").text)))
    assert len(tokens) == 3
    assert all(len(t) >= 44 and re.fullmatch(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", t) for t in tokens)
    good = c.get(f"/i/{tokens[0]}")
    assert good.status_code == 200 and good.content.startswith(b"\x89PNG")
    assert "nosniff" in good.headers["x-content-type-options"]
    im = images[0]
    attempts = [
        "/i/../../etc/passwd",
        "/i/..%2F..%2Fetc%2Fpasswd",
        "/i/%2e%2e%2f%2e%2e%2fstudy.db",
        "/i/..%252f..%252fstudy.db",
        "/i/....//....//etc/passwd",
        f"/i/{im.path}",
        f"/i/{im.path.replace('/', '%2F')}",
        f"/i/{im.image_id}",
        f"/i/{im.sha256}",
        f"/i/{im.token}",  # the launch-time token: the same for everyone, so never served
        f"/i/{tokens[0][:-1]}",
        f"/i/{tokens[0]}x",
        f"/i/{tokens[0].swapcase()}",
        f"/i/{tokens[0]}/..",
        f"/i/{tokens[0]}%00.png",
        "/i/",
        "/i/%00",
        "/static/../config.py",
        "/static/%2e%2e/config.py",
        "/static/..%2fconfig.py",
        "/static/..%2f..%2fvar%2fsecret_key",
    ]
    for url in attempts:
        r = c.get(url)
        assert r.status_code in (404, 400, 405, 307), (url, r.status_code)
        assert not r.content.startswith(b"\x89PNG") and b"import" not in r.content, url
    for _ in range(100):
        r = c.get(f"/i/{secrets.token_urlsafe(len(tokens[0]) * 3 // 4)}")
        assert r.status_code == 404


def test_participants_cannot_see_or_submit_each_others_pages(demo):
    c = demo.client
    a_p = onboarded(c, "r1", "korea", {"PROLIFIC_PID": "personA", "STUDY_ID": "s", "SESSION_ID": "a"})
    a = a_p.code
    b_p = onboarded(c, "r1", "korea", {"PROLIFIC_PID": "personB", "STUDY_ID": "s", "SESSION_ID": "b"})
    b = b_p.code
    assert a != b and len(a) >= 32 and len(b) >= 32
    a_action, a_data = a_p.prepare()
    b_action, b_data = b_p.prepare()

    def stored(code: str) -> int:
        with demo.session() as s:
            from app.models import Participant

            pid = s.exec(select(Participant.id).where(Participant.code == code)).one()
            return s.exec(
                select(func.count())
                .select_from(Assignment)
                .where(Assignment.participant_id == pid, col(Assignment.submitted_at).is_not(None))
            ).one()

    # A replays B's form (B's token and answers) on A's own page, and on B's page under A's link
    assert c.post(a_action, data=b_data).status_code in (400, 409)
    assert c.post(b_action.replace(b, a), data=b_data).status_code in (400, 404, 409)
    # guessed or mangled participant links show nothing and store nothing
    for code in (secrets.token_urlsafe(24), b[:-1] + ("A" if b[-1] != "A" else "B"), b.upper(), "", "..", b + "/"):
        assert c.get(f"/p/{code}").status_code in (404, 307, 405), code
        assert c.post(f"/p/{code}/page/0", data=b_data).status_code in (404, 405, 307), code
    assert stored(a) == 0 and stored(b) == 0
    # a browser holding A's cookie that enters with B's platform id gets B, never A; without any id, a new person
    c.cookies.clear()
    c.get("/s/r1", params={"PROLIFIC_PID": "personA", "STUDY_ID": "s", "SESSION_ID": "a"})
    r = c.get("/s/r1", params={"PROLIFIC_PID": "personB", "STUDY_ID": "s", "SESSION_ID": "b"})
    assert r.headers["location"] == f"/p/{b}"
    c.cookies.clear()
    fresh = c.get("/s/r1")
    assert fresh.headers["location"] not in (f"/p/{a}", f"/p/{b}")
    # each can still submit their own page
    assert c.post(a_action, data=a_data).status_code == 303
    assert c.post(b_action, data=b_data).status_code == 303
    assert stored(a) == 1 and stored(b) == 1
