"""The console's page preview: the participant's page in a chosen initial order, researcher-only, storing nothing."""

from __future__ import annotations

import itertools
import re

import pytest
from sqlalchemy import func, inspect, select, table

from app.db import make_engine
from app.models import RoundImage
from study_designs.schema import load_design
from tests.app.console_support import DEMO, app_client, launch_demo, login, settings_for
from tests.factories import FakeClock

IMG = re.compile(r'<img src="/console/rounds/demo/preview-image/(\d+)"')


@pytest.fixture
def client(tmp_path):
    with app_client(tmp_path, FakeClock()) as c:
        launch_demo(c, tmp_path / "images")
        yield c


def _row_counts(tmp_path) -> dict[str, int]:
    engine = make_engine(settings_for(tmp_path).database_url)
    with engine.connect() as conn:
        names = inspect(conn).get_table_names()
        return {n: conn.execute(select(func.count()).select_from(table(n))).scalar_one() for n in names}


def _models_of(tmp_path, rows: list[str]) -> list[tuple[str, str]]:
    """(model, page) of each RoundImage row number, read straight from the database."""
    engine = make_engine(settings_for(tmp_path).database_url)
    query = select(RoundImage.id, RoundImage.model_id, RoundImage.page_id).where(RoundImage.round_id == "demo")
    with engine.connect() as conn:
        got = {r[0]: (r[1], r[2]) for r in conn.execute(query)}
    return [got[int(r)] for r in rows]


def test_researcher_sees_the_page_in_the_chosen_order_and_nothing_is_stored(client, tmp_path):
    login(client)
    design = load_design(DEMO)
    page = design.pages()[1].id
    models = [m.id for m in design.models]
    orders = list(itertools.permutations(models))
    before = _row_counts(tmp_path)
    seen = set()
    for n, expected in enumerate(orders):
        r = client.get("/console/rounds/demo/preview", params={"page": page, "order": n})
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        html = r.text
        # the researcher caption comes before the participant's page, and names the model at each position
        assert html.index("Researcher preview") < html.index('class="ranking"')
        caption = re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td>", html)
        assert caption == [(str(i + 1), m) for i, m in enumerate(expected)]
        # the images appear in that order, and each one served is the model's image of this page
        rows = list(dict.fromkeys(IMG.findall(html)))
        assert len(rows) == len(models)
        assert _models_of(tmp_path, rows) == [(m, page) for m in expected]
        for row in rows:
            img = client.get(f"/console/rounds/demo/preview-image/{row}")
            assert img.status_code == 200 and img.content.startswith(b"\x89PNG")
        served = tuple(client.get(f"/console/rounds/demo/preview-image/{row}").content for row in rows)
        seen.add(served)
        # the form posts nowhere: no action, no participant link, a disabled submit button
        form = re.search(r"<form[^>]*class=\"ranking\"[^>]*>", html).group(0)
        assert "action" not in form and "method" not in form
        assert "/p/" not in html and "/i/" not in html
        assert re.search(r'<button type="submit" class="next" disabled>', html)
    assert len(seen) == len(orders)  # every order shows a different arrangement of the same images
    assert _row_counts(tmp_path) == before


def test_unknown_page_or_order_is_404_and_other_rounds_images_are_not_served(client):
    login(client)
    assert client.get("/console/rounds/demo/preview", params={"page": "no-such-page"}).status_code == 404
    assert client.get("/console/rounds/nope/preview").status_code == 404
    assert client.get("/console/rounds/demo/preview", params={"order": 10**6}).status_code == 404
    assert client.get("/console/rounds/demo/preview", params={"order": -1}).status_code == 422
    assert client.get("/console/rounds/demo/preview").status_code == 200  # the first page by default
    for bad in ("999999", "x", "../../etc/passwd", "9" * 40):
        assert client.get(f"/console/rounds/demo/preview-image/{bad}").status_code == 404
    row = IMG.search(client.get("/console/rounds/demo/preview").text).group(1)
    assert client.get(f"/console/rounds/other/preview-image/{row}").status_code == 404


def test_anonymous_and_wrong_credentials_are_refused(client):
    login(client)
    page = client.get("/console/rounds/demo/preview").text
    row = IMG.search(page).group(1)
    urls = ["/console/rounds/demo/preview", f"/console/rounds/demo/preview-image/{row}"]
    client.cookies.clear()
    for url in urls:
        r = client.get(url)
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
        r = client.get(url, headers={"Authorization": "Bearer researcher-token-for-tests"})
        assert r.status_code == 303
        client.cookies.set("scoft_console", "forged", path="/console")
        assert client.get(url).status_code == 303
        client.cookies.clear()


def test_round_page_links_to_the_preview_with_a_page_picker(client):
    login(client)
    html = client.get("/console/rounds/demo").text
    assert 'action="/console/rounds/demo/preview"' in html
    for p in load_design(DEMO).pages():
        assert f'<option value="{p.id}">' in html
