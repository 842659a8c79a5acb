"""Every researcher route refuses anonymous and wrong-token requests; login, logout and session cookies."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from app import security
from app.loginguard import LoginGuard
from tests.app.console_support import BEARER, TOKEN, app_client, launch_demo, login

PUBLIC_RESEARCHER_ROUTES = {("/console/login", "GET"), ("/console/login", "POST")}
SAMPLE_PARAMS = {"round_id": "demo", "pseudonym": "p-0000", "action": "pause", "kind": "responses", "image_row": "1"}


def _fill(path: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1).split(":")[0]
        assert name in SAMPLE_PARAMS, f"add a sample value for path parameter {name!r} to this test"
        return SAMPLE_PARAMS[name]

    return re.sub(r"\{([^}]+)\}", sub, path)


def _researcher_routes(app) -> list[tuple[str, str]]:
    """Every (path, method) under /console and /api, including routes of included routers."""
    out = []
    for ctx in iter_route_contexts(app.routes):
        path = ctx.path or ""
        if isinstance(ctx.original_route, Mount):
            assert not path.startswith(("/console", "/api")), f"mounted app under {path} skips auth"
            continue
        if path.startswith(("/console", "/api")):
            assert ctx.methods, f"route {path} has no methods"
            out += [(path, m) for m in sorted(ctx.methods) if (path, m) not in PUBLIC_RESEARCHER_ROUTES]
    return out


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth")
    with app_client(tmp) as c:
        launch_demo(c, tmp / "images")
        yield c


def test_every_researcher_route_refuses_anonymous_and_wrong_credentials(client):
    routes = _researcher_routes(client.app)
    # hundreds of wrong tokens from one address would soon be answered 429 (tests/security/test_login.py); here
    # every route must give its own refusal, so the back-off is set out of reach
    client.app.state.login_guard = LoginGuard(free_failures=10**6, global_free_failures=10**6)
    paths = {p for p, _ in routes}
    # the enumeration really sees both surfaces, including state-changing routes
    assert any(p.startswith("/console") for p in paths) and any(p.startswith("/api") for p in paths)
    assert ("/api/rounds/{round_id}/close", "POST") in routes
    assert ("/console/rounds/{round_id}/status/{action}", "POST") in routes
    forged = security.make_session_cookie(security.AuthConfig("another-secret", TOKEN), "mallory")
    for path, method in routes:
        url = _fill(path)
        if path.startswith("/api"):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
                r = client.request(method, url, headers=headers)
                assert r.status_code == 401, (method, url, headers, r.status_code)
                assert r.headers.get("www-authenticate") == "Bearer", (method, url)
        else:
            for cookies in ({}, {security.COOKIE_NAME: forged}, {security.COOKIE_NAME: "garbage"}):
                client.cookies.clear()
                for k, v in cookies.items():
                    client.cookies.set(k, v)
                r = client.request(method, url)
                assert r.status_code == 303, (method, url, r.status_code)
                assert r.headers["location"].startswith("/console/login"), (method, url)
            client.cookies.clear()
    # the round is untouched by all those anonymous POSTs
    assert client.get("/api/rounds/demo", headers=BEARER).json()["status"] == "open"


def test_login_sets_a_strict_httponly_cookie_and_logout_needs_csrf(client):
    client.cookies.clear()
    r = client.post("/console/login", data={"token": "nope", "actor": "x"})
    assert r.status_code == 401 and "not right" in r.text and "set-cookie" not in r.headers
    r = client.post("/console/login", data={"token": TOKEN, "actor": "Ada", "next": "/console/audit"})
    assert r.status_code == 303 and r.headers["location"] == "/console/audit"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    assert client.get("/console").status_code == 200
    assert client.post("/console/logout").status_code == 403  # no CSRF token
    csrf = login(client)
    r = client.post("/console/logout", data={"csrf_token": csrf})
    assert r.status_code == 303
    client.cookies.clear()
    assert client.get("/console").status_code == 303
    audit = client.get("/api/rounds", headers=BEARER)
    assert audit.status_code == 200


def test_login_never_redirects_off_site(client):
    client.cookies.clear()
    for target in ("https://evil.example/", "//evil.example/", "/\\evil", "/participant"):
        r = client.post("/console/login", data={"token": TOKEN, "actor": "a", "next": target})
        assert r.headers["location"] == "/console", target
    assert security.safe_next("/console/rounds/demo?refresh=0") == "/console/rounds/demo?refresh=0"


def test_session_cookie_rules():
    cfg = security.AuthConfig("secret-a", "token-a")
    cookie = security.make_session_cookie(cfg, "Ada\x00\n")
    data = security.read_session_cookie(cfg, cookie)
    assert data is not None and data["actor"] == "Ada"
    assert security.read_session_cookie(security.AuthConfig("secret-a", "token-b"), cookie) is None  # token rotated
    assert security.read_session_cookie(security.AuthConfig("secret-b", "token-a"), cookie) is None  # key changed
    assert security.read_session_cookie(cfg, cookie, max_age_s=-1) is None  # expired
    assert security.read_session_cookie(security.AuthConfig("secret-a", ""), cookie) is None  # console disabled
    csrf = security.make_csrf_token(cfg, data["sid"])
    assert security.csrf_valid(cfg, csrf, data["sid"])
    assert not security.csrf_valid(cfg, csrf, "another-session")
    assert not security.csrf_valid(cfg, csrf + "x", data["sid"])
    assert not security.csrf_valid(cfg, "", data["sid"])


def test_token_comparison():
    assert security.token_matches("abc", "abc")
    assert not security.token_matches("abd", "abc")
    assert not security.token_matches("", "")  # an unset RESEARCHER_TOKEN locks everything
    assert not security.token_matches(None, "abc")
