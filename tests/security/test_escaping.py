"""Design strings are data, never markup: a round launched from a design full of <script> renders them escaped on
every participant page and console page, and the pages themselves carry no inline script or event handler."""

from __future__ import annotations

import re

from tests.factories import crawl_participant
from tests.reliability.inproc import RESEARCHER_TOKEN, start
from tests.security.support import Spec, write_design

PAYLOADS = Spec(
    title="Study <script>alert('title')</script>",
    cultures=(
        ("korea", "Korea <script>alert('label')</script>", "<b onmouseover=alert(1)>Korean</b>"),
        ("nigeria", 'Nigeria" onfocus="alert(2)', "Nigerian</legend><script>alert(3)</script>"),
    ),
    models=(
        ("sd", "<script>alert('model')</script>"),
        ("scoft_m", "SCoFT <img src=x onerror=alert(4)>"),
        ("scoft_mpc", "SCoFT+MPC"),
    ),
    question="Represents {adjective} culture? <img src=x onerror=alert(5)>",
    best="Best <script>alert(6)</script>",
    worst="Worst</option><script>alert(7)</script>",
    prompt_text="Street in {label} <script>alert('prompt')</script> \"quoted\"",
    consent="Hello <script>alert('consent')</script>\n\n[click](javascript:alert(8)) <iframe src=//evil.example>",
    warning="Warning <iframe src=//evil.example></iframe>",
)
RAW = [
    "<script>alert",
    "<img src=x onerror",
    'onfocus="alert',
    "<iframe",
    'href="javascript:',
    "<b onmouseover",
]
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)


def _check_html(where: str, html: str) -> list[str]:
    problems = [f"{where}: raw {marker!r}" for marker in RAW if marker.lower() in html.lower()]
    if INLINE_HANDLER.search(html):
        problems.append(f"{where}: inline event handler {INLINE_HANDLER.search(html).group(0)!r}")
    if INLINE_SCRIPT.search(html):
        problems.append(f"{where}: inline <script> block")
    return problems


def test_script_in_design_strings_is_escaped_everywhere(tmp_path):
    design = write_design(PAYLOADS, tmp_path / "xss.toml")
    study = start(tmp_path, design, "xss")
    try:
        c = study.client
        htmls: list[tuple[str, str]] = []
        for culture in ("korea", "nigeria"):
            crawl = crawl_participant(c, "xss", culture, {"PROLIFIC_PID": f"x{culture}", "STUDY_ID": "s"})
            assert crawl.pages >= 3
            htmls += [(s.url, s.text) for s in crawl.seen if s.headers.get("content-type", "").startswith("text/html")]
        other = crawl_participant(c, "xss", "other", {"PROLIFIC_PID": "xother", "STUDY_ID": "s"})
        htmls += [(s.url, s.text) for s in other.seen if s.headers.get("content-type", "").startswith("text/html")]
        c.cookies.clear()
        assert (
            c.post("/console/login", data={"token": RESEARCHER_TOKEN, "actor": "<script>alert(9)</script>"}).status_code
            == 303
        )
        for url in (
            "/console",
            "/console/rounds/xss",
            "/console/rounds/xss/participants",
            "/console/audit",
            "/console/launch",
        ):
            r = c.get(url)
            assert r.status_code == 200, url
            htmls.append((url, r.text))
        api = c.get("/api/rounds/xss", headers={"Authorization": f"Bearer {RESEARCHER_TOKEN}"})
        assert api.headers["content-type"].startswith("application/json")

        problems = [p for url, html in htmls for p in _check_html(url, html)]
        assert problems == []
        joined = "\n".join(html for _, html in htmls)
        # the strings were rendered (escaped), not dropped: the checks above are not vacuous
        for shown in ("alert(&#39;title&#39;)", "alert(&#39;label&#39;)", "alert(&#39;prompt&#39;)", "alert(5)"):
            assert shown in joined, shown
        assert "&lt;script&gt;" in joined and "&lt;iframe" in joined
        participant_html = "\n".join(h for u, h in htmls if "/console" not in u)
        assert "alert(&#39;model&#39;)" not in participant_html  # model labels never reach participants
    finally:
        study.close()


def test_consent_markdown_renders_no_raw_html_no_images_and_no_script_links():
    from app.flow.views import render_markdown

    html = render_markdown(
        "Hello <script>alert(1)</script> <img src=x onerror=alert(1)>\n\n"
        "![tracker](https://evil.example/pixel.png)\n\n[click](javascript:alert(1)) [ok](https://example.org)"
    )
    assert "<script" not in html and "<img" not in html and "evil.example" not in html.replace("&lt;", "")
    assert 'href="javascript' not in html and 'href="https://example.org"' in html
    assert "&lt;script&gt;" in html  # shown as text, not dropped silently
